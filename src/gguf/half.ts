/**
 * Scalar IEEE half <-> float, as ggml's GGML_FP32_TO_FP16 / GGML_FP16_TO_FP32 do: round to
 * nearest even, overflow to ±Inf, NaN to a quiet NaN with the sign kept (0x7e00). Array
 * conversions go through src/tensor/dtype.ts, which rounds the same way.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

export function fromF32Bits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

export function fp32ToFp16(x: number): number {
  const w = f32Bits(x);
  const sign = (w >>> 16) & 0x8000;
  const abs = w & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00;
  if (abs >= 0x477ff000) return sign | 0x7c00; // ≥ 65520 rounds to Inf (and Inf itself)
  if (abs >= 0x38800000) {
    // normal half: rebias the exponent, round the 13 dropped mantissa bits to nearest even
    const r = abs - 0x38000000;
    return sign | ((r + 0xfff + ((r >>> 13) & 1)) >>> 13);
  }
  // subnormal half (or zero): units of 2^-24, ties to even
  const q = fromF32Bits(abs) * 2 ** 24;
  let n = Math.floor(q);
  const frac = q - n;
  if (frac > 0.5 || (frac === 0.5 && (n & 1) === 1)) n++;
  return sign | n;
}

const HALF_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

export function fp16ToFp32(h: number): number {
  return HALF_TABLE[h & 0xffff]!;
}

/** A float rounded to half and back (what a stored scale becomes). */
export function roundHalf(x: number): number {
  return HALF_TABLE[fp32ToFp16(x)]!;
}

/**
 * ggml's nearest_int: adds 1.5·2^23 in float arithmetic and reads the low mantissa bits, so it
 * rounds half to even for |x| < 2^22 (larger inputs give what ggml's trick gives).
 */
export function nearestInt(x: number): number {
  f32[0] = Math.fround(x) + 12582912;
  return (u32[0]! & 0x007fffff) - 0x00400000;
}
