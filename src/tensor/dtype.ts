/**
 * Storage dtypes of safetensors and their codecs to and from Float32Array (the compute format).
 *
 * Encoders round to nearest, ties to even. The FP8 encoders saturate to the largest finite value
 * instead of producing NaN or Inf on overflow, because a NaN written into a checkpoint silently
 * ruins every image made with it; F16 and BF16 overflow to ±Inf as IEEE rounding says. Integer
 * encoders also round to nearest even and saturate at the type's range (NaN → 0) instead of
 * wrapping around.
 */

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
// Small floats: one parametrised encoder serves F16 and both FP8 variants.

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

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function encodeMini(x: number, f: MiniFloat): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  const sign = bits >>> 31 ? f.signBit : 0;
  const abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return sign | f.nan;
  const overflow = f.saturate || f.inf === null ? f.maxFinite : f.inf;
  if (abs === 0x7f800000) return sign | (f.inf ?? f.maxFinite);
  const exp = (abs >>> 23) - 127;
  const M = f.mantissaBits;
  let code: number;
  if (exp >= 1 - f.bias) {
    // Normal in the target: round the f32 mantissa to M bits, ties to even (carry may bump the exponent).
    const shift = 23 - M;
    const rounded = abs + ((1 << (shift - 1)) - 1) + ((abs >>> shift) & 1);
    const e = (rounded >>> 23) - 127 + f.bias;
    code = (e << M) | ((rounded >>> shift) & ((1 << M) - 1));
    if (e > 30 || code > f.maxFinite) return sign | overflow;
  } else {
    // Subnormal in the target: count units of the smallest subnormal, ties to even.
    const q = Math.abs(f32Scratch[0]!) * 2 ** (f.bias - 1 + M);
    let r = Math.floor(q);
    const frac = q - r;
    if (frac > 0.5 || (frac === 0.5 && (r & 1) === 1)) r++;
    code = r;
  }
  return sign | code;
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
    case 'BF16': {
      const src = view(bytes, 2, (b, o, l) => new Uint16Array(b, o, l));
      const dst = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
      break;
    }
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

/** Encodes Float32 values as little-endian bytes of `dtype` (round to nearest even; FP8 saturates). */
export function encodeFromF32(values: Float32Array, dtype: DType): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'F32':
      return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
    case 'F64':
      return new Uint8Array(Float64Array.from(values).buffer);
    case 'BF16': {
      const src = new Uint32Array(values.buffer, values.byteOffset, n);
      const dst = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const b = src[i]!;
        if ((b & 0x7fffffff) > 0x7f800000) dst[i] = (b >>> 16) | 0x40; // keep NaN a (quiet) NaN
        else dst[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      return new Uint8Array(dst.buffer);
    }
    case 'F16': {
      const dst = new Uint16Array(n);
      for (let i = 0; i < n; i++) dst[i] = encodeMini(values[i]!, F16);
      return new Uint8Array(dst.buffer);
    }
    case 'F8_E4M3': {
      const dst = new Uint8Array(n);
      for (let i = 0; i < n; i++) dst[i] = encodeMini(values[i]!, E4M3);
      return dst;
    }
    case 'F8_E5M2': {
      const dst = new Uint8Array(n);
      for (let i = 0; i < n; i++) dst[i] = encodeMini(values[i]!, E5M2);
      return dst;
    }
    case 'I64':
      return new Uint8Array(BigInt64Array.from(values, toI64).buffer);
    case 'I32':
      return new Uint8Array(Int32Array.from(values, (v) => toInteger(v, -(2 ** 31), 2 ** 31 - 1)).buffer);
    case 'I16':
      return new Uint8Array(Int16Array.from(values, (v) => toInteger(v, -32768, 32767)).buffer);
    case 'I8':
      return new Uint8Array(Int8Array.from(values, (v) => toInteger(v, -128, 127)).buffer);
    case 'U8':
      return Uint8Array.from(values, (v) => toInteger(v, 0, 255));
    case 'BOOL':
      return Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
  }
}

/** Rounds values to what `dtype` can hold, in place (encode then decode). */
export function roundTo(values: Float32Array, dtype: DType): Float32Array {
  if (dtype === 'F32') return values;
  values.set(decodeToF32(encodeFromF32(values, dtype), dtype));
  return values;
}
