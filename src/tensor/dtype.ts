/**
 * Storage dtypes of safetensors and their codecs to and from Float32Array (the compute format).
 *
 * Encoders round to nearest, ties to even. The FP8 encoders saturate to the largest finite value
 * instead of producing NaN or Inf on overflow, because a NaN written into a checkpoint silently
 * ruins every image made with it; F16 and BF16 overflow to ±Inf as IEEE rounding says. Integer
 * encoders also round to nearest even and saturate at the type's range (NaN → 0) instead of
 * wrapping around.
 */
import { decodeBF16Simd, encodeBF16Simd } from './bf16-simd.ts';

export const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
export type DType = (typeof DTYPES)[number];

/** Every dtype name the reference implementation knows, with its size in bits. */
export const DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32,
  C64: 64, F64: 64, I64: 64, U64: 64,
};

/** The reference writer's dtype order (Rust enum order); it writes larger dtypes first. */
export const REFERENCE_DTYPE_ORDER: readonly string[] = Object.keys(DTYPE_BITS);

export function isKnownDType(name: string): boolean {
  return Object.hasOwn(DTYPE_BITS, name);
}

export function isCodecDType(name: string): name is DType {
  return (DTYPES as readonly string[]).includes(name);
}

export function dtypeBytes(dtype: DType): number {
  return DTYPE_BITS[dtype]! / 8;
}

export function isFloatDType(dtype: string): boolean {
  return dtype.startsWith('F') || dtype === 'BF16';
}

