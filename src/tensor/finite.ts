/**
 * Counting NaN and ±Inf, in decoded Float32 values or straight in stored bytes (so a tensor that
 * is copied bit for bit is checked without decoding it). Integer dtypes hold no non-finite values.
 */
import type { DType } from './dtype.ts';

export interface NonFiniteCount {
  /** NaN + Inf + −Inf. */
  count: number;
  nan: number;
  posInf: number;
  negInf: number;
  /** Flat index of the first non-finite value (−1 when there is none). */
  first: number;
}

const none = (): NonFiniteCount => ({ count: 0, nan: 0, posInf: 0, negInf: 0, first: -1 });

/** Fast path: how many values are NaN or ±Inf (x − x is NaN exactly for those). */
export function countNonFinite(values: Float32Array): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) n++;
  }
  return n;
}

/** The non-finite values of decoded Float32 values, by kind. */
export function nonFiniteF32(values: Float32Array): NonFiniteCount {
  if (countNonFinite(values) === 0) return none();
  const c = none();
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v === 0) continue;
    if (c.first < 0) c.first = i;
    if (v === Infinity) c.posInf++;
    else if (v === -Infinity) c.negInf++;
    else c.nan++;
  }
  c.count = c.nan + c.posInf + c.negInf;
  return c;
}

/** Bit layout of a stored float code: all exponent bits set means Inf (mantissa 0) or NaN. */
interface Code {
  bytes: 1 | 2 | 4;
  exponent: number;
  mantissa: number;
  sign: number;
  /** Formats without infinities (e4m3fn): only the all-ones code is NaN. */
  nanOnly?: number;
}

const CODES: Partial<Record<DType, Code>> = {
  F32: { bytes: 4, exponent: 0x7f800000, mantissa: 0x007fffff, sign: 0x80000000 },
  F16: { bytes: 2, exponent: 0x7c00, mantissa: 0x03ff, sign: 0x8000 },
  BF16: { bytes: 2, exponent: 0x7f80, mantissa: 0x007f, sign: 0x8000 },
  F8_E5M2: { bytes: 1, exponent: 0x7c, mantissa: 0x03, sign: 0x80 },
  F8_E4M3: { bytes: 1, exponent: 0x7f, mantissa: 0x7f, sign: 0x80, nanOnly: 0x7f },
};

function aligned(bytes: Uint8Array, size: number): Uint8Array {
  return bytes.byteOffset % size === 0 ? bytes : bytes.slice();
}

function codesOf(bytes: Uint8Array, size: 1 | 2 | 4): ArrayLike<number> {
  const b = aligned(bytes, size);
  const n = b.byteLength / size;
  return size === 4 ? new Uint32Array(b.buffer, b.byteOffset, n) : size === 2 ? new Uint16Array(b.buffer, b.byteOffset, n) : b;
}

/** Codes whose `mask` bits are all set. One loop per array type, so each stays monomorphic (this runs over every value written). */
function countMasked8(v: Uint8Array, mask: number): number {
  let n = 0;
  for (let i = 0; i < v.length; i++) if ((v[i]! & mask) === mask) n++;
  return n;
}

function countMasked16(v: Uint16Array, mask: number): number {
  let n = 0;
  for (let i = 0; i < v.length; i++) if ((v[i]! & mask) === mask) n++;
  return n;
}

function countMasked32(v: Uint32Array, mask: number): number {
  let n = 0;
  for (let i = 0; i < v.length; i++) if ((v[i]! & mask) === mask) n++;
  return n;
}

/** Fast path over stored bytes: how many values of `dtype` are NaN or ±Inf. */
export function countNonFiniteStored(bytes: Uint8Array, dtype: DType): number {
  if (dtype === 'F64') return countNonFinite64(bytes).count;
  const code = CODES[dtype];
  if (!code) return 0;
  const mask = code.nanOnly ?? code.exponent;
  if (code.bytes === 1) return countMasked8(bytes, mask);
  const b = aligned(bytes, code.bytes);
  const n = b.byteLength / code.bytes;
  return code.bytes === 2 ? countMasked16(new Uint16Array(b.buffer, b.byteOffset, n), mask) : countMasked32(new Uint32Array(b.buffer, b.byteOffset, n), mask);
}

function countNonFinite64(bytes: Uint8Array): NonFiniteCount {
  const b = aligned(bytes, 8);
  const words = new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const c = none();
  for (let i = 0; i < words.length; i += 2) {
    const hi = words[i + 1]!;
    if ((hi & 0x7ff00000) !== 0x7ff00000) continue;
    if (c.first < 0) c.first = i / 2;
    if ((hi & 0xfffff) !== 0 || words[i]! !== 0) c.nan++;
    else if (hi >>> 31) c.negInf++;
    else c.posInf++;
  }
  c.count = c.nan + c.posInf + c.negInf;
  return c;
}

/** The non-finite values of stored bytes of `dtype`, by kind. */
export function nonFiniteStored(bytes: Uint8Array, dtype: DType): NonFiniteCount {
  if (dtype === 'F64') return countNonFinite64(bytes);
  const code = CODES[dtype];
  if (!code || countNonFiniteStored(bytes, dtype) === 0) return none();
  const v = codesOf(bytes, code.bytes);
  const c = none();
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (code.nanOnly !== undefined) {
      if ((x & code.nanOnly) !== code.nanOnly) continue;
      c.nan++;
    } else {
      if ((x & code.exponent) !== code.exponent) continue;
      if ((x & code.mantissa) !== 0) c.nan++;
      else if ((x & code.sign) !== 0) c.negInf++;
      else c.posInf++;
    }
    if (c.first < 0) c.first = i;
  }
  c.count = c.nan + c.posInf + c.negInf;
  return c;
}

/** "2 NaN, 1 +Inf" */
export function describeNonFinite(c: NonFiniteCount): string {
  const parts = [c.nan ? `${c.nan} NaN` : '', c.posInf ? `${c.posInf} +Inf` : '', c.negInf ? `${c.negInf} −Inf` : ''].filter(Boolean);
  return parts.join(', ');
}
