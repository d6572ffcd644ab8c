/**
 * Choosing a rank and measuring what it costs: the factorisations behind merge (svd), resize,
 * extract and refactor, with the relative Frobenius error ‖ΔW − ΔWₖ‖ / ‖ΔW‖ each one reports.
 */
import { keptEnergy, lowRankSvd, matmul, randomizedSvd, randomizedSvdByEnergy, rankForEnergy, sumOfSquares } from '../tensor/linalg.ts';
import { splitSvd } from './factors.ts';
import { inputError, type LoraflowError } from '../errors.ts';
import { countNonFinite } from '../tensor/finite.ts';

export interface RankChoice {
  /** Fixed rank (an upper bound when `energy` is also given). */
  rank?: number;
  /** Keep the smallest rank whose singular values hold this fraction of ‖ΔW‖²_F (0 < energy ≤ 1). */
  energy?: number;
}

export function rankChoiceError(message: string): LoraflowError {
  return inputError('RANK_CHOICE', message);
}

/** Validates a rank choice; `required` makes "neither given" an error naming the operation. */
export function checkRankChoice(choice: RankChoice, what: string, required: boolean): void {
  const { rank, energy } = choice;
  if (rank !== undefined && (!Number.isInteger(rank) || rank < 1)) throw rankChoiceError(`${what}: rank must be a positive integer, got ${rank}`);
  if (energy !== undefined && !(energy > 0 && energy <= 1)) throw rankChoiceError(`${what}: energy must be in (0, 1], got ${energy}`);
  if (required && rank === undefined && energy === undefined) throw rankChoiceError(`${what}: give a rank or an energy fraction`);
}

/** Names what is being factored, for the error when it holds NaN or ±Inf. */
export interface Factoring {
  what?: string;
}

/**
 * An SVD of NaN or ±Inf has no answer: values let through with allowNonFinite reach here as an
 * input error naming what was being factored and how many such values it holds, not as a
 * failed linear-algebra routine.
 */
function refuseNonFinite(what: string | undefined, ...arrays: Float32Array[]): void {
  const count = arrays.reduce((s, a) => s + countNonFinite(a), 0);
  if (count === 0) return;
  throw inputError(
    'NON_FINITE',
    `${what ?? 'factorisation'}: ${count} non-finite value${count === 1 ? '' : 's'} (NaN/±Inf) in what is to be factored; an SVD cannot factor them (an exact concat merge carries them through; better, fix or drop the file)`,
  );
}

export interface LowRank {
  /** [rows, k] */
  up: Float32Array;
  /** [k, cols] */
  down: Float32Array;
  k: number;
  /** ‖ΔW − up@down‖_F / ‖ΔW‖_F (0 for a zero ΔW). */
  relError: number;
  /** ‖ΔW‖²_F and the part of it the kept rank misses, for totals over many modules. */
  totalEnergy: number;
  discardedEnergy: number;
}

/** k from the full singular spectrum `s` (descending), never 0 and never past the spectrum. */
function chooseRank(s: ArrayLike<number>, choice: RankChoice): number {
  let k = s.length;
  if (choice.energy !== undefined && choice.energy < 1) k = rankForEnergy(Float64Array.from(s), choice.energy);
  if (choice.rank !== undefined) k = Math.min(k, choice.rank);
  return Math.max(1, Math.min(k, s.length));
}

/**
 * Optimal rank-k factors of up [m,R] @ down [R,n] without forming the product (lowRankSvd), with k
 * chosen from the exact spectrum of the product; √σ goes to each side.
 */
export async function truncateProduct(up: Float32Array, down: Float32Array, m: number, R: number, n: number, choice: RankChoice & Factoring): Promise<LowRank> {
  refuseNonFinite(choice.what, up, down);
  let total = 0;
  let discarded = 0;
  const svd = await lowRankSvd(up, down, m, R, n, (s) => {
    const k = chooseRank(s, choice);
    total = sumOfSquares(s);
    discarded = sumOfSquares(s.subarray(k));
    return k;
  });
  const split = splitSvd(svd.u, svd.s, svd.vt, m, svd.k, n);
  return { ...split, k: svd.k, relError: total > 0 ? Math.sqrt(discarded / total) : 0, totalEnergy: total, discardedEnergy: discarded };
}

/** Residual energy ‖w − up@down‖² in float64, for when the spectral estimate is swamped by rounding. */
async function residualEnergy(w: Float32Array, up: Float32Array, down: Float32Array, m: number, k: number, n: number): Promise<number> {
  const recon = await matmul(up, [m, k], down, [k, n]);
  let e = 0;
  for (let i = 0; i < w.length; i++) {
    const d = w[i]! - recon[i]!;
    e += d * d;
  }
  return e;
}

/**
 * Low-rank factors of a dense matrix by randomized SVD (fixed rank, or by energy up to `maxRank`).
 * The error comes from ‖w‖² − Σs² (exact for the projection randomized SVD computes); when that is
 * under 1% it is recomputed from the residual, because the subtraction loses the small digits.
 */
export async function factorizeDense(w: Float32Array, m: number, n: number, choice: RankChoice & Factoring & { maxRank?: number; seed?: number }): Promise<LowRank> {
  refuseNonFinite(choice.what, w);
  const total = sumOfSquares(w);
  if (total === 0) return { up: new Float32Array(m), down: new Float32Array(n), k: 1, relError: 0, totalEnergy: 0, discardedEnergy: 0 };
  const limit = Math.min(m, n, choice.maxRank ?? Infinity, choice.rank ?? Infinity);
  const svd =
    choice.energy !== undefined && choice.energy < 1
      ? await randomizedSvdByEnergy(w, m, n, { energy: choice.energy, maxRank: limit, seed: choice.seed })
      : await randomizedSvd(w, m, n, { rank: limit, seed: choice.seed });
  const k = Math.max(1, Math.min(svd.k, limit));
  const { up, down } = splitSvd(svd.u, svd.s, svd.vt, m, svd.k, n, k);
  let discarded = Math.max(0, total - keptEnergy(svd.s, k));
  if (discarded / total < 1e-4) discarded = await residualEnergy(w, up, down, m, k, n);
  return { up, down, k, relError: Math.sqrt(discarded / total), totalEnergy: total, discardedEnergy: discarded };
}

/** What the overall error needs of one fit (kept instead of the fit, so its factors can be freed). */
export type FitEnergy = Pick<LowRank, 'totalEnergy' | 'discardedEnergy'>;

export const energyOf = ({ totalEnergy, discardedEnergy }: FitEnergy): FitEnergy => ({ totalEnergy, discardedEnergy });

/** √(Σ discarded / Σ total) over many modules: the error of the whole set. */
export function overallError(parts: readonly FitEnergy[]): number {
  let total = 0;
  let discarded = 0;
  for (const p of parts) {
    total += p.totalEnergy;
    discarded += p.discardedEnergy;
  }
  return total > 0 ? Math.sqrt(discarded / total) : 0;
}