/** Accepts user spellings (`bf16`, `fp16`, `float32`, `fp8_e4m3fn`, …) and returns the safetensors name. */
export function parseDType(text: string): DType {
  const key = text.trim().toLowerCase();
  const aliases: Record<string, DType> = {
    f64: 'F64', fp64: 'F64', float64: 'F64', double: 'F64',
    f32: 'F32', fp32: 'F32', float32: 'F32', float: 'F32',
    f16: 'F16', fp16: 'F16', float16: 'F16', half: 'F16',
    bf16: 'BF16', bfloat16: 'BF16',
    f8_e4m3: 'F8_E4M3', fp8_e4m3fn: 'F8_E4M3', float8_e4m3fn: 'F8_E4M3', fp8: 'F8_E4M3', e4m3: 'F8_E4M3',
    f8_e5m2: 'F8_E5M2', fp8_e5m2: 'F8_E5M2', float8_e5m2: 'F8_E5M2', e5m2: 'F8_E5M2',
    i64: 'I64', i32: 'I32', i16: 'I16', i8: 'I8', u8: 'U8', bool: 'BOOL',
  };
  const found = Object.hasOwn(aliases, key) ? aliases[key] : undefined;
  if (!found) throw new Error(`unknown dtype "${text}" (expected one of ${DTYPES.join(', ')})`);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Small floats: one parametrised codec serves F16 and both FP8 variants. Encoding works on the
// f32 bit pattern as an int32, so the hot loops run on integers only (multi-GB checkpoints pass
// through them).

interface MiniFloat {
  mantissaBits: number;
  bias: number;
  /** Largest finite code (sign bit excluded). */
  maxFinite: number;
  /** Code for +Inf, or null where the format has none. */
  inf: number | null;
  nan: number;
  /** Overflow becomes ±maxFinite (FP8) instead of ±Inf (IEEE F16). */
  saturate: boolean;
  signBit: number;
}

const F16: MiniFloat = { mantissaBits: 10, bias: 15, maxFinite: 0x7bff, inf: 0x7c00, nan: 0x7e00, saturate: false, signBit: 0x8000 };
const E4M3: MiniFloat = { mantissaBits: 3, bias: 7, maxFinite: 0x7e, inf: null, nan: 0x7f, saturate: true, signBit: 0x80 };
const E5M2: MiniFloat = { mantissaBits: 2, bias: 15, maxFinite: 0x7b, inf: 0x7c, nan: 0x7e, saturate: true, signBit: 0x80 };

/** Integer constants of the encoder, derived once per format. */
interface MiniPlan {
  f: MiniFloat;
  /** f32 bits of the smallest normal of the target: from here up to Inf the value is normal there. */
  normalMin: number;
  /** Subtracting this from f32 bits rebiases the exponent to the target's. */
  rebias: number;
  shift: number;
  /** Half a target ulp minus one, in f32 mantissa units (round to nearest; the lsb makes ties even). */
  half: number;
  overflow: number;
  /** Code of ±Inf inputs: the target's Inf, or its largest finite value where it has none. */
  infCode: number;
  /**
   * Below normalMin the code counts units of the target's smallest subnormal: the f32 significand
   * (implicit bit included) shifted right by subBase − (f32 biased exponent).
   */
  subBase: number;
  /** Where the sign bit of the f32 lands in the code (code = (bits >>> signShift) & signBit | …). */
  signShift: number;
}

function plan(f: MiniFloat): MiniPlan {
  const shift = 23 - f.mantissaBits;
  return {
    f,
    normalMin: (127 + 1 - f.bias) << 23,
    rebias: (127 - f.bias) << 23,
    shift,
    half: (1 << (shift - 1)) - 1,
    overflow: f.saturate || f.inf === null ? f.maxFinite : f.inf,
    infCode: f.inf ?? f.maxFinite,
    subBase: 150 + 1 - f.bias - f.mantissaBits,
    signShift: f.signBit === 0x8000 ? 16 : 24,
  };
}

const F16_PLAN = plan(F16);
const E4M3_PLAN = plan(E4M3);
const E5M2_PLAN = plan(E5M2);

/**
 * A value subnormal (or zero) in the target: the significand shifted right by k with round to
 * nearest even, all in integers. k > 25 leaves less than half a unit (the significand is < 2^24),
 * which rounds to 0; f32 subnormals and zeros land there too. A carry out of the top subnormal
 * gives the smallest normal's code, which is right.
 */
function subnormalCode(abs: number, subBase: number): number {
  const k = subBase - (abs >>> 23);
  if (k > 25) return 0;
  const m = (abs & 0x7fffff) | 0x800000;
  return (m + (1 << (k - 1)) - 1 + ((m >>> k) & 1)) >>> k;
}

/** NaN keeps its sign and becomes the target's NaN; ±Inf becomes the target's Inf (FP8 e4m3fn: ±max). */
function specialCode(abs: number, p: MiniPlan): number {
  return abs > 0x7f800000 ? p.f.nan : p.infCode;
}

/** Every f32 value to the target's code by integer arithmetic on its bits, sign included. */
function encodeMini(values: Float32Array, p: MiniPlan, dst: Uint16Array | Uint8Array): void {
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  const { normalMin, rebias, shift, half, overflow, subBase, signShift } = p;
  const { maxFinite, signBit } = p.f;
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    const abs = b & 0x7fffffff;
    let code: number;
    if (abs < normalMin) code = subnormalCode(abs, subBase);
    else if (abs < 0x7f800000) {
      // Normal in the target: rebias, round the mantissa to nearest even (a carry bumps the exponent).
      const r = abs - rebias;
      code = (r + half + ((r >>> shift) & 1)) >>> shift;
      if (code > maxFinite) code = overflow;
    } else code = specialCode(abs, p);
    dst[i] = ((b >>> signShift) & signBit) | code;
  }
}

function decodeMini(code: number, f: MiniFloat): number {
  const sign = code & f.signBit ? -1 : 1;
  const abs = code & (f.signBit - 1);
  const M = f.mantissaBits;
  const e = abs >>> M;
  const m = abs & ((1 << M) - 1);
  if (f.inf !== null && abs === f.inf) return sign * Infinity;
  if (f.inf !== null && e === (f.inf >>> M)) return NaN;
  if (f.inf === null && abs === f.nan) return NaN;
  if (e === 0) return sign * m * 2 ** (1 - f.bias - M);
  return sign * (1 + m / (1 << M)) * 2 ** (e - f.bias);
}

function table(count: number, f: MiniFloat): Float32Array {
  const t = new Float32Array(count);
  for (let c = 0; c < count; c++) t[c] = decodeMini(c, f);
  return t;
}

let f16Table: Float32Array | undefined;
const e4m3Table = table(256, E4M3);
const e5m2Table = table(256, E5M2);

