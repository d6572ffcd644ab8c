/**
 * Lazy tensors for concatenated LoRA factors: nothing is read until a writer asks, so a concat
 * merge of large LoRAs holds one module's factors at a time. Downs of one dtype are joined byte for
 * byte (bit-exact); ups carry a factor and are computed.
 */
import type { LoraAdapter } from '../formats/model.ts';
import { encodeFromF32, type DType } from '../tensor/dtype.ts';
import type { LazyTensor } from '../tensor/lazy.ts';
import { placeUps, stackDowns } from './factors.ts';

export interface StackSource {
  adapter: LoraAdapter;
  rows: number;
  rank: number;
  cols: number;
  rowStart: number;
  /** weight · scale, folded into the up. */
  factor: number;
}

function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export function stackedDownTensor(parts: readonly StackSource[], shape: readonly number[], dtype: DType, origin: string): LazyTensor {
  const f32 = async () => {
    const downs = await Promise.all(parts.map((p) => p.adapter.down.f32()));
    return stackDowns(parts.map((p, i) => ({ down: downs[i]!, rank: p.rank, cols: p.cols })), parts[0]!.cols);
  };
  const sameDtype = parts.every((p) => p.adapter.down.dtype === dtype);
  return {
    shape,
    dtype,
    origin,
    f32,
    bytes: async () => (sameDtype ? concatBytes(await Promise.all(parts.map((p) => p.adapter.down.bytes()))) : encodeFromF32(await f32(), dtype)),
  };
}

export function placedUpTensor(parts: readonly StackSource[], rows: number, shape: readonly number[], dtype: DType, origin: string): LazyTensor {
  const f32 = async () => {
    const ups = await Promise.all(parts.map((p) => p.adapter.up.f32()));
    return placeUps(parts.map((p, i) => ({ up: ups[i]!, rows: p.rows, rank: p.rank, rowStart: p.rowStart, factor: p.factor })), rows);
  };
  return { shape, dtype, origin, f32, bytes: async () => encodeFromF32(await f32(), dtype) };
}

/** The dtype every tensor shares, else F32 (mixing precisions must not lose the finer one). */
export function commonDtype(tensors: readonly LazyTensor[]): DType {
  const first = tensors[0]?.dtype ?? 'F32';
  return tensors.every((t) => t.dtype === first) ? first : 'F32';
}
