/**
 * Lazy tensor rearrangements done on stored bytes (row slices, gathers, concatenation, block
 * placement, swapping row halves). They move values without arithmetic, so a conversion built from
 * them is bit-exact; only `scaledTensor` with a factor other than 1 computes.
 */
import { decodeToF32, dtypeBytes, encodeFromF32, type DType } from '../tensor/dtype.ts';
import { castTensor, derivedTensor, numel, type LazyTensor } from '../tensor/lazy.ts';

function byteTensor(shape: readonly number[], dtype: DType, origin: string, produce: () => Promise<Uint8Array>): LazyTensor {
  return {
    shape,
    dtype,
    origin,
    bytes: produce,
    f32: async () => decodeToF32(await produce(), dtype),
  };
}

function rowBytes(t: { shape: readonly number[]; dtype: DType }): number {
  return numel(t.shape.slice(1)) * dtypeBytes(t.dtype);
}

/** Rows `start … start+len-1` (first dimension). */
export function rowSlice(t: LazyTensor, start: number, len: number): LazyTensor {
  if (start === 0 && len === t.shape[0]) return t;
  if (start < 0 || len < 0 || start + len > t.shape[0]!) throw new Error(`${t.origin}: rows ${start}..${start + len} outside [0, ${t.shape[0]})`);
  const rb = rowBytes(t);
  return byteTensor([len, ...t.shape.slice(1)], t.dtype, `${t.origin}[${start}:${start + len}]`, async () =>
    (await t.bytes()).slice(start * rb, (start + len) * rb));
}

/** The listed rows, in order. */
export function gatherRows(t: LazyTensor, rows: readonly number[]): LazyTensor {
  if (rows.length === t.shape[0] && rows.every((r, i) => r === i)) return t;
  const rb = rowBytes(t);
  return byteTensor([rows.length, ...t.shape.slice(1)], t.dtype, `${t.origin}[rows]`, async () => {
    const src = await t.bytes();
    const out = new Uint8Array(rows.length * rb);
    rows.forEach((r, i) => out.set(src.subarray(r * rb, (r + 1) * rb), i * rb));
    return out;
  });
}

/** The listed columns of a 2-D tensor, in order. */
export function gatherCols(t: LazyTensor, cols: readonly number[]): LazyTensor {
  const [rows, width] = t.shape as [number, number];
  if (cols.length === width && cols.every((c, i) => c === i)) return t;
  const es = dtypeBytes(t.dtype);
  return byteTensor([rows, cols.length], t.dtype, `${t.origin}[:,cols]`, async () => {
    const src = await t.bytes();
    const out = new Uint8Array(rows * cols.length * es);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols.length; j++) {
        const from = (r * width + cols[j]!) * es;
        out.set(src.subarray(from, from + es), (r * cols.length + j) * es);
      }
    }
    return out;
  });
}

/**
 * Tensors placed into a zero matrix of `shape` at the given row/column offsets (a block-diagonal
 * up, or one part's rows inside a fused weight). Zero is all-zero bytes in every float dtype.
 */
export function placeBlocks(shape: readonly [number, number], blocks: readonly { t: LazyTensor; row: number; col: number }[], dtype: DType, origin: string): LazyTensor {
  if (blocks.length === 1 && blocks[0]!.row === 0 && blocks[0]!.col === 0 && blocks[0]!.t.shape[0] === shape[0] && blocks[0]!.t.shape[1] === shape[1]) {
    return castTensor(blocks[0]!.t, dtype);
  }
  const es = dtypeBytes(dtype);
  for (const b of blocks) {
    const [r, c] = b.t.shape as [number, number];
    if (b.row < 0 || b.col < 0 || b.row + r > shape[0] || b.col + c > shape[1]) {
      throw new Error(`${origin}: block [${r},${c}] at (${b.row},${b.col}) does not fit in [${shape}]`);
    }
  }
  return byteTensor(shape, dtype, origin, async () => {
    const out = new Uint8Array(shape[0] * shape[1] * es);
    for (const b of blocks) {
      const src = await castTensor(b.t, dtype).bytes();
      const [r, c] = b.t.shape as [number, number];
      for (let i = 0; i < r; i++) out.set(src.subarray(i * c * es, (i + 1) * c * es), ((b.row + i) * shape[1] + b.col) * es);
    }
    return out;
  });
}

