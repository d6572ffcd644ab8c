/**
 * Matrix layout helpers. The public API speaks row-major Float32Array (the safetensors layout);
 * the float64 kernels work column-major, where the columns they sweep are contiguous.
 */
import { LinalgError } from './linalg-error.ts';

/** Cache-blocked transpose of a row-major rows×cols matrix into a new row-major cols×rows one. */
export function transposeF32(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(rows, i0 + B);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const j1 = Math.min(cols, j0 + B);
      for (let i = i0; i < i1; i++) {
        const src = i * cols;
        for (let j = j0; j < j1; j++) out[j * rows + i] = a[src + j];
      }
    }
  }
  return out;
}

/** Columns c0..c1-1 of a row-major rows×cols matrix, transposed: a new (c1−c0)×rows row-major matrix. */
export function transposeColumns(a: Float32Array, rows: number, cols: number, c0: number, c1: number): Float32Array {
  const width = c1 - c0;
  const out = new Float32Array(width * rows);
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(rows, i0 + B);
    for (let j0 = c0; j0 < c1; j0 += B) {
      const j1 = Math.min(c1, j0 + B);
      for (let i = i0; i < i1; i++) {
        const src = i * cols;
        for (let j = j0; j < j1; j++) out[(j - c0) * rows + i] = a[src + j];
      }
    }
  }
  return out;
}

/**
 * Row-major rows×cols (f32 or f64) to column-major float64, rejecting NaN and infinities: they would
 * turn every singular value into NaN without saying where they came from.
 */
export function toColMajorF64(a: Float32Array | Float64Array, rows: number, cols: number, what: string): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const src = i * cols;
    for (let j = 0; j < cols; j++) out[j * rows + i] = a[src + j];
  }
  assertFinite(out, what);
  return out;
}

/** Column-major float64 rows×cols to a fresh row-major Float32Array. */
export function colMajorToRowMajorF32(a: Float64Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    const src = j * rows;
    for (let i = 0; i < rows; i++) out[i * cols + j] = a[src + i];
  }
  return out;
}

export function assertFinite(a: ArrayLike<number>, what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) {
      throw new LinalgError(`${what} contains a non-finite value (${a[i]}) at flat index ${i}`);
    }
  }
}

export function assertShape(a: ArrayLike<number>, rows: number, cols: number, what: string): void {
  for (const [dim, value] of [['rows', rows], ['cols', cols]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new LinalgError(`${what}: ${dim} must be a non-negative integer, got ${value}`);
    }
  }
  if (a.length !== rows * cols) {
    throw new LinalgError(`${what}: expected ${rows}×${cols} = ${rows * cols} elements, got ${a.length}`);
  }
}
