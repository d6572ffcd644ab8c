/**
 * Truncated SVD of a product up·down without forming it: QR both factors, SVD the small core.
 *
 *   up = Qu·Ru,  downᵀ = Qd·Rd,  Ru·Rdᵀ = X·Σ·Yᵀ   ⇒   up·down = (Qu·X)·Σ·(Qd·Y)ᵀ
 *
 * Exact (Eckart–Young optimal at every rank) in O((m+n)·R² + R³) instead of the O(m·n·min(m,n)) of
 * a dense SVD. Callers stack several LoRAs (scales folded into up) into one up/down pair to merge
 * or resize them.
 */
import { runCooperatively } from './cooperative.ts';
import { householderQr } from './householder.ts';
import { svdColMajor } from './jacobi-svd.ts';
import { assertFinite, assertShape, colMajorToRowMajorF32, toColMajorF64 } from './layout.ts';
import { energyFraction, keptEnergy } from './energy.ts';
import { LinalgError } from './linalg-error.ts';

export interface LowRankSvd {
  /** m×k row-major, orthonormal columns. */
  u: Float32Array;
  /** k singular values, descending. */
  s: Float32Array;
  /** k×n row-major, orthonormal rows. */
  vt: Float32Array;
  k: number;
  /** Σ_{i<k}σᵢ² / ‖up·down‖²_F: the fraction of the product's energy the rank-k result keeps. */
  energyKept: number;
}

/**
 * @param up    m×R row-major
 * @param down  R×n row-major
 * @param rank  singular triplets to keep (default R); capped at min(m, n, R)
 */
export async function lowRankSvd(
  up: Float32Array,
  down: Float32Array,
  m: number,
  R: number,
  n: number,
  rank?: number,
): Promise<LowRankSvd> {
  assertShape(up, m, R, 'lowRankSvd: up');
  assertShape(down, R, n, 'lowRankSvd: down');
  if (rank !== undefined && !(Number.isSafeInteger(rank) && rank >= 0)) {
    throw new LinalgError(`lowRankSvd: rank must be a non-negative integer, got ${rank}`);
  }
  const kMax = Math.min(m, n, R);
  const k = Math.min(rank ?? R, kMax);
  if (kMax === 0) {
    return { u: new Float32Array(m * k), s: new Float32Array(k), vt: new Float32Array(k * n), k, energyKept: 1 };
  }

  const upQr = await runCooperatively(householderQr(toColMajorF64(up, m, R, 'lowRankSvd: up'), m, R));
  // downᵀ (n×R) in column-major order is down's row-major order.
  const downT = Float64Array.from(down);
  assertFinite(downT, 'lowRankSvd: down');
  const downQr = await runCooperatively(householderQr(downT, n, R));

  // Core Ru·Rdᵀ: (pu×R)·(R×pd), column-major.
  const pu = upQr.p;
  const pd = downQr.p;
  const core = new Float64Array(pu * pd);
  for (let j = 0; j < pd; j++) {
    for (let t = 0; t < R; t++) {
      const rd = downQr.r[t * pd + j];
      if (rd === 0) continue;
      for (let i = 0; i < pu; i++) core[j * pu + i] += upQr.r[t * pu + i] * rd;
    }
  }
  const svd = await runCooperatively(svdColMajor(core, pu, pd));

  const u = combineColumns(upQr.q, m, pu, svd.u, k);
  const v = combineColumns(downQr.q, n, pd, svd.v, k);
  const s = Float32Array.from(svd.s.subarray(0, k));
  return {
    u: colMajorToRowMajorF32(u, m, k),
    s,
    // V column-major n×k is Vᵀ row-major k×n.
    vt: Float32Array.from(v),
    k,
    energyKept: energyFraction(svd.s, k, keptEnergy(svd.s, svd.k)),
  };
}

/** Q·C[:, :k] for column-major Q (rows×p) and C (p×≥k): column-major rows×k. */
function combineColumns(q: Float64Array, rows: number, p: number, c: Float64Array, k: number): Float64Array {
  const out = new Float64Array(rows * k);
  for (let t = 0; t < k; t++) {
    const dst = out.subarray(t * rows, (t + 1) * rows);
    for (let j = 0; j < p; j++) {
      const coef = c[t * p + j];
      if (coef === 0) continue;
      const src = j * rows;
      for (let i = 0; i < rows; i++) dst[i] += coef * q[src + i];
    }
  }
  return out;
}
