/**
 * Where a LoRA's scale goes when it is written: into an alpha (formats that have one, tensors left
 * bit-identical) or into the factors (PEFT, which has none).
 */
import { decodeToF32, encodeFromF32, type DType } from '../../tensor/dtype.ts';
import type { LazyTensor } from '../../tensor/lazy.ts';
import { scalarTensor, scaledTensor } from '../../adapter/tensor-ops.ts';

function exactIn(value: number, dtype: DType): boolean {
  return decodeToF32(encodeFromF32(Float32Array.of(value), dtype), dtype)[0] === value;
}

/** An alpha stored like sd-scripts does (in the tensors' dtype) when that holds it exactly, else as F32. */
export function alphaTensor(alpha: number, prefer: DType, origin: string): LazyTensor {
  const dtype = prefer.startsWith('F') || prefer === 'BF16' ? (exactIn(alpha, prefer) ? prefer : 'F32') : 'F32';
  return scalarTensor(alpha, dtype, origin);
}

/** alpha = scale · rank, rounded to the integer it almost is (alpha/rank then gives the scale back). */
export function alphaFor(scale: number, rank: number, stored?: number): number {
  if (stored !== undefined && stored / rank === scale) return stored;
  const a = scale * rank;
  const r = Math.round(a);
  return Math.abs(a - r) <= 1e-9 * Math.max(1, Math.abs(a)) && r / rank === scale ? r : a;
}

/**
 * down·d and up·u with d·u = s. Powers of two are split evenly between the two (exact, and neither
 * factor drifts towards fp16's subnormals, as sd-scripts balances them); the rest of s goes into
 * the up, the only rounding step.
 */
export function foldScale(down: LazyTensor, up: LazyTensor, s: number, dtype: DType): { down: LazyTensor; up: LazyTensor; rounded: boolean } {
  if (s === 1) return { down: scaledTensor(down, 1, dtype), up: scaledTensor(up, 1, dtype), rounded: false };
  const a = Math.abs(s);
  const e = Math.floor(Math.log2(a));
  const mantissa = a / 2 ** e;
  const toDown = 2 ** Math.floor(e / 2);
  const toUp = (s < 0 ? -1 : 1) * mantissa * 2 ** (e - Math.floor(e / 2));
  return { down: scaledTensor(down, toDown, dtype), up: scaledTensor(up, toUp, dtype), rounded: mantissa !== 1 };
}
