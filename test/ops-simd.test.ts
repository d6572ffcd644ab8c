import { describe, expect, it } from 'vitest';
import { addAndEncode } from '../src/tensor/fused-codec.ts';
import { addRoundKernels } from '../src/tensor/add-round-simd.ts';
import { decodeToF32, encodeFromF32 } from '../src/tensor/dtype.ts';

/** Random bit patterns (every class: normals, subnormals, zeros, Inf, NaN) and small deltas. */
function cases(n: number, seed: number): { src: Uint16Array; delta: Float32Array } {
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  const src = Uint16Array.from({ length: n }, () => next() >>> 16);
  const delta = new Float32Array(n);
  const bits = new Uint32Array(delta.buffer);
  for (let i = 0; i < n; i++) {
    if (i % 3 === 0) bits[i] = next();
    else delta[i] = ((next() / 2 ** 32) - 0.5) * 2 ** ((next() % 40) - 20);
  }
  // Exact ties of bf16 rounding: base + delta lands halfway between two bf16 values.
  for (let i = 5; i < n; i += 97) {
    src[i] = 0x3f80 + (i % 64);
    delta[i] = 2 ** -8 * (i % 2 ? 1 : 0.5) * 2 ** -7 * 128;
  }
  src.set([0x7f80, 0xff80, 0x7fc0, 0x0001, 0x8000].slice(0, n), 0);
  return { src, delta };
}

describe('SIMD codec kernels', () => {
  const k = addRoundKernels();

  it('are available (WebAssembly SIMD validates)', () => {
    expect(k).toBeDefined();
  });

  it.each([4096, 4099, 1, 2, 3])('bf16 + delta rounds exactly like the reference codec (%i values)', (n) => {
    const { src, delta } = cases(n, n);
    const sums = decodeToF32(new Uint8Array(src.buffer), 'BF16').map((v, i) => v + delta[i]!);
    const want = new Uint16Array(encodeFromF32(sums, 'BF16').buffer);
    const got = new Uint16Array(n);
    k!.bf16Add(src, delta, got);
    for (let i = 0; i < n; i++) {
      if (Number.isNaN(sums[i]!)) expect((got[i]! & 0x7f80) === 0x7f80 && (got[i]! & 0x7f) !== 0, `NaN at ${i}`).toBe(true);
      else expect(got[i], `${i}: ${src[i]!.toString(16)} + ${delta[i]}`).toBe(want[i]);
    }
  });

  it('f32 + delta equals f32 addition, tail included', () => {
    const n = 1027;
    const { delta } = cases(n, 7);
    const src = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 100);
    const got = new Float32Array(n);
    k!.f32Add(src, delta, got);
    for (let i = 0; i < n; i++) expect(Object.is(got[i], Math.fround(src[i]! + delta[i]!)) || (Number.isNaN(got[i]!) && Number.isNaN(src[i]! + delta[i]!)), `${i}`).toBe(true);
  });

  it('addAndEncode takes the kernel path for bf16 and f32 and matches decode + add + encode', () => {
    const { src, delta } = cases(1000, 3);
    const input = new Uint8Array(src.buffer);
    const output = new Uint8Array(2000);
    addAndEncode(input, 'BF16', delta.map((d) => (Number.isNaN(d) ? 0 : d)), 'BF16', output);
    const sums = decodeToF32(input, 'BF16').map((v, i) => v + (Number.isNaN(delta[i]!) ? 0 : delta[i]!));
    const want = encodeFromF32(sums, 'BF16');
    const wantU = new Uint16Array(want.buffer);
    const gotU = new Uint16Array(output.buffer);
    for (let i = 0; i < 1000; i++) if (!Number.isNaN(sums[i]!)) expect(gotU[i], `${i}`).toBe(wantU[i]);
  });
});

describe('SIMD Gram kernel', () => {
  it.each([[5, 13], [3, 8], [64, 1000], [1, 1]])('equals naive float64 dot products (%i rows of %i)', async (count, len) => {
    const { rowGram } = await import('../src/tensor/gram-simd.ts');
    const rows = Array.from({ length: count }, (_, p) => Float64Array.from({ length: len }, (_, j) => Math.sin(p * 7.1 + j * 0.37) * (1 + p)));
    const g = rowGram(count, len, (view, stride) => rows.forEach((r, p) => view.set(r, p * stride)));
    for (let p = 0; p < count; p++)
      for (let q = 0; q < count; q++) {
        let s = 0;
        for (let j = 0; j < len; j++) s += rows[p]![j]! * rows[q]![j]!;
        expect(Math.abs(g[p * count + q]! - s), `${p},${q}`).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(s)));
      }
  });
});
