import { describe, expect, it } from 'vitest';
import { encodeFp8Stochastic } from '../src/tensor/fp8-round.ts';
import { decodeToF32 } from '../src/tensor/dtype.ts';

const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;

describe('stochastic fp8 rounding', () => {
  it.each([
    ['F8_E4M3', 1.1, 1, 1.125],
    ['F8_E4M3', -300, -320, -288],
    ['F8_E4M3', 2 ** -9 * 0.25, 0, 2 ** -9],
    ['F8_E5M2', 0.3, 0.25, 0.3125],
  ] as const)('%s %d rounds to %d or %d, unbiased on average', (dtype, x, lo, hi) => {
    const n = 20000;
    const out = decodeToF32(encodeFp8Stochastic(new Float32Array(n).fill(x), dtype, 7), dtype);
    expect(new Set(out)).toEqual(new Set([lo, hi]));
    expect(Math.abs(mean(out) - Math.fround(x))).toBeLessThan(0.02 * (hi - lo));
  });

  it('saturates, keeps NaN and (for E5M2) Inf, and is exact on representable values', () => {
    const values = Float32Array.of(1e6, -1e6, NaN, 448, -0.5, 0);
    expect([...encodeFp8Stochastic(values, 'F8_E4M3', 1)]).toEqual([0x7e, 0xfe, 0x7f, 0x7e, 0xb0, 0x00]);
    expect([...encodeFp8Stochastic(Float32Array.of(Infinity, -Infinity, 1e9), 'F8_E5M2', 1)]).toEqual([0x7c, 0xfc, 0x7b]);
  });

  it('depends on the seed and the element index only, so chunks round as the whole does', () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 3);
    const whole = encodeFp8Stochastic(values, 'F8_E4M3', 42);
    const parts = [...encodeFp8Stochastic(values.subarray(0, 333), 'F8_E4M3', 42, 0), ...encodeFp8Stochastic(values.subarray(333), 'F8_E4M3', 42, 333)];
    expect(parts).toEqual([...whole]);
    expect([...encodeFp8Stochastic(values, 'F8_E4M3', 43)]).not.toEqual([...whole]);
  });
});
