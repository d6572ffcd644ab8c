import { describe, expect, it } from 'vitest';
import { decodeToF32, encodeFromF32 } from '../src/tensor/dtype.ts';
import { lowRankAddKernel, type LowRankAddDType } from '../src/tensor/low-rank-add-simd.ts';

/** Deterministic values in [-0.5, 0.5). */
function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5);
}

interface Case {
  rows: number;
  cols: number;
  rank: number;
  base: Uint8Array;
  up: Float32Array;
  down: Float32Array;
  /** base + up·down in float64. */
  exact: Float64Array;
}

function makeCase(dtype: LowRankAddDType, rows: number, cols: number, rank: number, seed: number): Case {
  const up = random(rows * rank, seed);
  const down = random(rank * cols, seed + 1);
  const base = encodeFromF32(random(rows * cols, seed + 2).map((v) => v * 8), dtype);
  const stored = decodeToF32(base, dtype);
  const exact = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < rank; k++) s += up[r * rank + k]! * down[k * cols + j]!;
      exact[r * cols + j] = stored[r * cols + j]! + s;
    }
  }
  return { rows, cols, rank, base, up, down, exact };
}

const kernels = {
  default: lowRankAddKernel(),
  'separate multiply and add': lowRankAddKernel({ fused: false }),
  scalar: lowRankAddKernel({ simd: false }),
};

describe('fused low-rank add kernel (W + up·down, rounded once)', () => {
  it('runs on WebAssembly SIMD here, with fused multiply-add where relaxed SIMD is on', () => {
    expect(kernels.default.simd).toBe(true);
    expect(kernels['separate multiply and add'].fused).toBe(false);
    expect(kernels.scalar.simd).toBe(false);
  });

  // Widths with and without a tail past the last 16 columns, odd and even row counts, ranks of every residue.
  const shapes = [[5, 37, 3], [6, 64, 32], [7, 80, 33], [3, 10, 2], [1, 48, 1], [9, 3072 / 32, 64], [4, 16, 0]] as const;

  describe.each(Object.keys(kernels) as (keyof typeof kernels)[])('%s', (name) => {
    const kernel = kernels[name];

    it.each(shapes)('BF16 %i×%i at rank %i: each value the f64 sum rounded to bf16, or its neighbour at a rounding boundary', (rows, cols, rank) => {
      const c = makeCase('BF16', rows, cols, rank, rows * 1000 + cols + rank);
      const out = new Uint8Array(c.base.byteLength);
      kernel('BF16', c.base, c.up, c.down, rank, cols, out);
      const got = decodeToF32(out, 'BF16');
      const want = decodeToF32(encodeFromF32(Float32Array.from(c.exact), 'BF16'), 'BF16');
      let differ = 0;
      for (let i = 0; i < got.length; i++) {
        if (got[i] === want[i]) continue;
        differ++;
        const ulp = 2 ** (Math.floor(Math.log2(Math.abs(want[i]!))) - 7);
        expect(Math.abs(got[i]! - want[i]!), `value ${i}: ${got[i]} vs ${want[i]}`).toBeLessThanOrEqual(ulp);
      }
      expect(differ).toBeLessThanOrEqual(Math.max(1, got.length * 0.01));
      if (rank === 0) expect(Buffer.from(out).equals(Buffer.from(c.base))).toBe(true);
    });

    it.each(shapes)('F32 %i×%i at rank %i: within f32 accumulation error of the f64 sum', (rows, cols, rank) => {
      const c = makeCase('F32', rows, cols, rank, rows * 1000 + cols + rank + 7);
      const out = new Uint8Array(c.base.byteLength);
      kernel('F32', c.base, c.up, c.down, rank, cols, out);
      const got = decodeToF32(out, 'F32');
      for (let i = 0; i < got.length; i++) {
        expect(Math.abs(got[i]! - c.exact[i]!), `value ${i}`).toBeLessThanOrEqual(2 ** -22 * (Math.abs(c.exact[i]!) + rank));
      }
    });
  });

  it('works in place (out = base) and leaves NaN, ±Inf of the base as they are', () => {
    const c = makeCase('BF16', 4, 40, 8, 99);
    const codes = new Uint16Array(c.base.buffer);
    codes.set([0x7fc1, 0x7f80, 0xff80], 0); // NaN, +Inf, −Inf in the SIMD part
    codes.set([0x7fc1], 39); // NaN in the scalar tail
    const copy = c.base.slice();
    kernels.default('BF16', c.base, c.up, c.down, 8, 40, c.base);
    const out = new Uint16Array(c.base.buffer);
    expect([out[0]! & 0x7fc0, out[1], out[2], out[39]! & 0x7fc0]).toEqual([0x7fc0, 0x7f80, 0xff80, 0x7fc0]);
    const separate = new Uint8Array(copy.byteLength);
    kernels.default('BF16', copy, c.up, c.down, 8, 40, separate);
    expect(Buffer.from(separate).equals(Buffer.from(c.base))).toBe(true);
  });

  it('SIMD and scalar kernels agree bit for bit without fused multiply-add', () => {
    const c = makeCase('BF16', 11, 100, 17, 5);
    const simd = new Uint8Array(c.base.byteLength);
    const scalar = new Uint8Array(c.base.byteLength);
    kernels['separate multiply and add']('BF16', c.base, c.up, c.down, 17, 100, simd);
    kernels.scalar('BF16', c.base, c.up, c.down, 17, 100, scalar);
    expect(Buffer.from(simd).equals(Buffer.from(scalar))).toBe(true);
  });

  it('refuses operands whose sizes do not fit the rank and width', () => {
    const c = makeCase('F32', 2, 16, 4, 1);
    expect(() => kernels.default('F32', c.base, c.up.subarray(1), c.down, 4, 16, new Uint8Array(c.base.byteLength))).toThrow(/do not fit rank 4/);
  });
});
