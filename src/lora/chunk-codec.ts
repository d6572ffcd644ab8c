/**
 * Stored rows ⇄ f32 for a chunk task, in any stored encoding: safetensors dtypes, ggml block types
 * (whole blocks per row) and scaled fp8 (W = q · scale, one scale or one per row). Each thread keeps
 * one f32 scratch buffer for the decoded rows, so a chunk costs no allocation; the encoders are the
 * same functions a whole tensor goes through (ggml quantizes block by block and fp8 rounding is
 * per value, with stochastic rounding indexed by position), so a tensor cut into row chunks comes
 * out byte for byte as it would whole.
 */
import { decodeStored, isPlain } from '../checkpoint/encoding.ts';
import { quantize } from '../gguf/codec.ts';
import type { GgmlType } from '../gguf/types.ts';
import { decodeInto, encodeInto, type DType } from '../tensor/dtype.ts';
import { countNonFinite, countNonFiniteStored } from '../tensor/finite.ts';
import { encodeFp8Stochastic, isFp8 } from '../tensor/fp8-round.ts';
import { countOutOfRange } from '../tensor/fused-codec.ts';

let scratch = new Float32Array(0);

/** This thread's scratch of `count` values (grown when a larger chunk comes; contents undefined). */
export function scratchOf(count: number): Float32Array {
  if (scratch.length < count) scratch = new Float32Array(Math.max(count, 2 * scratch.length));
  return scratch.subarray(0, count);
}

/** Multiplies (or divides) each of `rows` rows of `values` by its scale (`scale` has one value, or one per row). */
function scaleRows(values: Float32Array, rows: number, scale: Float32Array, divide: boolean): void {
  const cols = rows === 0 ? 0 : values.length / rows;
  for (let r = 0; r < rows; r++) {
    const s = scale[scale.length === 1 ? 0 : r]!;
    const end = (r + 1) * cols;
    if (divide) for (let i = r * cols; i < end; i++) values[i] = values[i]! / s;
    else for (let i = r * cols; i < end; i++) values[i] = values[i]! * s;
  }
}

/** Stored bytes of `rows` rows → f32 values in `out` (dequantized; times `scale` for a scaled fp8 input). */
export function decodeRows(bytes: Uint8Array, dtype: string, rows: number, out: Float32Array, scale?: Float32Array): Float32Array {
  if (isPlain(dtype)) decodeInto(bytes, dtype, out);
  else decodeStored(dtype, bytes, out);
  if (scale) scaleRows(out, rows, scale, false);
  return out;
}

export interface RowEncoding {
  dtype: string;
  /** Scaled fp8 output: values are divided by this (one value, or one per row) before rounding. */
  scale?: Float32Array;
  stochasticSeed?: number;
  /** Index of the first value within its tensor (stochastic rounding). */
  firstIndex: number;
}

/**
 * f32 values of `rows` rows → stored bytes in `out`; `values` is scratch (a scaled output divides
 * it in place). Returns what did not fit a plain output dtype and what came out non-finite
 * (counted on the values for encodings that do not store NaN or Inf as such).
 */
export function encodeRows(values: Float32Array, rows: number, enc: RowEncoding, out: Uint8Array): { outOfRange: number; nonFinite: number } {
  const { dtype } = enc;
  if (!isPlain(dtype)) {
    const nonFinite = countNonFinite(values);
    quantize(dtype as GgmlType, values, out);
    return { outOfRange: 0, nonFinite };
  }
  let nonFinite = -1;
  if (enc.scale) {
    nonFinite = countNonFinite(values);
    scaleRows(values, rows, enc.scale, true);
  }
  // a scaled output's values fit by construction (its scale comes from their largest magnitude)
  const outOfRange = enc.scale ? 0 : countOutOfRange(values, dtype);
  if (enc.stochasticSeed !== undefined && isFp8(dtype)) out.set(encodeFp8Stochastic(values, dtype, enc.stochasticSeed, enc.firstIndex));
  else encodeInto(values, dtype as DType, out);
  return { outOfRange, nonFinite: nonFinite >= 0 ? nonFinite : countNonFiniteStored(out, dtype as DType) };
}

/** Σ v² in double precision. */
export function sumOfSquares(values: Float32Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]! * values[i]!;
  return s;
}

