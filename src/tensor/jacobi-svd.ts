/**
 * Small dense SVD in float64: Householder QR to square the problem, then one-sided (Hestenes)
 * Jacobi on R. One-sided Jacobi is slower than Golub–Kahan for large matrices but is simple, has no
 * convergence corner cases, and computes small singular values to high relative accuracy. The
 * matrices it sees here are the cores of LoRA merges and randomized SVDs: up to a few hundred
 * columns.
 */
import type { Steps } from './cooperative.ts';
import { householderQr } from './householder.ts';
import { LinalgError } from './linalg-error.ts';

const EPS = 2 ** -52;
const MAX_SWEEPS = 60;

export interface ColMajorSvd {
  /** Column-major rows×k left singular vectors, orthonormal columns. */
  u: Float64Array;
  /** k singular values, descending, ≥ 0. */
  s: Float64Array;
  /** Column-major cols×k right singular vectors, orthonormal columns. */
  v: Float64Array;
  k: number;
}

/** SVD of the column-major rows×cols matrix `a` (consumed), k = min(rows, cols). */
export function* svdColMajor(a: Float64Array, rows: number, cols: number): Steps<ColMajorSvd> {
  if (rows >= cols) return yield* svdTall(a, rows, cols);
  // Aᵀ in column-major order is A's row-major order.
  const at = new Float64Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    for (let i = 0; i < rows; i++) at[i * cols + j] = a[j * rows + i];
  }
  const t = yield* svdTall(at, cols, rows);
  return { u: t.v, s: t.s, v: t.u, k: t.k };
}

function* svdTall(a: Float64Array, m: number, n: number): Steps<ColMajorSvd> {
  const k = n;
  if (k === 0) return { u: new Float64Array(0), s: new Float64Array(0), v: new Float64Array(0), k };
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) maxAbs = Math.max(maxAbs, Math.abs(a[i]));
  // Scaling to max |a| = 1 keeps squared norms far from overflow and underflow.
  const scale = maxAbs > 0 ? 1 / maxAbs : 1;
  if (scale !== 1) for (let i = 0; i < a.length; i++) a[i] *= scale;

  let x: Float64Array;
  let q: Float64Array | undefined;
  if (m > n) {
    const qr = yield* householderQr(a, m, n);
    x = qr.r;
    q = qr.q;
  } else {
    x = a;
  }
  const v = new Float64Array(n * n);
  for (let j = 0; j < n; j++) v[j * n + j] = 1;
  yield* jacobiSweeps(x, n, n, v);

  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[j * n + i] * x[j * n + i];
    norms[j] = Math.sqrt(ss);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((p, r) => norms[r] - norms[p]);
  const s = new Float64Array(k);
  const ux = new Float64Array(n * k);
  const vs = new Float64Array(n * k);
  const present: boolean[] = [];
  for (let t = 0; t < k; t++) {
    const j = order[t];
    s[t] = norms[j] / scale;
    const usable = norms[j] > 1e-290;
    present.push(usable);
    if (usable) {
      const inv = 1 / norms[j];
      for (let i = 0; i < n; i++) ux[t * n + i] = x[j * n + i] * inv;
    }
    vs.set(v.subarray(j * n, j * n + n), t * n);
  }
  completeOrthonormal(ux, n, k, present);
  if (!q) return { u: ux, s, v: vs, k };
  // U = Q·U_R: m×n times n×k.
  const u = new Float64Array(m * k);
  for (let t = 0; t < k; t++) {
    const dst = t * m;
    for (let j = 0; j < n; j++) {
      const coef = ux[t * n + j];
      if (coef === 0) continue;
      const src = j * m;
      for (let i = 0; i < m; i++) u[dst + i] += coef * q[src + i];
    }
    yield;
  }
  return { u, s, v: vs, k };
}

/**
 * Cyclic one-sided Jacobi: rotates column pairs of the column-major rows×cols `x` until every pair
 * is orthogonal to working precision, accumulating the rotations into `v` (cols×cols).
 */
function* jacobiSweeps(x: Float64Array, rows: number, cols: number, v: Float64Array): Steps<void> {
  const tol = Math.max(1, Math.sqrt(rows)) * EPS;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < cols - 1; p++) {
      const xp = p * rows;
      for (let r = p + 1; r < cols; r++) {
        const xr = r * rows;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < rows; i++) {
          const a = x[xp + i];
          const b = x[xr + i];
          alpha += a * a;
          beta += b * b;
          gamma += a * b;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        rotate(x, xp, xr, rows, c, s);
        rotate(v, p * cols, r * cols, cols, c, s);
      }
      yield;
    }
    if (!rotated) return;
  }
  throw new LinalgError(`Jacobi SVD did not converge in ${MAX_SWEEPS} sweeps (${rows}×${cols}); the input is likely corrupt`);
}

function rotate(x: Float64Array, p: number, r: number, len: number, c: number, s: number): void {
  for (let i = 0; i < len; i++) {
    const a = x[p + i];
    const b = x[r + i];
    x[p + i] = c * a - s * b;
    x[r + i] = s * a + c * b;
  }
}

/**
 * Fills the columns of the column-major rows×cols `u` marked absent (zero singular values have no
 * defined direction) with unit vectors orthogonal to all others, so U stays orthonormal.
 */
export function completeOrthonormal(u: Float64Array, rows: number, cols: number, present: boolean[]): void {
  for (let t = 0; t < cols; t++) {
    if (present[t]) continue;
    // The standard basis vector with the largest component outside span(U) is the best-conditioned
    // start for Gram–Schmidt.
    let best = 0;
    let bestResidual = -1;
    for (let i = 0; i < rows; i++) {
      let inSpan = 0;
      for (let c = 0; c < cols; c++) if (present[c]) inSpan += u[c * rows + i] * u[c * rows + i];
      if (1 - inSpan > bestResidual) {
        bestResidual = 1 - inSpan;
        best = i;
      }
    }
    const col = u.subarray(t * rows, t * rows + rows);
    col.fill(0);
    col[best] = 1;
    for (let pass = 0; pass < 2; pass++) {
      for (let c = 0; c < cols; c++) {
        if (!present[c]) continue;
        const other = u.subarray(c * rows, c * rows + rows);
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += other[i] * col[i];
        for (let i = 0; i < rows; i++) col[i] -= dot * other[i];
      }
    }
    let norm = 0;
    for (let i = 0; i < rows; i++) norm += col[i] * col[i];
    norm = Math.sqrt(norm);
    for (let i = 0; i < rows; i++) col[i] /= norm;
    present[t] = true;
  }
}
