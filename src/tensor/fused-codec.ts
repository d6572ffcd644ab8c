/**
 * The inner loop of applyToBase: stored base values + ΔW → stored output values, in one pass where
 * the dtypes allow (bf16 → bf16 and f32 → f32, the common cases), so a weight is never decoded to a
 * whole f32 copy and encoded again. Other dtype pairs decode, add and encode a chunk at a time.
 * Every output value is rounded once, from the f32 sum.
 */
import { decodeToF32, encodeFromF32, type DType } from './dtype.ts';
import { addRoundKernels, bf16AddScalar, f32AddScalar, type AddRoundKernels } from './add-round-simd.ts';
import { encodeFp8, encodeFp8Stochastic, isFp8 } from './fp8-round.ts';

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

/** f32 bits of each MAX_FINITE value. */
const MAX_FINITE_BITS = Object.fromEntries(Object.entries(MAX_FINITE).map(([d, v]) => [d, new Int32Array(Float32Array.of(v).buffer)[0]!])) as Partial<Record<DType, number>>;

/** Finite values beyond the dtype's largest finite value, compared as integers on the f32 bits (their order is that of |x|; NaN and ±Inf are ≥ 0x7f800000 and not counted). */
export function countOutOfRange(values: Float32Array, dtype: DType): number {
  const max = MAX_FINITE_BITS[dtype];
  if (max === undefined) return 0;
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  let n = 0;
  for (let i = 0; i < bits.length; i++) {
    const a = bits[i]! & 0x7fffffff;
    if (a > max && a < 0x7f800000) n++;
  }
  return n;
}

/** f32 values → stored bytes of `dtype` (fp8 saturating, stochastic when seeded). */
export function encodeValues(values: Float32Array, dtype: DType, opts: EncodeOptions = {}): Uint8Array {
  if (isFp8(dtype)) return opts.stochasticSeed !== undefined ? encodeFp8Stochastic(values, dtype, opts.stochasticSeed, opts.firstIndex ?? 0) : encodeFp8(values, dtype);
  return encodeFromF32(values, dtype);
}

/** One same-dtype pair added and rounded in one pass: the SIMD kernel, or the scalar loop without SIMD. */
interface SameDtypeAdd {
  bytes: number;
  run(input: Uint8Array, delta: Float32Array, output: Uint8Array): void;
}

function sameDtypeAdd<T extends Uint16Array | Float32Array>(
  bytes: number,
  view: (b: ArrayBufferLike, offset: number, length: number) => T,
  kernel: (k: AddRoundKernels) => (src: T, delta: Float32Array, dst: T) => void,
  scalar: (src: T, delta: Float32Array, dst: T) => void,
): SameDtypeAdd {
  return {
    bytes,
    run(input, delta, output) {
      const n = input.byteLength / bytes;
      const k = simd();
      (k ? kernel(k) : scalar)(view(input.buffer, input.byteOffset, n), delta, view(output.buffer, output.byteOffset, n));
    },
  };
}

const SAME_DTYPE_ADD: Partial<Record<DType, SameDtypeAdd>> = {
  BF16: sameDtypeAdd(2, (b, o, n) => new Uint16Array(b, o, n), (k) => k.bf16Add, bf16AddScalar),
  F32: sameDtypeAdd(4, (b, o, n) => new Float32Array(b, o, n), (k) => k.f32Add, f32AddScalar),
};

/**
 * output = encode_out(decode_in(input) + delta), or a plain conversion without delta. `input` and
 * `output` are the stored bytes of the same values (a chunk of whole rows). Returns how many values
 * did not fit the output dtype.
 */
export function addAndEncode(input: Uint8Array, inDtype: DType, delta: Float32Array | undefined, outDtype: DType, output: Uint8Array, opts: EncodeOptions = {}): number {
  if (inDtype === outDtype && !delta) {
    output.set(input);
    return 0;
  }
  const same = inDtype === outDtype ? SAME_DTYPE_ADD[inDtype] : undefined;
  if (same && delta && input.byteOffset % same.bytes === 0 && output.byteOffset % same.bytes === 0) {
    same.run(input, delta, output);
    return 0;
  }
  const values = decodeToF32(input, inDtype);
  if (delta) for (let i = 0; i < values.length; i++) values[i]! += delta[i]!;
  output.set(encodeValues(values, outDtype, opts));
  return countOutOfRange(values, outDtype);
}
