/**
 * Writing patched weights back into fp8. Both encoders saturate: a value past the largest finite
 * fp8 number becomes that number, never NaN (PyTorch's plain cast turns |x| ≥ 480 into NaN for
 * e4m3fn). The stochastic one rounds up with probability equal to the distance from the lower
 * neighbour, so small LoRA updates survive on average instead of vanishing under round-to-nearest
 * (ComfyUI does the same when it patches fp8 weights). The random number of each element is a hash
 * of (seed, element index): seeded by the tensor key it is reproducible, and it does not depend on
 * how the tensor was cut into chunks for computing.
 */
import { encodeFromF32 } from './dtype.ts';

export type Fp8DType = 'F8_E4M3' | 'F8_E5M2';

interface Fp8Format {
  mantissaBits: number;
  bias: number;
  maxCode: number;
  nan: number;
  /** Code for +Inf where the format has one. */
  inf?: number;
}

const FORMATS: Record<Fp8DType, Fp8Format> = {
  F8_E4M3: { mantissaBits: 3, bias: 7, maxCode: 0x7e, nan: 0x7f },
  F8_E5M2: { mantissaBits: 2, bias: 15, maxCode: 0x7b, nan: 0x7e, inf: 0x7c },
};

export function isFp8(dtype: string): dtype is Fp8DType {
  return Object.hasOwn(FORMATS, dtype);
}

/** Round-to-nearest-even, saturating. */
export function encodeFp8(values: Float32Array, dtype: Fp8DType): Uint8Array {
  return encodeFromF32(values, dtype);
}

/** A uniform number in [0, 1) from (seed, index): murmur3's finaliser over their mix. */
function uniform(seed: number, index: number): number {
  let x = (seed ^ Math.imul(index, 0x9e3779b9)) | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return (x >>> 0) / 4294967296;
}

/**
 * Stochastic rounding to fp8 (saturating), reproducible for a given seed. `firstIndex` is the
 * position of values[0] in its tensor, so a chunk rounds exactly as it would inside the whole.
 */
export function encodeFp8Stochastic(values: Float32Array, dtype: Fp8DType, seed: number, firstIndex = 0): Uint8Array {
  const f = FORMATS[dtype];
  const M = f.mantissaBits;
  const shift = 23 - M;
  const lowMask = (1 << shift) - 1;
  const mantMask = (1 << M) - 1;
  const subnormalScale = 2 ** (f.bias - 1 + M);
  const minNormalExp = 1 - f.bias;
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const u = uniform(seed, firstIndex + i);
    const b = bits[i]!;
    const sign = b >>> 31 ? 0x80 : 0;
    const abs = b & 0x7fffffff;
    if (abs > 0x7f800000) {
      out[i] = sign | f.nan;
      continue;
    }
    if (abs === 0x7f800000) {
      out[i] = sign | (f.inf ?? f.maxCode);
      continue;
    }
    const exp = (abs >>> 23) - 127;
    let code: number;
    if (exp >= minNormalExp) {
      code = ((exp + f.bias) << M) | ((abs >>> shift) & mantMask);
      if (u * (lowMask + 1) < (abs & lowMask)) code++;
    } else {
      const q = Math.abs(values[i]!) * subnormalScale;
      const lo = Math.floor(q);
      code = lo + (u < q - lo ? 1 : 0);
    }
    out[i] = sign | (code > f.maxCode ? f.maxCode : code);
  }
  return out;
}
