/**
 * The GGUF (de)quantizers against ggml itself: reference vectors made by ggml's C
 * `quantize_row_*_ref` / `dequantize_row_*` (fixtures/gguf/make-ref-vectors.py) must match bit for
 * bit; hand-built blocks check the byte layouts; test-quantize-fns.cpp's error threshold holds.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dequantize, quantize } from '../src/gguf/codec.ts';
import { fp16ToFp32, fp32ToFp16, nearestInt } from '../src/gguf/half.ts';
import { SUPPORTED_TYPES, typeByName, type GgmlType } from '../src/gguf/types.ts';
import { encodeFromF32 } from '../src/tensor/dtype.ts';

interface RefVectors {
  source: string;
  count: number;
  inputs: Record<string, string>;
  types: Record<string, Record<string, { quantized: string; dequantizedSha256: string }>>;
}
const REF = JSON.parse(readFileSync(new URL('fixtures/gguf/ref-vectors.json', import.meta.url), 'utf8')) as RefVectors;
const f32From = (b64: string): Float32Array => {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const sha = (x: Float32Array) => createHash('sha256').update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)).digest('hex');
const half = (x: number) => [fp32ToFp16(x) & 0xff, fp32ToFp16(x) >> 8];
const QUANTS = SUPPORTED_TYPES.filter((t) => typeByName(t)!.blockSize > 1);

describe('GGUF quantizers match ggml reference vectors bit for bit', () => {
  it('covers every quantized type', () => {
    expect(Object.keys(REF.types).sort()).toEqual([...QUANTS].sort());
  });
  for (const [type, patterns] of Object.entries(REF.types)) {
    for (const [pattern, v] of Object.entries(patterns)) {
      it(`${type} on "${pattern}" data`, () => {
        const x = f32From(REF.inputs[pattern]!);
        const expected = Buffer.from(v.quantized, 'base64');
        const q = quantize(type as GgmlType, x);
        expect(Buffer.from(q).equals(expected)).toBe(true);
        expect(sha(dequantize(type as GgmlType, new Uint8Array(expected)))).toBe(v.dequantizedSha256);
      });
    }
  }
});

describe('GGUF block layouts, by hand', () => {
  it('Q8_0: d f16 then 32 int8; x = q·d', () => {
    const block = new Uint8Array(34);
    block.set(half(0.5), 0);
    const qs = [-128, -1, 0, 1, 127, 5];
    qs.forEach((q, i) => (block[2 + i] = q & 0xff));
    const y = dequantize('Q8_0', block);
    expect([...y.subarray(0, 6)]).toEqual([-64, -0.5, 0, 0.5, 63.5, 2.5]);
    // quantizing: amax 127 gives d = 1, codes are the values, round half away from zero
    const x = new Float32Array(32);
    x[0] = 127; x[1] = -2.5; x[2] = 2.5; x[3] = -0.4;
    const q = quantize('Q8_0', x);
    expect(fp16ToFp32(q[0]! | (q[1]! << 8))).toBe(1);
    expect([...new Int8Array(q.buffer, 2, 4)]).toEqual([127, -3, 3, 0]);
  });

  it('Q4_0: low nibbles are elements 0–15, high nibbles 16–31; x = (n − 8)·d', () => {
    const block = new Uint8Array(18);
    block.set(half(2), 0);
    block[2] = 0x0f | (0x00 << 4); // element 0: 15 → 14, element 16: 0 → −16
    block[3] = 0x08 | (0x09 << 4); // element 1: 0, element 17: 2
    const y = dequantize('Q4_0', block);
    expect([y[0], y[16], y[1], y[17]]).toEqual([14, -16, 0, 2]);
  });

  it('Q5_0: bit j of qh is the 5th bit of element j', () => {
    const block = new Uint8Array(22);
    block.set(half(1), 0);
    new DataView(block.buffer).setUint32(2, (1 << 0) | (1 << 16), true);
    block[6] = 0x00; // elements 0 and 16: low nibble 0 with the 5th bit → 16 − 16 = 0
    block[7] = 0x1f & 0x0f; // element 1: 15 − 16 = −1, element 17: 0 − 16 = −16
    const y = dequantize('Q5_0', block);
    expect([y[0], y[16], y[1], y[17], y[2]]).toEqual([0, 0, -1, -16, -16]);
  });

  it('Q4_K: 6-bit scales/mins packed in 12 bytes; x = d·sc·q − dmin·m', () => {
    const block = new Uint8Array(144);
    block.set(half(0.5), 0); // d
    block.set(half(0.25), 2); // dmin
    const sc = [1, 2, 3, 4, 33, 40, 50, 63];
    const m = [0, 1, 2, 3, 17, 20, 30, 63];
    const s = block.subarray(4, 16);
    for (let j = 0; j < 8; j++) {
      if (j < 4) { s[j] = sc[j]!; s[j + 4] = m[j]!; }
      else { s[j + 4] = (sc[j]! & 0xf) | ((m[j]! & 0xf) << 4); s[j - 4]! |= (sc[j]! >> 4) << 6; s[j]! |= (m[j]! >> 4) << 6; }
    }
    // qs: 4 groups of 32 bytes; group g holds sub-block 2g in low nibbles, 2g+1 in high nibbles
    for (let g = 0; g < 4; g++) for (let l = 0; l < 32; l++) block[16 + 32 * g + l] = (l % 16) | ((15 - (l % 16)) << 4);
    const y = dequantize('Q4_K', block);
    for (let j = 0; j < 8; j++) {
      for (let l = 0; l < 32; l++) {
        const q = j % 2 === 0 ? l % 16 : 15 - (l % 16);
        expect(y[32 * j + l]).toBe(Math.fround(0.5 * sc[j]! * q) - 0.25 * m[j]!);
      }
    }
  });

  it('Q6_K: ql, qh, int8 scales, then d last; x = d·sc·(q − 32)', () => {
    const block = new Uint8Array(210);
    block.set(half(0.125), 208);
    for (let i = 0; i < 16; i++) block[192 + i] = (i % 2 ? -i : i) & 0xff;
    // element 0: q = 0x3f (ql low nibble 0xf, qh bits 0–1 = 3) → 31; element 64: ql high nibble 0, qh bits 4–5 = 0 → −32
    block[0] = 0x0f;
    block[128] = 0x03;
    const y = dequantize('Q6_K', block);
    expect(y[0]).toBe(0.125 * 0 * 31); // scale of sub-block 0 is 0
    block[192] = 3;
    const y2 = dequantize('Q6_K', block);
    expect(y2[0]).toBe(0.125 * 3 * 31);
    expect(y2[64]).toBe(0.125 * 4 * -32); // sub-block 4 (elements 64–79), scale 4
    expect(y2[16]).toBe(0.125 * -1 * -32); // sub-block 1, scale −1, q = 0 − 32
  });
});

describe('GGUF quantization error', () => {
  // test-quantize-fns.cpp: generate_data(0) = 0.1 + 2·cos(i), 32·128 values, rmse(sqrt(Σd²)/n) < 0.002
  const n = 32 * 128;
  const data = Float32Array.from({ length: n }, (_, i) => 0.1 + 2 * Math.cos(i));
  for (const type of QUANTS) {
    it(`${type} stays under ggml's MAX_QUANTIZATION_TOTAL_ERROR`, () => {
      const y = dequantize(type, quantize(type, data));
      let sum = 0;
      for (let i = 0; i < n; i++) sum += (data[i]! - y[i]!) ** 2;
      expect(Math.sqrt(sum) / n).toBeLessThan(0.002);
    });
  }

  it('each value is within a per-type bound of its block maximum', () => {
    const bound: Record<string, number> = { Q8_0: 1 / 127, Q5_0: 1 / 16, Q5_1: 1 / 31, Q4_0: 1 / 8, Q4_1: 1 / 15, Q6_K: 1 / 24, Q5_K: 1 / 24, Q4_K: 1 / 12 };
    const x = Float32Array.from({ length: 1024 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)));
    for (const type of QUANTS) {
      const y = dequantize(type, quantize(type, x));
      const block = typeByName(type)!.blockSize;
      for (let b = 0; b < x.length; b += block) {
        const amax = Math.max(...x.subarray(b, b + block).map(Math.abs));
        for (let i = b; i < b + block; i++) expect(Math.abs(x[i]! - y[i]!), `${type} at ${i}`).toBeLessThanOrEqual(amax * bound[type]! * 1.01);
      }
    }
  });

  it('F32, F16 and BF16 round trip exactly (on values they hold) and round like ggml', () => {
    const x = Float32Array.from([0, -0, 1, -2.5, 65504, 6e-8, 1e-3, Infinity, -Infinity, 3.140625]);
    for (const type of ['F32', 'F16', 'BF16'] as const) {
      const once = dequantize(type, quantize(type, x));
      expect(dequantize(type, quantize(type, once))).toEqual(once);
    }
    expect(dequantize('F32', quantize('F32', x))).toEqual(x);
    const odd = Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 2 ** -25, 3 * 2 ** -25]);
    expect([...dequantize('F16', quantize('F16', odd))]).toEqual([1, 1 + 2 ** -9, Infinity, 0, 2 ** -23]);
  });
});

describe('GGUF scalar helpers', () => {
  it('fp32ToFp16 rounds exactly like the array codec (nearest even, overflow to Inf, quiet NaN)', () => {
    const xs = new Float32Array(20000);
    for (let i = 0; i < xs.length; i++) xs[i] = (Math.sin(i * 12.9898) * 43758.5453 % 1) * 2 ** ((i % 60) - 30);
    xs.set([NaN, -NaN, 65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 2 ** -25 * 3, 6.1e-5, -0]);
    const ref = new Uint16Array(encodeFromF32(xs, 'F16').buffer);
    for (let i = 0; i < xs.length; i++) expect(fp32ToFp16(xs[i]!), `value ${xs[i]}`).toBe(ref[i]);
  });

  it("nearestInt is ggml's nearest_int: ties to even", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 7.5000005].map(nearestInt)).toEqual([0, 2, 2, 0, -2, 2, 8]);
  });
});
