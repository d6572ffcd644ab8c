/**
 * Optimal rank-k factors of a product up [m,R] @ down [R,n] for the LoRA operations (SVD merge,
 * resize), without forming the product and without an m×R orthogonal factor.
 *
 * Both Gram matrices are R×R: G_u = upᵀ·up and G_d = down·downᵀ, accumulated in float64 with a
 * SIMD kernel (exact to rounding). A pivoted Cholesky factorisation G = SᵀS (S is r×R, r the
 * numerical rank: stacked LoRAs are often rank-deficient, so pivots under 1e-14 of the largest,
 * directions under 1e-7 of the largest singular value, are dropped) gives up = Q_u S_u and
 * downᵀ = Q_d S_d with orthonormal Q_u = up·S_u⁻ᴿ and Q_d, S⁻ᴿ being the right inverse from the
 * triangular part of the factor. Then
 *   up @ down = Q_u (S_u S_dᵀ) Q_dᵀ,   and the SVD of the small core C = S_u S_dᵀ = X Σ Yᵀ
 * is the SVD of the product. The results are R×k maps applied to the original factors on the
 * backend:  up' = up · S_u⁻ᴿ X_k Σ_k^½,   down' = (S_d⁻ᴿ Y_k Σ_k^½)ᵀ · down.
 *
 * This costs m·R² + n·R² multiply-adds for the Grams, one R×R SVD and two thin products, against
 * the Householder QR of both factors in lowRankSvd (the linalg reference), which is about ten times
 * slower on the 21504-row FLUX weights.
 */
import { matmul, svdSmall } from '../tensor/linalg.ts';
import { rowGram } from '../tensor/gram-simd.ts';

const DROP = 1e-14;

export interface ProductSvd {
  /** [m, k]: u·√σ. */
  up: Float32Array;
  /** [k, n]: √σ·vᵀ. */
  down: Float32Array;
  k: number;
  /** Every singular value of the product (descending), for choosing k and measuring error. */
  singular: Float64Array;
}

interface Cholesky {
  /** R×r lower-trapezoidal factor in pivot order: G[perm][perm] ≈ L·Lᵀ. */
  l: Float64Array;
  perm: Int32Array;
  r: number;
}

/** Pivoted (rank-revealing) Cholesky of a symmetric positive semi-definite R×R matrix. */
function pivotedCholesky(g: Float64Array, R: number): Cholesky {
  const a = Float64Array.from(g);
  const perm = Int32Array.from({ length: R }, (_, i) => i);
  const l = new Float64Array(R * R);
  let maxDiag = 0;
  for (let i = 0; i < R; i++) maxDiag = Math.max(maxDiag, a[i * R + i]!);
  let r = 0;
  for (; r < R; r++) {
    let j = r;
    for (let i = r + 1; i < R; i++) if (a[i * R + i]! > a[j * R + j]!) j = i;
    if (!(a[j * R + j]! > maxDiag * DROP)) break;
    if (j !== r) {
      // Swap rows/columns r and j of the remaining matrix and of L's finished columns.
      for (let c = 0; c < R; c++) [a[r * R + c], a[j * R + c]] = [a[j * R + c]!, a[r * R + c]!];
      for (let c = 0; c < R; c++) [a[c * R + r], a[c * R + j]] = [a[c * R + j]!, a[c * R + r]!];
      for (let c = 0; c < r; c++) [l[r * R + c], l[j * R + c]] = [l[j * R + c]!, l[r * R + c]!];
      [perm[r], perm[j]] = [perm[j]!, perm[r]!];
    }
    const d = Math.sqrt(a[r * R + r]!);
    l[r * R + r] = d;
    for (let i = r + 1; i < R; i++) l[i * R + r] = a[i * R + r]! / d;
    for (let i = r + 1; i < R; i++) {
      const li = l[i * R + r]!;
      for (let c = r + 1; c <= i; c++) {
        const v = a[i * R + c]! - li * l[c * R + r]!;
        a[i * R + c] = v;
        a[c * R + i] = v;
      }
    }
  }
  return { l, perm, r };
}

