/**
 * The 256-element super-block K quants (ggml-common.h `block_q4_K`, `block_q5_K`, `block_q6_K`),
 * dequantized as ggml's `dequantize_row_q*_K` and quantized as its `quantize_row_q*_K_ref`, in
 * float32 arithmetic step by step, so codes and values match ggml bit for bit.
 *
 * Layouts (little-endian):
 *   Q4_K 144 B: d f16, dmin f16 | scales[12] | qs[128]
 *   Q5_K 176 B: d f16, dmin f16 | scales[12] | qh[32] | qs[128]
 *   Q6_K 210 B: ql[128] | qh[64] | scales[16] int8 | d f16   (d comes last)
 * Q4_K/Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed in `scales`
 * (get_scale_min_k4); x = d·sc·q − dmin·m. Element order within each 64: the 32 low nibbles of
 * 32 bytes, then their 32 high nibbles. Q6_K: 16 sub-blocks of 16 with an int8 scale; x = d·sc·(q − 32).
 */
import { fp16ToFp32, nearestInt } from './half.ts';
import { GROUP_MAX_EPS, makeQkx2Quants, makeQxQuants } from './k-search.ts';
import { readHalf, writeHalf } from './legacy-quants.ts';

const f = Math.fround;
const QK_K = 256;

/** The 6-bit scale and min of sub-block j (ggml-quants.c get_scale_min_k4). */
function scaleMin(j: number, q: Uint8Array, o: number): [sc: number, m: number] {
  if (j < 4) return [q[o + j]! & 63, q[o + j + 4]! & 63];
  return [(q[o + j + 4]! & 0xf) | ((q[o + j - 4]! >>> 6) << 4), (q[o + j + 4]! >>> 4) | ((q[o + j]! >>> 6) << 4)];
}

function dequantizeK45(src: Uint8Array, dst: Float32Array, bits: 4 | 5): void {
  const size = bits === 4 ? 144 : 176;
  const qsAt = bits === 4 ? 16 : 48;
  for (let y = 0, o = 0; y < dst.length; o += size) {
    const d = readHalf(src, o);
    const min = readHalf(src, o + 2);
    let u1 = 1;
    let u2 = 2;
    for (let j = 0, is = 0, ql = o + qsAt; j < QK_K; j += 64, is += 2, ql += 32) {
      const [sc1, m1c] = scaleMin(is, src, o + 4);
      const d1 = f(d * sc1);
      const m1 = f(min * m1c);
      const [sc2, m2c] = scaleMin(is + 1, src, o + 4);
      const d2 = f(d * sc2);
      const m2 = f(min * m2c);
      for (let l = 0; l < 32; l++) {
        const hi = bits === 5 && src[o + 16 + l]! & u1 ? 16 : 0;
        dst[y++] = f(d1 * ((src[ql + l]! & 0xf) + hi)) - m1;
      }
      for (let l = 0; l < 32; l++) {
        const hi = bits === 5 && src[o + 16 + l]! & u2 ? 16 : 0;
        dst[y++] = f(d2 * ((src[ql + l]! >>> 4) + hi)) - m2;
      }
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

function quantizeK45(x: Float32Array, dst: Uint8Array, bits: 4 | 5): void {
  const size = bits === 4 ? 144 : 176;
  const nmax = bits === 4 ? 15 : 31;
  const [rmin, nstep] = bits === 4 ? [-1, 20] : [-0.5, 15];
  const L = new Uint8Array(QK_K);
  const Laux = new Uint8Array(32);
  const weights = new Float32Array(32);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  for (let xo = 0, o = 0; xo < x.length; xo += QK_K, o += size) {
    dst.fill(0, o, o + size);
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const b = xo + 32 * j;
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[b + l]! * x[b + l]!));
      const avX = f(Math.sqrt(f(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(x[b + l]!));
      const [scale, min] = makeQkx2Quants(32, nmax, x, b, weights, L, 32 * j, Laux, rmin, f(0.1), nstep);
      scales[j] = scale;
      mins[j] = min;
      if (scale > maxScale) maxScale = scale;
      if (min > maxMin) maxMin = min;
    }
    const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
    const sc = o + 4;
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff);
      const lm = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
      if (j < 4) {
        dst[sc + j] = ls;
        dst[sc + j + 4] = lm;
      } else {
        dst[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        dst[sc + j - 4]! |= (ls >>> 4) << 6;
        dst[sc + j]! |= (lm >>> 4) << 6;
      }
    }
    writeHalf(dst, o, f(maxScale / 63));
    writeHalf(dst, o + 2, f(maxMin / 63));
    const dAll = readHalf(dst, o);
    const mAll = readHalf(dst, o + 2);
    for (let j = 0; j < 8; j++) {
      const [s, m] = scaleMin(j, dst, sc);
      const d = f(dAll * s);
      if (!d) continue;
      const dm = f(mAll * m);
      for (let ii = 0; ii < 32; ii++) {
        L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(f(f(x[xo + 32 * j + ii]! + dm) / d))));
      }
    }
    packK45(L, dst, o, bits);
  }
}