/** Tensors stacked along the first dimension (all cast to `dtype`). */
export function concatRows(ts: readonly LazyTensor[], dtype: DType, origin: string): LazyTensor {
  if (ts.length === 1) return castTensor(ts[0]!, dtype);
  const tail = ts[0]!.shape.slice(1);
  for (const t of ts) {
    if (t.shape.length !== tail.length + 1 || t.shape.slice(1).some((d, i) => d !== tail[i])) {
      throw new Error(`${origin}: cannot stack [${t.shape}] under [${ts[0]!.shape}]`);
    }
  }
  const rows = ts.reduce((s, t) => s + t.shape[0]!, 0);
  return byteTensor([rows, ...tail], dtype, origin, async () => {
    const parts = await Promise.all(ts.map((t) => castTensor(t, dtype).bytes()));
    const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  });
}

/** Swaps the first and second half of the rows (BFL (shift, scale) ⇄ diffusers (scale, shift)). */
export function swapRowHalves(t: LazyTensor): LazyTensor {
  const n = t.shape[0]!;
  const half = n / 2;
  const rows = Array.from({ length: n }, (_, i) => (i + half) % n);
  const g = gatherRows(t, rows);
  return { ...g, origin: `${t.origin} (row halves swapped)` };
}

/** The same bytes under another shape with as many elements. */
export function reshaped(t: LazyTensor, shape: readonly number[]): LazyTensor {
  if (numel(shape) !== numel(t.shape)) throw new Error(`${t.origin}: cannot view [${t.shape}] as [${shape}]`);
  if (shape.length === t.shape.length && shape.every((d, i) => d === t.shape[i])) return t;
  return { shape, dtype: t.dtype, origin: t.origin, f32: () => t.f32(), bytes: () => t.bytes() };
}

/** t·s stored as `dtype` (unchanged bytes when s = 1). */
export function scaledTensor(t: LazyTensor, s: number, dtype: DType = t.dtype): LazyTensor {
  if (s === 1) return castTensor(t, dtype);
  return derivedTensor(t, t.shape, (v) => {
    const out = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = v[i]! * s;
    return out;
  }, `${t.origin} ×${s}`, dtype);
}

/** A 0-d tensor (an alpha). */
export function scalarTensor(value: number, dtype: DType, origin = 'alpha'): LazyTensor {
  const v = Float32Array.of(value);
  return { shape: [], dtype, origin, f32: async () => v, bytes: async () => encodeFromF32(v, dtype) };
}

/** Whether two tensors hold the same shape, dtype and bytes. */
export async function sameTensor(a: LazyTensor, b: LazyTensor): Promise<boolean> {
  if (a === b) return true;
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return false;
  const [x, y] = await Promise.all([a.bytes(), b.bytes()]);
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

/**
 * The same tensor, read from its source once for `uses` readers (the parts a fused LoRA is split
 * into all slice the same up and down): the bytes are kept until the last reader has them, then
 * dropped, so memory holds one module's factors, not the file's.
 */
export function sharedReads(t: LazyTensor, uses: number): LazyTensor {
  if (uses <= 1) return t;
  let pending: Promise<Uint8Array> | undefined;
  let left = uses;
  const bytes = () => {
    pending ??= t.bytes();
    const p = pending;
    if (--left <= 0) {
      pending = undefined;
      left = uses;
    }
    return p;
  };
  return { shape: t.shape, dtype: t.dtype, origin: t.origin, bytes, f32: async () => decodeToF32(await bytes(), t.dtype) };
}
