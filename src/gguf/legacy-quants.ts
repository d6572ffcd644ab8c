/**
 * The 32-element block quants (ggml-common.h `block_q4_0` … `block_q8_0`), dequantized as ggml's
 * `dequantize_row_*` and quantized as its `quantize_row_*_ref`. Arithmetic is float32 step by step
 * (`fround` after every operation), so every code and every output value matches ggml bit for bit.
 *
 * Layouts (little-endian, f16 = IEEE half):
 *   Q4_0  18 B: d f16 | qs[16]        x[j] = (nibble - 8)·d; low nibbles hold j < 16, high j ≥ 16
 *   Q4_1  20 B: d f16, m f16 | qs[16] x[j] = nibble·d + m
 *   Q5_0  22 B: d f16 | qh u32 | qs[16]  5th bit of element j is bit j of qh; x = (q - 16)·d
 *   Q5_1  24 B: d f16, m f16 | qh u32 | qs[16]  x = q·d + m
 *   Q8_0  34 B: d f16 | qs[32] int8   x[j] = qs[j]·d
 */
import { fp16ToFp32, fp32ToFp16 } from './half.ts';

const f = Math.fround;
const QK = 32;

const half = (b: Uint8Array, o: number): number => fp16ToFp32(b[o]! | (b[o + 1]! << 8));
function putHalf(b: Uint8Array, o: number, x: number): void {
  const h = fp32ToFp16(x);
  b[o] = h & 0xff;
  b[o + 1] = h >>> 8;
}
const u32 = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}
/** C's `(int8_t)(float)`: truncation toward zero, then the low 8 bits as a signed byte. */
const toInt8 = (x: number): number => (Math.trunc(x) << 24) >> 24;

/** The value of largest magnitude (the first of equal ones) and its magnitude. */
function signedMax(x: Float32Array, o: number): [max: number, amax: number] {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[o + j]!;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return [max, amax];
}

function minMax(x: Float32Array, o: number): [min: number, max: number] {
  let min = 3.4028234663852886e38;
  let max = -3.4028234663852886e38;
  for (let j = 0; j < QK; j++) {
    const v = x[o + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

export function dequantizeQ4_0(src: Uint8Array, dst: Float32Array): void {
  for (let i = 0, o = 0; i < dst.length; i += QK, o += 18) {
    const d = half(src, o);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 2 + j]!;
      dst[i + j] = ((q & 0x0f) - 8) * d;
      dst[i + j + 16] = ((q >>> 4) - 8) * d;
    }
  }
}

export function quantizeQ4_0(x: Float32Array, dst: Uint8Array): void {
  for (let i = 0, o = 0; i < x.length; i += QK, o += 18) {
    const [max] = signedMax(x, i);
    const d = f(max / -8);
    const id = d ? f(1 / d) : 0;
    putHalf(dst, o, d);
    for (let j = 0; j < 16; j++) {
      const xi0 = Math.min(15, toInt8(f(f(x[i + j]! * id) + 8.5))) & 0xff;
      const xi1 = Math.min(15, toInt8(f(f(x[i + 16 + j]! * id) + 8.5))) & 0xff;
      dst[o + 2 + j] = (xi0 | (xi1 << 4)) & 0xff;
    }
  }
}

export function dequantizeQ4_1(src: Uint8Array, dst: Float32Array): void {
  for (let i = 0, o = 0; i < dst.length; i += QK, o += 20) {
    const d = half(src, o);
    const m = half(src, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 4 + j]!;
      dst[i + j] = f((q & 0x0f) * d) + m;
      dst[i + j + 16] = f((q >>> 4) * d) + m;
    }
  }
}

export function quantizeQ4_1(x: Float32Array, dst: Uint8Array): void {
  for (let i = 0, o = 0; i < x.length; i += QK, o += 20) {
    const [min, max] = minMax(x, i);
    const d = f(f(max - min) / 15);
    const id = d ? f(1 / d) : 0;
    putHalf(dst, o, d);
    putHalf(dst, o + 2, min);
    for (let j = 0; j < 16; j++) {
      const xi0 = Math.min(15, toInt8(f(f(f(x[i + j]! - min) * id) + 0.5))) & 0xff;
      const xi1 = Math.min(15, toInt8(f(f(f(x[i + 16 + j]! - min) * id) + 0.5))) & 0xff;
      dst[o + 4 + j] = (xi0 | (xi1 << 4)) & 0xff;
    }
  }
}

