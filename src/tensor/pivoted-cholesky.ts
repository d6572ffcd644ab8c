/**
 * Rank-revealing (pivoted) Cholesky of a float64 Gram matrix G = AᵀA, and the maps it gives: G ≈ SᵀS
 * with S = Lᵀ·P (r×R, r the numerical rank), so A = Q·S with orthonormal Q = A·S⁻ᴿ, S⁻ᴿ being the
 * right inverse built from the triangular part of L. The low-rank SVD (low-rank-svd.ts) uses it on
 * both factors of a LoRA product; stacked LoRAs are often rank-deficient (a LoRA merged with itself,
 * two trained from the same init), which is why the factorisation pivots and stops at the rank.
 */

/** Pivots under this fraction of the largest diagonal (directions under 1e-7 of σ₁ of A) end the factorisation. */
const DROP = 1e-14;

export interface PivotedCholesky {
  /** R×R storage of the R×r lower-trapezoidal factor in pivot order: G[perm][perm] ≈ L·Lᵀ. */
  l: Float64Array;
  perm: Int32Array;
  /** Numerical rank: the number of pivots kept. */
  r: number;
}

/** Pivoted Cholesky of the symmetric positive semi-definite R×R matrix `g` (row-major, not modified). */
export function pivotedCholesky(g: Float64Array, R: number): PivotedCholesky {
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

/** S = Lᵀ·P (r×R row-major, original column order): G ≈ SᵀS. */
export function choleskyFactorS({ l, perm, r }: PivotedCholesky, R: number): Float64Array {
  const s = new Float64Array(r * R);
  for (let i = 0; i < R; i++) for (let t = 0; t < Math.min(r, i + 1); t++) s[t * R + perm[i]!] = l[i * R + t]!;
  return s;
}

/** S⁻ᴿ·Z (R×k row-major) for Z (r×k): back-substitution with the triangular part L₁ᵀ, zero on the dropped pivots. */
export function solveRightInverse({ l, perm, r }: PivotedCholesky, R: number, z: Float64Array, k: number): Float64Array {
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
