/**
 * The inner loop of applyToBase: stored base values + ΔW → stored output values, in one pass where
 * the dtypes allow (bf16 → bf16 and f32 → f32, the common cases), so a weight is never decoded to a
 * whole f32 copy and encoded again. Other dtype pairs decode, add and encode a chunk at a time.
 * Every output value is rounded once, from the f32 sum.
 */
import { decodeToF32, encodeFromF32, type DType } from '../tensor/dtype.ts';
import { addRoundKernels, bf16AddScalar, f32AddScalar, type AddRoundKernels } from '../tensor/add-round-simd.ts';
import { encodeFp8, encodeFp8Stochastic, isFp8 } from '../tensor/fp8-round.ts';

let kernels: AddRoundKernels | null | undefined;
/** This thread's SIMD kernels (null where WebAssembly SIMD is missing: the JavaScript loops serve). */
function simd(): AddRoundKernels | null {
  if (kernels === undefined) kernels = addRoundKernels() ?? null;
  return kernels;
}

/** Largest finite value per output dtype, for counting what does not fit (fp8 saturates it, F16 overflows to Inf). */
const MAX_FINITE: Partial<Record<DType, number>> = { F16: 65504, F8_E4M3: 448, F8_E5M2: 57344 };

export interface EncodeOptions {
  /** fp8 outputs: the seed of stochastic rounding (undefined: round to nearest). */
  stochasticSeed?: number;
  /** Index of the first value within its tensor (keeps stochastic rounding independent of chunking). */
  firstIndex?: number;
}

export function countOutOfRange(values: Float32Array, dtype: DType): number {
  const max = MAX_FINITE[dtype];
  if (max === undefined) return 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    if (a > max && a !== Infinity) n++;
  }
  return n;
}

/** f32 values → stored bytes of `dtype` (fp8 saturating, stochastic when seeded). */
export function encodeValues(values: Float32Array, dtype: DType, opts: EncodeOptions = {}): Uint8Array {
  if (isFp8(dtype)) return opts.stochasticSeed !== undefined ? encodeFp8Stochastic(values, dtype, opts.stochasticSeed, opts.firstIndex ?? 0) : encodeFp8(values, dtype);
  return encodeFromF32(values, dtype);
}

function bf16Add(input: Uint8Array, delta: Float32Array | undefined, output: Uint8Array): void {
  const n = input.byteLength / 2;
  const src = new Uint16Array(input.buffer, input.byteOffset, n);
  const dst = new Uint16Array(output.buffer, output.byteOffset, n);
  if (!delta) {
    dst.set(src);
    return;
  }
  const k = simd();
  if (k) k.bf16Add(src, delta, dst);
  else bf16AddScalar(src, delta, dst);
}

function f32Add(input: Uint8Array, delta: Float32Array | undefined, output: Uint8Array): void {
  const n = input.byteLength / 4;
  const src = new Float32Array(input.buffer, input.byteOffset, n);
  const dst = new Float32Array(output.buffer, output.byteOffset, n);
  if (!delta) {
    dst.set(src);
    return;
  }
  const k = simd();
  if (k) k.f32Add(src, delta, dst);
  else f32AddScalar(src, delta, dst);
}

/**
 * output = encode_out(decode_in(input) + delta), or a plain conversion without delta. `input` and
 * `output` are the stored bytes of the same values (a chunk of whole rows). Returns how many values
 * did not fit the output dtype.
 */
export function addAndEncode(input: Uint8Array, inDtype: DType, delta: Float32Array | undefined, outDtype: DType, output: Uint8Array, opts: EncodeOptions = {}): number {
  if (inDtype === outDtype && inDtype === 'BF16' && input.byteOffset % 2 === 0 && output.byteOffset % 2 === 0) {
    bf16Add(input, delta, output);
    return 0;
  }
  if (inDtype === outDtype && inDtype === 'F32' && input.byteOffset % 4 === 0 && output.byteOffset % 4 === 0) {
    f32Add(input, delta, output);
    return 0;
  }
  const values = decodeToF32(input, inDtype);
  if (delta) for (let i = 0; i < values.length; i++) values[i]! += delta[i]!;
  output.set(encodeValues(values, outDtype, opts));
  return countOutOfRange(values, outDtype);
}