export function dequantizeQ5_0(src: Uint8Array, dst: Float32Array): void {
  for (let i = 0, o = 0; i < dst.length; i += QK, o += 22) {
    const d = half(src, o);
    const qh = u32(src, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 6 + j]!;
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      dst[i + j] = (((q & 0x0f) | h0) - 16) * d;
      dst[i + j + 16] = (((q >>> 4) | h1) - 16) * d;
    }
  }
}

export function quantizeQ5_0(x: Float32Array, dst: Uint8Array): void {
  for (let i = 0, o = 0; i < x.length; i += QK, o += 22) {
    const [max] = signedMax(x, i);
    const d = f(max / -16);
    const id = d ? f(1 / d) : 0;
    putHalf(dst, o, d);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const xi0 = Math.min(31, toInt8(f(f(x[i + j]! * id) + 16.5))) & 0xff;
      const xi1 = Math.min(31, toInt8(f(f(x[i + 16 + j]! * id) + 16.5))) & 0xff;
      dst[o + 6 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
      qh |= ((xi0 & 0x10) >>> 4) << j;
      qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
    }
    putU32(dst, o + 2, qh >>> 0);
  }
}

export function dequantizeQ5_1(src: Uint8Array, dst: Float32Array): void {
  for (let i = 0, o = 0; i < dst.length; i += QK, o += 24) {
    const d = half(src, o);
    const m = half(src, o + 2);
    const qh = u32(src, o + 4);
    for (let j = 0; j < 16; j++) {
      const q = src[o + 8 + j]!;
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      dst[i + j] = f(((q & 0x0f) | h0) * d) + m;
      dst[i + j + 16] = f(((q >>> 4) | h1) * d) + m;
    }
  }
}

export function quantizeQ5_1(x: Float32Array, dst: Uint8Array): void {
  for (let i = 0, o = 0; i < x.length; i += QK, o += 24) {
    const [min, max] = minMax(x, i);
    const d = f(f(max - min) / 31);
    const id = d ? f(1 / d) : 0;
    putHalf(dst, o, d);
    putHalf(dst, o + 2, min);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      // C converts to uint8_t directly here (no clamp): truncation, low 8 bits
      const xi0 = Math.trunc(f(f(f(x[i + j]! - min) * id) + 0.5)) & 0xff;
      const xi1 = Math.trunc(f(f(f(x[i + 16 + j]! - min) * id) + 0.5)) & 0xff;
      dst[o + 8 + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
      qh |= ((xi0 & 0x10) >>> 4) << j;
      qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
    }
    putU32(dst, o + 4, qh >>> 0);
  }
}

/** The same bytes as signed int8 (Q8_0's quants), without a copy. */
const int8View = (b: Uint8Array) => new Int8Array(b.buffer, b.byteOffset, b.byteLength);

export function dequantizeQ8_0(src: Uint8Array, dst: Float32Array): void {
  const q = int8View(src);
  for (let i = 0, o = 0; i < dst.length; i += QK, o += 34) {
    const d = half(src, o);
    // int8 · f16 is exact in double, so the f32 store rounds once, as C's float product does
    for (let j = 0, k = o + 2; j < QK; j++, k++) dst[i + j] = q[k]! * d;
  }
}

/**
 * One pass per block over an Int8Array view of the output. The rounding is C's roundf (half away
 * from zero): trunc(v ± 0.5) is exact for a float v, and an Int8Array store keeps the low 8 bits
 * as the C cast does (NaN and Inf store 0, as `& 0xff` of them did).
 */
export function quantizeQ8_0(x: Float32Array, dst: Uint8Array): void {
  const q = int8View(dst);
  for (let i = 0, o = 0; i < x.length; i += QK, o += 34) {
    let amax = 0;
    for (let j = i, end = i + QK; j < end; j++) amax = Math.max(amax, Math.abs(x[j]!));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    putHalf(dst, o, d);
    for (let j = 0, k = o + 2; j < QK; j++, k++) {
      const v = f(x[i + j]! * id);
      q[k] = (v < 0 ? v - 0.5 : v + 0.5) | 0;
    }
  }
}

export { half as readHalf, putHalf as writeHalf };
