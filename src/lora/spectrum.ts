/**
 * Energy kept against rank: the fraction of ‖ΔW‖²_F the best rank-k approximation holds, k = 1, 2, …
 * (Σᵢ≤ₖ σᵢ² / Σ σᵢ²), so a rank can be chosen by eye.
 *
 *  - Of a sum of LoRAs on one weight (an SVD or concat merge): exact and complete, from the
 *    stacked factors' singular values (lowRankSvd: Grams of the factors and a small SVD, never
 *    the dense ΔW).
 *  - Of a factorisation that was truncated (a dense-method merge, an extraction): its output's own
 *    singular values give the curve up to the kept rank, and the reported relative error gives
 *    the whole: ‖ΔW‖² = kept / (1 − relError²). Past the kept rank the curve is not known.
 */
import type { Patch } from '../adapter/model.ts';
import { lowRankSvd } from '../tensor/linalg.ts';
import { readFactorPart, stackFactors, type FactorPart } from './factors.ts';

export interface EnergyCurve {
  /** energy[k − 1]: fraction of ‖ΔW‖² kept at rank k (non-decreasing, ≤ 1). */
  energy: number[];
  /** ‖ΔW‖²_F. */
  total: number;
  /** The curve reaches the full rank (it ends at 1); false: it stops at the kept rank. */
  complete: boolean;
}

/** Singular values of up [m, R] @ down [R, n], descending (float64), without forming the product. */
export async function productSingularValues(up: Float32Array, down: Float32Array, m: number, R: number, n: number): Promise<Float64Array> {
  let singular = new Float64Array(0);
  await lowRankSvd(up, down, m, R, n, (s) => {
    singular = s.slice();
    // rank 0: only the spectrum is wanted, no singular vectors are computed
    return 0;
  });
  return singular;
}

function cumulative(s: ArrayLike<number>, total: number): number[] {
  const out: number[] = [];
  let acc = 0;
  for (let i = 0; i < s.length; i++) {
    acc += s[i]! * s[i]!;
    out.push(total > 0 ? Math.min(1, acc / total) : 1);
  }
  return out;
}

/** The complete curve of Σ (weightᵢ · ΔWᵢ) over low-rank patches on one weight (rows relative to the lowest). */
export async function stackedCurve(patches: readonly { patch: Patch; weight: number }[]): Promise<EnergyCurve> {
  const top = Math.min(...patches.map((p) => p.patch.rows?.[0] ?? 0));
  const parts: FactorPart[] = await Promise.all(patches.map((p) => readFactorPart(p.patch, p.weight, top)));
  const rows = Math.max(...parts.map((p) => p.rowStart + p.rows));
  const cols = parts[0]!.cols;
  const stacked = stackFactors(parts, rows, cols);
  const s = await productSingularValues(stacked.up, stacked.down, rows, stacked.rank, cols);
  let total = 0;
  for (const v of s) total += v * v;
  return { energy: cumulative(s, total), total, complete: true };
}

/** The curve of a truncated factorisation up to its kept rank, from its output patch and reported error. */
export async function truncatedCurve(patch: Patch, relError: number): Promise<EnergyCurve> {
  const part = await readFactorPart(patch, 1);
  const s = await productSingularValues(part.up, part.down, part.rows, part.rank, part.cols);
  let kept = 0;
  for (const v of s) kept += v * v;
  kept *= part.factor * part.factor;
  const fraction = 1 - relError * relError;
  const total = fraction > 0 ? kept / fraction : kept;
  const scaled = Array.from(s, (v) => v * Math.abs(part.factor));
  return { energy: cumulative(scaled, total), total, complete: relError === 0 };
}
