/**
 * Small dense SVD in float64, after Drmač & Veselić's preconditioned one-sided Jacobi: Householder
 * QR with column pivoting, A·P = Q·R, then one-sided (Hestenes) Jacobi on Rᵀ. Pivoting makes R
 * rank-revealing, so the rounding-noise rows of a rank-deficient input are dropped before Jacobi
 * ever sees them, and Jacobi on the graded Rᵀ converges in a few sweeps. One-sided Jacobi has no
 * convergence corner cases and computes small singular values to high relative accuracy. The
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

  const { q, r, perm } = yield* householderQr(a, m, n, true);
  // Rows of R below max(m, n)·eps·|R₀₀| are rounding noise (pivoting sorts |Rⱼⱼ| descending).
  const noise = Math.max(m, n) * EPS * Math.abs(r[0]);
  let rank = 0;
  while (rank < n && Math.abs(r[rank * n + rank]) > noise) rank++;
  // X = Rᵀ restricted to the numerical rank: column j of X is row j of R (zero past the rank).
  const x = new Float64Array(n * n);
  for (let j = 0; j < rank; j++) {
    for (let c = j; c < n; c++) x[j * n + c] = r[c * n + j];
  }
  // Jacobi on the columns of Rᵀ gives Rᵀ·W = Ũ·Σ, so R = W·Σ·Ũᵀ and A·P = (Q·W)·Σ·Ũᵀ.
  const w = new Float64Array(n * n);
  for (let j = 0; j < n; j++) w[j * n + j] = 1;
  const { norms2, negligible } = yield* jacobiSweeps(x, n, n, w);

  const order = Array.from({ length: n }, (_, j) => j).sort((p, t) => norms2[t] - norms2[p]);
  const s = new Float64Array(k);
  const ut = new Float64Array(n * k); // Ũ, becomes V after un-pivoting
  const ws = new Float64Array(n * k); // W sorted, becomes U after multiplying by Q
  const present: boolean[] = [];
  for (let t = 0; t < k; t++) {
    const j = order[t];
    const norm = Math.sqrt(norms2[j]);
    s[t] = norm / scale;
    present.push(!negligible[j]);
    if (!negligible[j]) {
      const inv = 1 / norm;
      for (let i = 0; i < n; i++) ut[t * n + i] = x[j * n + i] * inv;
    }
    ws.set(w.subarray(j * n, j * n + n), t * n);
  }
  completeOrthonormal(ut, n, k, present);
  const v = new Float64Array(n * k);
  const p = perm as Int32Array;
  for (let t = 0; t < k; t++) {
    for (let i = 0; i < n; i++) v[t * n + p[i]] = ut[t * n + i];
  }
  // U = Q·W: m×n times n×k.
  const u = new Float64Array(m * k);
  for (let t = 0; t < k; t++) {
    const dst = t * m;
    for (let j = 0; j < n; j++) {
      const coef = ws[t * n + j];
      if (coef === 0) continue;
      const src = j * m;
      for (let i = 0; i < m; i++) u[dst + i] += coef * q[src + i];
    }
    yield;
  }
  return { u, s, v, k };
}

/**
 * Cyclic one-sided Jacobi: rotates column pairs of the column-major rows×cols `x` until every pair
 * is orthogonal to working precision, accumulating the rotations into `v` (cols×cols). Zero
 * columns (past the numerical rank) are skipped and reported in `negligible`; the caller completes
 * their directions. Returns the squared column norms.
 */
function* jacobiSweeps(x: Float64Array, rows: number, cols: number, v: Float64Array): Steps<{ norms2: Float64Array; negligible: boolean[] }> {
  const tol = Math.max(1, Math.sqrt(rows)) * EPS;
  const norms2 = new Float64Array(cols);
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    // Fresh norms each sweep; within a sweep the rotations keep them current.
    for (let j = 0; j < cols; j++) {
      let ss = 0;
      for (let i = 0; i < rows; i++) ss += x[j * rows + i] * x[j * rows + i];
      norms2[j] = ss;
    }
    const negligible = Array.from(norms2, (n2) => !(n2 > 1e-300));
    let rotated = false;
    for (let p = 0; p < cols - 1; p++) {
      if (negligible[p]) continue;
      const xp = p * rows;
      for (let r = p + 1; r < cols; r++) {
        if (negligible[r]) continue;
        const xr = r * rows;
        let gamma = 0;
        for (let i = 0; i < rows; i++) gamma += x[xp + i] * x[xr + i];
        const alpha = norms2[p];
        const beta = norms2[r];
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        const [np2, nr2] = rotateMeasured(x, xp, xr, rows, c, s);
        norms2[p] = np2;
        norms2[r] = nr2;
        rotate(v, p * cols, r * cols, cols, c, s);
      }
      yield;
    }
    if (!rotated) return { norms2, negligible };
  }
  throw new LinalgError(`Jacobi SVD did not converge in ${MAX_SWEEPS} sweeps (${rows}×${cols}); the input is likely corrupt`);
}

/** rotate() that also returns the new squared norms of both columns. */
function rotateMeasured(x: Float64Array, p: number, r: number, len: number, c: number, s: number): [number, number] {
  let np2 = 0;
  let nr2 = 0;
  for (let i = 0; i < len; i++) {
    const a = x[p + i];
    const b = x[r + i];
    const a2 = c * a - s * b;
    const b2 = s * a + c * b;
    x[p + i] = a2;
    x[r + i] = b2;
    np2 += a2 * a2;
    nr2 += b2 * b2;
  }
  return [np2, nr2];
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
