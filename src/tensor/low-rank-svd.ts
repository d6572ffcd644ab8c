/**
 * Truncated SVD of a product up [m,R] · down [R,n] without forming it (the SVD merge and resize of
 * stacked LoRAs: scales folded into up, several LoRAs side by side), and without an m×R orthogonal
 * factor.
 *
 * Both Gram matrices are R×R: G_u = upᵀ·up and G_d = down·downᵀ, accumulated in float64 with a SIMD
 * kernel (exact to rounding). Their pivoted Cholesky factorisations G = SᵀS (pivoted-cholesky.ts;
 * S is r×R, r the numerical rank) give up = Q_u·S_u and downᵀ = Q_d·S_d with orthonormal
 * Q = factor·S⁻ᴿ. Then
 *
 *   up·down = Q_u·(S_u·S_dᵀ)·Q_dᵀ,   S_u·S_dᵀ = X·Σ·Yᵀ   ⇒   U = up·(S_u⁻ᴿ·X),  Vᵀ = (S_d⁻ᴿ·Y)ᵀ·down,
 *
 * Eckart–Young optimal at every rank. The cost is m·R² + n·R² multiply-adds for the Grams, one small
 * SVD and two thin products on the compute backend: 6–10× less time than Householder QR of both
 * factors on the 21504-row FLUX weights. Directions of a factor under 1e-7 of its largest singular
 * value (below float32 resolution of the factor itself) are dropped with the pivots.
 */
import { runCooperatively } from './cooperative.ts';
import { energyFraction, keptEnergy } from './energy.ts';
import { rowGram } from './gram-simd.ts';
import { completeOrthonormal, svdColMajor } from './jacobi-svd.ts';
import { assertFinite, assertShape, colMajorToRowMajorF32, toColMajorF64, transposeF32 } from './layout.ts';
import { LinalgError } from './linalg-error.ts';
import { matmul } from './matmul.ts';
import { choleskyFactorS, pivotedCholesky, solveRightInverse, type PivotedCholesky } from './pivoted-cholesky.ts';

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
 * Picks k from the product's singular values (descending, float64; only the numerically nonzero
 * ones, so a zero product gives an empty array). Lets callers choose by energy or error before any
 * singular vector is computed.
 */
export type RankChooser = (singular: Float64Array) => number;

/**
 * @param up    m×R row-major
 * @param down  R×n row-major
 * @param rank  singular triplets to keep (default R), or a RankChooser; capped at min(m, n, R).
 *              Past the product's numerical rank, U and V are completed to orthonormal columns
 *              (singular value 0).
 */
export async function lowRankSvd(
  up: Float32Array,
  down: Float32Array,
  m: number,
  R: number,
  n: number,
  rank?: number | RankChooser,
): Promise<LowRankSvd> {
  assertShape(up, m, R, 'lowRankSvd: up');
  assertShape(down, R, n, 'lowRankSvd: down');
  if (typeof rank === 'number') checkRank(rank, 'rank');
  assertFinite(up, 'lowRankSvd: up');
  assertFinite(down, 'lowRankSvd: down');
  const kMax = Math.min(m, n, R);
  if (kMax === 0) {
    return { u: new Float32Array(0), s: new Float32Array(0), vt: new Float32Array(0), k: 0, energyKept: 1 };
  }

  // The columns of up and the rows of down, as float64 rows: both Grams are dot products of rows.
  const cu = pivotedCholesky(rowGram(R, m, (view, stride) => {
    for (let i = 0; i < m; i++) for (let p = 0; p < R; p++) view[p * stride + i] = up[i * R + p]!;
  }), R);
  const cd = pivotedCholesky(rowGram(R, n, (view, stride) => {
    for (let p = 0; p < R; p++) view.set(down.subarray(p * n, (p + 1) * n), p * stride);
  }), R);
  const core = await runCooperatively(svdColMajor(coreProduct(cu, cd, R), cu.r, cd.r));
  const singular = core.s;
  const k = typeof rank === 'function' ? checkRank(rank(singular.slice()), 'chosen rank', kMax) : Math.min(rank ?? R, kMax);

  // U and Vᵀ for the directions the core has; the rest (zero singular values) are completed below.
  const kc = Math.min(k, core.k);
  const xu = new Float64Array(cu.r * kc);
  const yd = new Float64Array(cd.r * kc);
  for (let t = 0; t < kc; t++) {
    for (let i = 0; i < cu.r; i++) xu[i * kc + t] = core.u[t * cu.r + i]!;
    for (let j = 0; j < cd.r; j++) yd[j * kc + t] = core.v[t * cd.r + j]!;
  }
  const mapU = Float32Array.from(solveRightInverse(cu, R, xu, kc));
  const mapD = transposeF32(Float32Array.from(solveRightInverse(cd, R, yd, kc)), R, kc);
  const [u, vt] = kc === 0
    ? [new Float32Array(0), new Float32Array(0)]
    : await Promise.all([matmul(up, [m, R], mapU, [R, kc]), matmul(mapD, [kc, R], down, [R, n])]);

  const s = new Float32Array(k);
  s.set(singular.subarray(0, kc));
  return {
    u: k > kc ? completeColumns(u, m, kc, k) : u,
    s,
    // Vᵀ row-major k×n is V column-major n×k.
    vt: k > kc ? Float32Array.from(completeColumnMajor(vt, n, kc, k)) : vt,
    k,
    energyKept: energyFraction(singular, kc, keptEnergy(singular, singular.length)),
  };
}

function checkRank(k: number, what: string, max = Infinity): number {
  if (!(Number.isSafeInteger(k) && k >= 0)) throw new LinalgError(`lowRankSvd: ${what} must be a non-negative integer, got ${k}`);
  return Math.min(k, max);
}

/** The core S_u·S_dᵀ (r_u×r_d), column-major for the Jacobi SVD. */
function coreProduct(cu: PivotedCholesky, cd: PivotedCholesky, R: number): Float64Array {
  const su = choleskyFactorS(cu, R);
  const sd = choleskyFactorS(cd, R);
  const core = new Float64Array(cu.r * cd.r);
  for (let j = 0; j < cd.r; j++)
    for (let i = 0; i < cu.r; i++) {
      let v = 0;
      for (let p = 0; p < R; p++) v += su[i * R + p]! * sd[j * R + p]!;
      core[j * cu.r + i] = v;
    }
  return core;
}

/** Column-major rows×k float64 holding the rows×kc column-major `first`, completed to orthonormal columns. */
function completeColumnMajor(first: Float32Array | Float64Array, rows: number, kc: number, k: number): Float64Array {
  const out = new Float64Array(rows * k);
  out.set(first);
  completeOrthonormal(out, rows, k, Array.from({ length: k }, (_, t) => t < kc));
  return out;
}

/** The row-major rows×kc `u` widened to rows×k with orthonormal columns. */
function completeColumns(u: Float32Array, rows: number, kc: number, k: number): Float32Array {
  return colMajorToRowMajorF32(completeColumnMajor(toColMajorF64(u, rows, kc, 'lowRankSvd: U'), rows, kc, k), rows, k);
}
