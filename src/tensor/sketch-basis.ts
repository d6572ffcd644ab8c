/**
 * Orthonormal bases for the thin sketches of randomized SVD (m×l, l = rank + oversample).
 *
 * Fast path, CholeskyQR2: the l×l Gram matrix YᵀY is accumulated in float64 (in float32 it would
 * square the condition number into noise: directions below √u·σ₁ ≈ 3e-4·σ₁ vanish), factored by
 * Cholesky in float64, and Q = Y·R⁻¹ runs on the backend as an untransposed product; a second pass
 * removes the loss of orthogonality of the first. The tall products stay on the backend; only l×l
 * matrices are factored in JavaScript.
 *
 * When the sketch is too ill-conditioned for that (κ ≳ 1e5, e.g. W has lower rank than the sketch,
 * as a diff of a LoRA-merged checkpoint does) Cholesky breaks down and the basis comes from float64
 * Householder QR instead, which is stable for any input and fills null directions with orthonormal
 * completions.
 */
import { tf } from './backend.ts';
import { runCooperatively } from './cooperative.ts';
import { householderQr } from './householder.ts';
import { colMajorToRowMajorF32, toColMajorF64 } from './layout.ts';

export type BasisMethod = 'cholesky-qr2' | 'householder';

export interface SketchBasis {
  /** rows×cols, orthonormal columns spanning the sketch's columns; the caller disposes it. */
  basis: tf.Tensor2D;
  method: BasisMethod;
}

/**
 * A Cholesky pivot below this fraction of the largest Gram diagonal means κ(Y) ≳ 1e5: Y·R⁻¹ in
 * float32 would then be too inaccurate for the second pass to repair.
 */
const PIVOT_FLOOR = 1e-10;
/** The first pass must leave Q₁ᵀQ₁ within this of I for the second to converge (κ(Q₁)² ≈ 1.2). */
const SECOND_PASS_LIMIT = 0.1;

/** Orthonormal basis of the columns of `sketch` (rows ≥ cols), which this consumes. */
export async function orthonormalBasis(sketch: tf.Tensor2D): Promise<SketchBasis> {
  const [rows, cols] = sketch.shape;
  try {
    const y = (await sketch.data()) as Float32Array;
    const viaCholesky = await choleskyQr2(sketch, y, rows, cols);
    if (viaCholesky) return { basis: viaCholesky, method: 'cholesky-qr2' };
    const f = await runCooperatively(householderQr(toColMajorF64(y, rows, cols, 'randomized SVD sketch'), rows, cols));
    return { basis: tf.tensor2d(colMajorToRowMajorF32(f.q, rows, cols), [rows, cols]), method: 'householder' };
  } finally {
    sketch.dispose();
  }
}

async function choleskyQr2(sketch: tf.Tensor2D, y: Float32Array, rows: number, cols: number): Promise<tf.Tensor2D | undefined> {
  const r1 = cholesky(gram(y, rows, cols), cols, PIVOT_FLOOR);
  if (!r1) return undefined;
  const q1 = timesInverse(sketch, r1, cols);
  try {
    const g2 = gram((await q1.data()) as Float32Array, rows, cols);
    if (maxDeviationFromIdentity(g2, cols) > SECOND_PASS_LIMIT) return undefined;
    const r2 = cholesky(g2, cols, PIVOT_FLOOR);
    return r2 ? timesInverse(q1, r2, cols) : undefined;
  } finally {
    q1.dispose();
  }
}

/** YᵀY (cols×cols, row-major, full) of a row-major rows×cols float32 matrix, in float64. */
export function gram(y: Float32Array, rows: number, cols: number): Float64Array {
  const g = new Float64Array(cols * cols);
  let i = 0;
  // Four rows per pass: one load-add-store of each Gram entry serves four rank-1 updates.
  for (; i + 3 < rows; i += 4) {
    const r0 = i * cols;
    const r1 = r0 + cols;
    const r2 = r1 + cols;
    const r3 = r2 + cols;
    for (let p = 0; p < cols; p++) {
      const a0 = y[r0 + p];
      const a1 = y[r1 + p];
      const a2 = y[r2 + p];
      const a3 = y[r3 + p];
      const gp = p * cols;
      for (let q = p; q < cols; q++) g[gp + q] += a0 * y[r0 + q] + a1 * y[r1 + q] + a2 * y[r2 + q] + a3 * y[r3 + q];
    }
  }
  for (; i < rows; i++) {
    const row = i * cols;
    for (let p = 0; p < cols; p++) {
      const yp = y[row + p];
      const gp = p * cols;
      for (let q = p; q < cols; q++) g[gp + q] += yp * y[row + q];
    }
  }
  for (let p = 0; p < cols; p++) for (let q = 0; q < p; q++) g[p * cols + q] = g[q * cols + p];
  return g;
}

/**
 * Upper-triangular R (row-major n×n) with G = RᵀR, or undefined when a pivot falls below
 * floor·max(diag G) (numerically singular for our purposes).
 */
export function cholesky(g: Float64Array, n: number, floor: number): Float64Array | undefined {
  let maxDiag = 0;
  for (let j = 0; j < n; j++) maxDiag = Math.max(maxDiag, g[j * n + j]);
  if (!(maxDiag > 0)) return undefined;
  const r = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = g[j * n + j];
    for (let k = 0; k < j; k++) d -= r[k * n + j] * r[k * n + j];
    if (!(d > floor * maxDiag)) return undefined;
    const rjj = Math.sqrt(d);
    r[j * n + j] = rjj;
    for (let c = j + 1; c < n; c++) {
      let s = g[j * n + c];
      for (let k = 0; k < j; k++) s -= r[k * n + j] * r[k * n + c];
      r[j * n + c] = s / rjj;
    }
  }
  return r;
}

/** y·R⁻¹ on the backend for upper-triangular row-major R (n×n). */
function timesInverse(y: tf.Tensor2D, r: Float64Array, n: number): tf.Tensor2D {
  const inv = new Float64Array(n * n);
  // Column c of R⁻¹ by back substitution on R·x = e_c.
  for (let c = 0; c < n; c++) {
    for (let i = c; i >= 0; i--) {
      let s = i === c ? 1 : 0;
      for (let k = i + 1; k <= c; k++) s -= r[i * n + k] * inv[k * n + c];
      inv[i * n + c] = s / r[i * n + i];
    }
  }
  const invTensor = tf.tensor2d(Float32Array.from(inv), [n, n]);
  try {
    return tf.matMul(y, invTensor);
  } finally {
    invTensor.dispose();
  }
}

function maxDeviationFromIdentity(g: Float64Array, n: number): number {
  let worst = 0;
  for (let p = 0; p < n; p++) {
    for (let q = 0; q < n; q++) worst = Math.max(worst, Math.abs(g[p * n + q] - (p === q ? 1 : 0)));
  }
  return worst;
}
