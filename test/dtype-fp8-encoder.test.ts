/**
 * The small-float encoders (F16, FP8 E4M3FN, FP8 E5M2) against the reference implementation they
 * replaced (kept here as the oracle: normal values by integer rounding, everything subnormal in
 * the target by float arithmetic), on every bf16-representable input and a million random f32
 * bit patterns, so the integer subnormal path is bit-exact everywhere, NaN and Inf included.
 */
import { describe, expect, it } from 'vitest';
import { encodeFromF32 } from '../src/tensor/dtype.ts';

interface MiniFloat { mantissaBits: number; bias: number; maxFinite: number; inf: number | null; nan: number; saturate: boolean; signBit: number }

const FORMATS = {
  F16: { mantissaBits: 10, bias: 15, maxFinite: 0x7bff, inf: 0x7c00, nan: 0x7e00, saturate: false, signBit: 0x8000 },
  F8_E4M3: { mantissaBits: 3, bias: 7, maxFinite: 0x7e, inf: null, nan: 0x7f, saturate: true, signBit: 0x80 },
  F8_E5M2: { mantissaBits: 2, bias: 15, maxFinite: 0x7b, inf: 0x7c, nan: 0x7e, saturate: true, signBit: 0x80 },
} satisfies Record<string, MiniFloat>;
type Format = keyof typeof FORMATS;

const scratch = new Float32Array(1);
const scratchBits = new Int32Array(scratch.buffer);

/** The previous encoder, one value at a time. */
function oracle(bits: number, f: MiniFloat): number {
  const shift = 23 - f.mantissaBits;
  const normalMin = (127 + 1 - f.bias) << 23;
  const rebias = (127 - f.bias) << 23;
  const half = (1 << (shift - 1)) - 1;
  const overflow = f.saturate || f.inf === null ? f.maxFinite : f.inf;
  const sign = bits < 0 ? f.signBit : 0;
  const abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) return sign | f.nan;
  if (abs === 0x7f800000) return sign | (f.inf ?? f.maxFinite);
  if (abs >= normalMin) {
    const r = abs - rebias;
    const code = (r + half + ((r >>> shift) & 1)) >>> shift;
    return sign | (code > f.maxFinite ? overflow : code);
  }
  scratchBits[0] = abs;
  const q = scratch[0]! * 2 ** (f.bias - 1 + f.mantissaBits);
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && (r & 1) === 1)) r++;
  return sign | r;
}

function encoded(bits: Int32Array, dtype: Format): Uint16Array | Uint8Array {
  const bytes = encodeFromF32(new Float32Array(bits.buffer, bits.byteOffset, bits.length), dtype);
  return dtype === 'F16' ? new Uint16Array(bytes.buffer, bytes.byteOffset, bits.length) : bytes;
}

/** The first input where the encoder and the oracle differ, or undefined. */
function firstMismatch(bits: Int32Array, dtype: Format): string | undefined {
  const got = encoded(bits, dtype);
  for (let i = 0; i < bits.length; i++) {
    const want = oracle(bits[i]!, FORMATS[dtype]);
    if (got[i] !== want) return `bits 0x${(bits[i]! >>> 0).toString(16)}: got 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`;
  }
  return undefined;
}

/** xorshift32: deterministic random bit patterns. */
function randomBits(n: number, seed: number, map: (x: number) => number = (x) => x): Int32Array {
  const out = new Int32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = map(x | 0);
  }
  return out;
}

describe.each(Object.keys(FORMATS) as Format[])('%s encoder', (dtype) => {
  it('matches the reference on every bf16-representable input (all 2^16 top halves)', () => {
    const bits = Int32Array.from({ length: 65536 }, (_, h) => h << 16);
    expect(firstMismatch(bits, dtype)).toBeUndefined();
  });

  it('matches the reference on a million random f32 bit patterns', () => {
    expect(firstMismatch(randomBits(1 << 20, 0x9e3779b9), dtype)).toBeUndefined();
  });

  it('matches the reference around the target subnormal range, ties included', () => {
    const f = FORMATS[dtype];
    // exponents from 12 below the target's smallest subnormal up to its smallest normal, any mantissa and sign
    const lo = 127 + 1 - f.bias - f.mantissaBits - 12;
    const span = f.mantissaBits + 13;
    const bits = randomBits(1 << 20, 0x1234567, (x) => {
      const e = lo + ((x >>> 23) & 0xff) % span;
      // every 8th value a tie: only the bit below the kept ones set
      const m = x & 7 ? x & 0x7fffff : (x & 0x7ff000) | 0x800;
      return (x & 0x80000000) | (e << 23) | m;
    });
    expect(firstMismatch(bits, dtype)).toBeUndefined();
  });
});

describe('fp8 encoder by value', () => {
  it('rounds subnormals to nearest even, carries into the smallest normal, saturates, keeps NaN', () => {
    // e4m3fn: subnormal unit 2^-9; 1.5 units is a tie (to 2), 2.5 units a tie (to 2), 7.5 units → 8 = 2^-6 (smallest normal, code 0x08)
    const u = 2 ** -9;
    const got = [...encodeFromF32(Float32Array.of(0.5 * u, 1.5 * u, 2.5 * u, 7.5 * u, -u, 1e-30, 500, -Infinity, NaN), 'F8_E4M3')];
    expect(got).toEqual([0x00, 0x02, 0x02, 0x08, 0x81, 0x00, 0x7e, 0xfe, 0x7f]);
    expect([...encodeFromF32(Float32Array.of(2 ** -16 * 1.5, 1e6, Infinity), 'F8_E5M2')]).toEqual([0x02, 0x7b, 0x7c]);
  });
});
