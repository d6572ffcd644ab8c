/** Thin QR of a tall float32 matrix, computed with float64 Householder reflections. */
import { runCooperatively } from './cooperative.ts';
import { householderQr } from './householder.ts';
import { assertShape, colMajorToRowMajorF32, toColMajorF64 } from './layout.ts';
import { LinalgError } from './linalg-error.ts';

export interface QrResult {
  /** m×n row-major, orthonormal columns. */
  q: Float32Array;
  /** n×n row-major, upper triangular with a non-negative diagonal. */
  r: Float32Array;
}

/**
 * A = Q·R for a row-major m×n matrix with m ≥ n. Exact to float32 rounding for any conditioning,
 * rank-deficient inputs included (Q is still orthonormal; R then has zeros on its diagonal).
 */
export async function qr(a: Float32Array, shape: readonly [number, number]): Promise<QrResult> {
  const [m, n] = shape;
  assertShape(a, m, n, 'qr: a');
  if (m < n) throw new LinalgError(`qr: needs a tall matrix (rows ≥ cols), got ${m}×${n}`);
  const work = toColMajorF64(a, m, n, 'qr: a');
  const f = await runCooperatively(householderQr(work, m, n));
  return { q: colMajorToRowMajorF32(f.q, m, n), r: colMajorToRowMajorF32(f.r, n, n) };
}
