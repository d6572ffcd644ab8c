/** Synchronous float64 SVD for small matrices (LoRA merge cores, randomized-SVD projections). */
import { runSync } from './cooperative.ts';
import { svdColMajor } from './jacobi-svd.ts';
import { assertShape, toColMajorF64 } from './layout.ts';

export interface SmallSvd {
  /** m×k row-major, orthonormal columns. */
  u: Float64Array;
  /** k singular values, descending. */
  s: Float64Array;
  /** k×n row-major, orthonormal rows. */
  vt: Float64Array;
}

/**
 * A = U·diag(s)·Vᵀ for a row-major m×n float64 matrix, k = min(m, n). Blocks the caller; meant for
 * matrices up to a few hundred on a side (a 300×300 core takes about a second).
 */
export function svdSmall(a: Float64Array, m: number, n: number): SmallSvd {
  assertShape(a, m, n, 'svdSmall: a');
  const f = runSync(svdColMajor(toColMajorF64(a, m, n, 'svdSmall: a'), m, n));
  const k = f.k;
  const u = new Float64Array(m * k);
  for (let t = 0; t < k; t++) {
    for (let i = 0; i < m; i++) u[i * k + t] = f.u[t * m + i];
  }
  // V column-major n×k is Vᵀ row-major k×n.
  return { u, s: f.s, vt: f.v };
}