// ---------------------------------------------------------------------------------------------

function view<T>(bytes: Uint8Array, size: number, make: (buf: ArrayBufferLike, off: number, len: number) => T): T {
  // Typed views need aligned offsets; copy the rare unaligned slice.
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return make(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

function elementCount(byteLength: number, dtype: DType): number {
  const size = dtypeBytes(dtype);
  if (byteLength % size !== 0) throw new Error(`${byteLength} bytes is not a whole number of ${dtype} values (${size} bytes each)`);
  return byteLength / size;
}

/** Decodes little-endian stored bytes of `dtype` into a new Float32Array. */
export function decodeToF32(bytes: Uint8Array, dtype: DType): Float32Array {
  return decodeInto(bytes, dtype, new Float32Array(elementCount(bytes.byteLength, dtype)));
}

function decodeBF16(bytes: Uint8Array, out: Float32Array): void {
  // The SIMD kernel takes whole groups of eight; the loops below (same result) do the rest, or all without SIMD.
  const done = decodeBF16Simd(bytes, out);
  if (done > 0) {
    if (done < out.length) decodeBF16(bytes.subarray(2 * done), out.subarray(done));
    return;
  }
  const n = out.length;
  const dst = new Int32Array(out.buffer, out.byteOffset, n);
  if (bytes.byteOffset % 4 !== 0) {
    const src = view(bytes, 2, (b, o, l) => new Uint16Array(b, o, l));
    for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
    return;
  }
  // Two values per 32-bit load: the low half is the first value (little-endian), the high half the second.
  const pairs = n >>> 1;
  const src = new Int32Array(bytes.buffer, bytes.byteOffset, pairs);
  for (let i = 0; i < pairs; i++) {
    const w = src[i]!;
    dst[2 * i] = w << 16;
    dst[2 * i + 1] = w & -65536;
  }
  if (n & 1) dst[n - 1] = (bytes[2 * n - 2]! | (bytes[2 * n - 1]! << 8)) << 16;
}

/**
 * Decodes `bytes` into `out` (which must hold exactly their values): lets a reader decode a large
 * tensor chunk by chunk into one buffer instead of holding the stored bytes and the floats at once.
 */
export function decodeInto(bytes: Uint8Array, dtype: DType, out: Float32Array): Float32Array {
  const n = elementCount(bytes.byteLength, dtype);
  if (out.length !== n) throw new Error(`decode: ${n} ${dtype} values do not fit an output of ${out.length}`);
  switch (dtype) {
    case 'F32':
      out.set(view(bytes, 4, (b, o, l) => new Float32Array(b, o, l)));
      break;
    case 'F64':
      out.set(view(bytes, 8, (b, o, l) => new Float64Array(b, o, l)));
      break;
    case 'BF16':
      decodeBF16(bytes, out);
      break;
    case 'F16': {
      const src = view(bytes, 2, (b, o, l) => new Uint16Array(b, o, l));
      const t = (f16Table ??= table(65536, F16));
      for (let i = 0; i < n; i++) out[i] = t[src[i]!]!;
      break;
    }
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = e4m3Table[bytes[i]!]!;
      break;
    case 'F8_E5M2':
      for (let i = 0; i < n; i++) out[i] = e5m2Table[bytes[i]!]!;
      break;
    case 'I64': {
      const src = view(bytes, 8, (b, o, l) => new BigInt64Array(b, o, l));
      for (let i = 0; i < n; i++) out[i] = Number(src[i]!);
      break;
    }
    case 'I32':
      out.set(view(bytes, 4, (b, o, l) => new Int32Array(b, o, l)));
      break;
    case 'I16':
      out.set(view(bytes, 2, (b, o, l) => new Int16Array(b, o, l)));
      break;
    case 'I8':
      out.set(new Int8Array(bytes.buffer, bytes.byteOffset, n));
      break;
    case 'U8':
      out.set(bytes);
      break;
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = bytes[i] ? 1 : 0;
      break;
  }
  return out;
}

/** Nearest integer, ties to even, clamped to [min, max]; NaN becomes 0. */
function toInteger(v: number, min: number, max: number): number {
  if (Number.isNaN(v)) return 0;
  if (v <= min) return min;
  if (v >= max) return max;
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

function toI64(v: number): bigint {
  if (Number.isNaN(v)) return 0n;
  if (v === Infinity) return I64_MAX;
  if (v === -Infinity) return I64_MIN;
  const i = BigInt(toInteger(v, -Infinity, Infinity));
  return i < I64_MIN ? I64_MIN : i > I64_MAX ? I64_MAX : i;
}

function encodeBF16(values: Float32Array, dst: Uint16Array): void {
  const src = new Int32Array(values.buffer, values.byteOffset, values.length);
  // The SIMD kernel takes whole groups of eight; this loop (same arithmetic) does the rest, or all without SIMD.
  for (let i = encodeBF16Simd(values, dst); i < src.length; i++) {
    const b = src[i]!;
    // NaN stays a (quiet) NaN; otherwise add half an ulp minus one plus the lsb (ties to even) and
    // keep the top half. `| 0` keeps the sum a wrapping int32, whose top 16 bits are the result.
    dst[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : ((b + 0x7fff + ((b >>> 16) & 1)) | 0) >>> 16;
  }
}

type IntView = (b: ArrayBufferLike, o: number, l: number) => { [i: number]: number };
const INT_RANGES: Record<'I32' | 'I16' | 'I8' | 'U8', [min: number, max: number, view: IntView]> = {
  I32: [-(2 ** 31), 2 ** 31 - 1, (b, o, l) => new Int32Array(b, o, l)],
  I16: [-32768, 32767, (b, o, l) => new Int16Array(b, o, l)],
  I8: [-128, 127, (b, o, l) => new Int8Array(b, o, l)],
  U8: [0, 255, (b, o, l) => new Uint8Array(b, o, l)],
};

/**
 * Encodes Float32 values into `out` as little-endian bytes of `dtype` (round to nearest even; FP8
 * saturates); `out` must be exactly `values.length` values long. Lets a writer encode a large
 * tensor in chunks through one reused buffer.
 */
export function encodeInto(values: Float32Array, dtype: DType, out: Uint8Array): Uint8Array {
  const n = values.length;
  const size = dtypeBytes(dtype);
  if (out.byteLength !== n * size) throw new Error(`encode: ${n} ${dtype} values need ${n * size} bytes, the output has ${out.byteLength}`);
  if (out.byteOffset % size !== 0) {
    out.set(encodeFromF32(values, dtype));
    return out;
  }
  const as = <T>(make: new (b: ArrayBufferLike, o: number, l: number) => T): T => new make(out.buffer, out.byteOffset, n);
  switch (dtype) {
    case 'F32':
      out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      break;
    case 'F64':
      as(Float64Array).set(values);
      break;
    case 'BF16':
      encodeBF16(values, as(Uint16Array));
      break;
    case 'F16':
      encodeMini(values, F16_PLAN, as(Uint16Array));
      break;
    case 'F8_E4M3':
      encodeMini(values, E4M3_PLAN, out);
      break;
    case 'F8_E5M2':
      encodeMini(values, E5M2_PLAN, out);
      break;
    case 'I64': {
      const dst = as(BigInt64Array);
      for (let i = 0; i < n; i++) dst[i] = toI64(values[i]!);
      break;
    }
    case 'I32':
    case 'I16':
    case 'I8':
    case 'U8': {
      const [min, max, intView] = INT_RANGES[dtype];
      const dst = intView(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) dst[i] = toInteger(values[i]!, min, max);
      break;
    }
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = values[i] !== 0 ? 1 : 0;
      break;
  }
  return out;
}

/** Encodes Float32 values as little-endian bytes of `dtype` (round to nearest even; FP8 saturates). */
export function encodeFromF32(values: Float32Array, dtype: DType): Uint8Array {
  return encodeInto(values, dtype, new Uint8Array(values.length * dtypeBytes(dtype)));
}

/** Rounds values to what `dtype` can hold, in place (encode then decode). */
export function roundTo(values: Float32Array, dtype: DType): Float32Array {
  if (dtype === 'F32') return values;
  values.set(decodeToF32(encodeFromF32(values, dtype), dtype));
  return values;
}