/** The 4-bit (Q4_K: two per byte) or 5-bit (Q5_K: low nibbles plus a high-bit plane) quants of one super-block at `o`. */
function packK45(L: Uint8Array, dst: Uint8Array, o: number, bits: 4 | 5): void {
  if (bits === 4) {
    for (let j = 0, q = o + 16; j < QK_K; j += 64, q += 32) {
      for (let l = 0; l < 32; l++) dst[q + l] = L[j + l]! | (L[j + l + 32]! << 4);
    }
    return;
  }
  const qh = o + 16;
  let m1 = 1;
  let m2 = 2;
  for (let n = 0, ql = o + 48; n < QK_K; n += 64, ql += 32) {
    for (let j = 0; j < 32; j++) {
      let l1 = L[n + j]!;
      if (l1 > 15) {
        l1 -= 16;
        dst[qh + j]! |= m1;
      }
      let l2 = L[n + j + 32]!;
      if (l2 > 15) {
        l2 -= 16;
        dst[qh + j]! |= m2;
      }
      dst[ql + j] = l1 | (l2 << 4);
    }
    m1 <<= 2;
    m2 <<= 2;
  }
}

export const dequantizeQ4_K = (src: Uint8Array, dst: Float32Array): void => dequantizeK45(src, dst, 4);
export const dequantizeQ5_K = (src: Uint8Array, dst: Float32Array): void => dequantizeK45(src, dst, 5);
export const quantizeQ4_K = (x: Float32Array, dst: Uint8Array): void => quantizeK45(x, dst, 4);
export const quantizeQ5_K = (x: Float32Array, dst: Uint8Array): void => quantizeK45(x, dst, 5);

export function dequantizeQ6_K(src: Uint8Array, dst: Float32Array): void {
  for (let y = 0, o = 0; y < dst.length; o += 210) {
    const d = fp16ToFp32(src[o + 208]! | (src[o + 209]! << 8));
    for (let n = 0, ql = o, qh = o + 128, sc = o + 192; n < QK_K; n += 128, ql += 64, qh += 32, sc += 8) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = src[qh + l]!;
        const q1 = ((src[ql + l]! & 0xf) | (((h >>> 0) & 3) << 4)) - 32;
        const q2 = ((src[ql + l + 32]! & 0xf) | (((h >>> 2) & 3) << 4)) - 32;
        const q3 = ((src[ql + l]! >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
        const q4 = ((src[ql + l + 32]! >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
        const s = (k: number) => (src[sc + is + k]! << 24) >> 24;
        dst[y + l] = f(d * s(0)) * q1;
        dst[y + l + 32] = f(d * s(2)) * q2;
        dst[y + l + 64] = f(d * s(4)) * q3;
        dst[y + l + 96] = f(d * s(6)) * q4;
      }
      y += 128;
    }
  }
}

export function quantizeQ6_K(x: Float32Array, dst: Uint8Array): void {
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  for (let xo = 0, o = 0; xo < x.length; xo += QK_K, o += 210) {
    dst.fill(0, o, o + 210);
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(16, 32, x, xo + 16 * ib, L, 16 * ib);
      scales[ib] = scale;
      if (Math.abs(scale) > maxAbsScale) {
        maxAbsScale = Math.abs(scale);
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) continue; // all zero, d = +0
    const iscale = f(-128 / maxScale);
    writeHalf(dst, o + 208, f(1 / iscale));
    for (let ib = 0; ib < 16; ib++) dst[o + 192 + ib] = Math.min(127, nearestInt(f(iscale * scales[ib]!))) & 0xff;
    const dAll = fp16ToFp32(dst[o + 208]! | (dst[o + 209]! << 8));
    for (let j = 0; j < 16; j++) {
      const d = f(dAll * ((dst[o + 192 + j]! << 24) >> 24));
      if (!d) continue;
      for (let ii = 0; ii < 16; ii++) {
        const l = Math.max(-32, Math.min(31, nearestInt(f(x[xo + 16 * j + ii]! / d))));
        L[16 * j + ii] = l + 32;
      }
    }
    for (let j = 0, ql = o, qh = o + 128; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        const a = L[j + l]!;
        const b = L[j + l + 32]!;
        const c = L[j + l + 64]!;
        const e = L[j + l + 96]!;
        dst[ql + l] = (a & 0xf) | ((c & 0xf) << 4);
        dst[ql + l + 32] = (b & 0xf) | ((e & 0xf) << 4);
        dst[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
      }
    }
  }
}