/** S = Lᵀ·P (r×R, original column order): G ≈ SᵀS. */
function factorS({ l, perm, r }: Cholesky, R: number): Float64Array {
  const s = new Float64Array(r * R);
  for (let i = 0; i < R; i++) for (let t = 0; t < Math.min(r, i + 1); t++) s[t * R + perm[i]!] = l[i * R + t]!;
  return s;
}

/** S⁻ᴿ·Z (R×k) for Z (r×k): back-substitution with the triangular part L₁ᵀ, zero on the dropped pivots. */
function rightSolve({ l, perm, r }: Cholesky, R: number, z: Float64Array, k: number): Float64Array {
  const w = new Float64Array(r * k);
  for (let i = r - 1; i >= 0; i--)
    for (let t = 0; t < k; t++) {
      let v = z[i * k + t]!;
      for (let j = i + 1; j < r; j++) v -= l[j * R + i]! * w[j * k + t]!;
      w[i * k + t] = v / l[i * R + i]!;
    }
  const out = new Float64Array(R * k);
  for (let i = 0; i < r; i++) for (let t = 0; t < k; t++) out[perm[i]! * k + t] = w[i * k + t]!;
  return out;
}

/**
 * The SVD of up @ down truncated to `choose(singular)` terms. `choose` receives the full
 * descending spectrum and returns k ≥ 1.
 */
export async function productSvd(up: Float32Array, down: Float32Array, m: number, R: number, n: number, choose: (singular: Float64Array) => number): Promise<ProductSvd> {
  // The columns of up and the rows of down, as float64 rows: both Grams are dot products of rows.
  const cu = pivotedCholesky(rowGram(R, m, (view, stride) => {
    for (let i = 0; i < m; i++) for (let p = 0; p < R; p++) view[p * stride + i] = up[i * R + p]!;
  }), R);
  const cd = pivotedCholesky(rowGram(R, n, (view, stride) => {
    for (let p = 0; p < R; p++) view.set(down.subarray(p * n, (p + 1) * n), p * stride);
  }), R);
  if (cu.r === 0 || cd.r === 0) {
    return { up: new Float32Array(m), down: new Float32Array(n), k: 1, singular: new Float64Array(1) };
  }
  const su = factorS(cu, R);
  const sd = factorS(cd, R);
  const core = new Float64Array(cu.r * cd.r);
  for (let i = 0; i < cu.r; i++)
    for (let j = 0; j < cd.r; j++) {
      let v = 0;
      for (let p = 0; p < R; p++) v += su[i * R + p]! * sd[j * R + p]!;
      core[i * cd.r + j] = v;
    }
  const c = svdSmall(core, cu.r, cd.r);
  const kk = c.s.length;
  const k = Math.max(1, Math.min(kk, choose(c.s)));
  // Z_u = X_k Σ_k^½ (r_u×k), Z_d = Y_k Σ_k^½ (r_d×k).
  const zu = new Float64Array(cu.r * k);
  const zd = new Float64Array(cd.r * k);
  for (let t = 0; t < k; t++) {
    const root = Math.sqrt(c.s[t]!);
    for (let i = 0; i < cu.r; i++) zu[i * k + t] = c.u[i * kk + t]! * root;
    for (let j = 0; j < cd.r; j++) zd[j * k + t] = c.vt[t * cd.r + j]! * root;
  }
  const tu = Float32Array.from(rightSolve(cu, R, zu, k));
  const tdT = rightSolve(cd, R, zd, k);
  const td = new Float32Array(k * R);
  for (let p = 0; p < R; p++) for (let t = 0; t < k; t++) td[t * R + p] = tdT[p * k + t]!;
  const [outUp, outDown] = await Promise.all([matmul(up, [m, R], tu, [R, k]), matmul(td, [k, R], down, [R, n])]);
  return { up: outUp, down: outDown, k, singular: c.s };
}
