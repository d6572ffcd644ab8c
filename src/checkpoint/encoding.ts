/**
 * Stored values of one tensor in any form's dtype: safetensors dtypes (the tensor codecs) and ggml
 * types (the GGUF codec), as one set of functions, so the layers above never ask which form a
 * tensor came from. `F32`, `F16` and `BF16` are the same bytes in both.
 */
import { dequantize, quantize } from '../gguf/codec.ts';
import { isSupportedType, typeByName, typeBytes } from '../gguf/types.ts';
import { decodeInto, dtypeBytes, isCodecDType, isFloatDType, type DType } from '../tensor/dtype.ts';
import { encodeValues } from '../tensor/fused-codec.ts';

/** A safetensors dtype loraflow can decode (F32, BF16, F8_E4M3, …). */
export function isPlain(dtype: string): dtype is DType {
  return isCodecDType(dtype);
}

/** A ggml block type (Q8_0, Q4_K, …): not a safetensors dtype. */
export function isQuantized(dtype: string): boolean {
  return !isCodecDType(dtype) && typeByName(dtype)?.name === dtype;
}

/** Whether values of this dtype can be decoded, patched and encoded again. */
export function isPatchable(dtype: string): boolean {
  return (isCodecDType(dtype) && isFloatDType(dtype)) || (isQuantized(dtype) && isSupportedType(dtype));
}

/** Elements per block: 1 for plain dtypes, 32 or 256 for ggml block types. */
export function blockSize(dtype: string): number {
  return isCodecDType(dtype) ? 1 : (typeByName(dtype)?.blockSize ?? 1);
}

/** Stored bytes of `elements` values (whole blocks for ggml block types). */
export function storedBytes(dtype: string, elements: number): number {
  if (isCodecDType(dtype)) return elements * dtypeBytes(dtype);
  const t = typeByName(dtype);
  if (!t) throw new RangeError(`unknown dtype ${dtype}`);
  return typeBytes(t, elements);
}

/** Stored bytes → f32 values (into `out`, which must hold exactly their values). */
export function decodeStored(dtype: string, bytes: Uint8Array, out: Float32Array): Float32Array {
  if (isCodecDType(dtype)) return decodeInto(bytes, dtype, out);
  if (!isSupportedType(dtype)) throw new RangeError(`cannot decode ${dtype} values`);
  return dequantize(dtype, bytes, out);
}

/** f32 values → stored bytes: safetensors dtypes round to nearest (fp8 saturating), ggml types by ggml's reference quantizers. */
export function encodeStored(dtype: string, values: Float32Array, opts: { stochasticSeed?: number; firstIndex?: number } = {}): Uint8Array {
  if (isCodecDType(dtype)) return encodeValues(values, dtype, opts);
  if (!isSupportedType(dtype)) throw new RangeError(`cannot encode ${dtype} values`);
  return quantize(dtype, values);
}
