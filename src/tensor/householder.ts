/**
 * Householder QR in float64 on column-major matrices. It is unconditionally stable: Q is orthonormal
 * to ~1e-15 whatever the conditioning of A, rank-deficient inputs included (stacked LoRA factors
 * often are: two LoRAs trained from the same init, or a LoRA merged with itself). CholeskyQR-type
 * methods built on the Gram matrix lose the directions below sqrt(eps)·σ₁, which in float32 is
 * already 3e-4 of the largest singular value.
 *
 * Cost 2·m·n² − ⅔n³ flops for the factorization plus the same again to form the thin Q; for the
 * skinny matrices this project factors (m up to 21504, n = a stacked LoRA rank) that is a small part
 * of the work.
 */
import type { Steps } from './cooperative.ts';

export interface ColMajorQr {
  /** Thin Q, column-major m×p, p = min(m, n). */
  q: Float64Array;
  /** R, column-major p×n, upper trapezoidal, non-negative diagonal. */
  r: Float64Array;
  p: number;
  /** With column pivoting: A[:, perm]= Q·R, and |R₀₀| ≥ |R₁₁| ≥ … . */
  perm?: Int32Array;
}

/**
 * Factors the column-major m×n matrix `a` (overwritten). Yields after each column so callers can
 * run it cooperatively. With `pivot`, each step takes the remaining column of largest norm
 * (rank-revealing QR), which the Jacobi SVD uses as a preconditioner.
 */
export function* householderQr(a: Float64Array, m: number, n: number, pivot = false): Steps<ColMajorQr> {
  const p = Math.min(m, n);
  const tau = new Float64Array(p);
  const perm = pivot ? Int32Array.from({ length: n }, (_, j) => j) : undefined;
  for (let j = 0; j < p; j++) {
    if (perm) pivotLargest(a, m, n, j, perm);
    tau[j] = makeReflector(a, m, j);
    if (tau[j] !== 0) applyReflector(a, m, j, tau[j], a, j + 1, n);
    yield;
  }
  const r = new Float64Array(p * n);
  for (let c = 0; c < n; c++) {
    const last = Math.min(c, p - 1);
    for (let i = 0; i <= last; i++) r[c * p + i] = a[c * m + i];
  }
  const q = new Float64Array(m * p);
  for (let j = 0; j < p; j++) q[j * m + j] = 1;
  // Backward accumulation: H_j only touches rows ≥ j, and columns < j of the partial product are
  // still unit vectors there, so each reflector is applied to columns j..p-1 only.
  for (let j = p - 1; j >= 0; j--) {
    if (tau[j] !== 0) applyReflector(a, m, j, tau[j], q, j, p);
    yield;
  }
  // A unique, sign-stable factorization: make diag(R) ≥ 0 by flipping matching Q columns.
  for (let j = 0; j < p; j++) {
    if (r[j * p + j] < 0) {
      for (let c = j; c < n; c++) r[c * p + j] = -r[c * p + j];
      for (let i = 0; i < m; i++) q[j * m + i] = -q[j * m + i];
    }
  }
  return { q, r, p, perm };
}

/**
 * Swaps into position j the column (among j..n-1) with the largest norm over rows j..m-1. Norms
 * are recomputed rather than downdated: downdating cancels exactly on the rank-deficient inputs
 * pivoting is for, and recomputing costs no more than the reflector application.
 */
function pivotLargest(a: Float64Array, m: number, n: number, j: number, perm: Int32Array): void {
  let best = j;
  let bestNorm = -1;
  for (let c = j; c < n; c++) {
    let ss = 0;
    for (let i = j; i < m; i++) ss += a[c * m + i] * a[c * m + i];
    if (ss > bestNorm) {
      bestNorm = ss;
      best = c;
    }
  }
  if (best === j) return;
  for (let i = 0; i < m; i++) {
    const t = a[j * m + i];
    a[j * m + i] = a[best * m + i];
    a[best * m + i] = t;
  }
  const t = perm[j];
  perm[j] = perm[best];
  perm[best] = t;
}

/**
 * Turns column j (rows j..m-1) into a reflector v with v[j] = 1 implicit, stored in rows j+1..m-1,
 * and R[j][j] in row j. Returns tau (0 when the column is already zero below the diagonal).
 */
function makeReflector(a: Float64Array, m: number, j: number): number {
  const col = j * m;
  let below = 0;
  for (let i = j + 1; i < m; i++) below += a[col + i] * a[col + i];
  if (below === 0) return 0;
  const alpha = a[col + j];
  const norm = Math.sqrt(alpha * alpha + below);
  // beta takes the sign opposite to alpha so alpha − beta never cancels.
  const beta = alpha <= 0 ? norm : -norm;
  const scale = 1 / (alpha - beta);
  for (let i = j + 1; i < m; i++) a[col + i] *= scale;
  a[col + j] = beta;
  return (beta - alpha) / beta;
}

/** Applies H = I − tau·v·vᵀ (reflector j stored in `v`) to columns from..to-1 of `x` (m rows). */
function applyReflector(v: Float64Array, m: number, j: number, tau: number, x: Float64Array, from: number, to: number): void {
  const vc = j * m;
  let c = from;
  // Two columns per pass: each load of v serves two dot products and two updates.
  for (; c + 1 < to; c += 2) {
    const x0 = c * m;
    const x1 = x0 + m;
    let s0 = x[x0 + j];
    let s1 = x[x1 + j];
    for (let i = j + 1; i < m; i++) {
      const vi = v[vc + i];
      s0 += vi * x[x0 + i];
      s1 += vi * x[x1 + i];
    }
    s0 *= tau;
    s1 *= tau;
    x[x0 + j] -= s0;
    x[x1 + j] -= s1;
    for (let i = j + 1; i < m; i++) {
      const vi = v[vc + i];
      x[x0 + i] -= s0 * vi;
      x[x1 + i] -= s1 * vi;
    }
  }
  if (c < to) {
    const x0 = c * m;
    let s = x[x0 + j];
    for (let i = j + 1; i < m; i++) s += v[vc + i] * x[x0 + i];
    s *= tau;
    x[x0 + j] -= s;
    for (let i = j + 1; i < m; i++) x[x0 + i] -= s * v[vc + i];
  }
}
