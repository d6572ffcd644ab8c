/**
 * Value-level checks of the dtype codecs against hand-computed bit patterns and against properties
 * that hold for any correct rounding (midpoints go to the even neighbour), never against the codec's
 * own output.
 */
import { describe, expect, it } from 'vitest';
import { bf16SimdAvailable, decodeBF16Simd, encodeBF16Simd, sumSquaresBF16Simd } from '../src/tensor/bf16-simd.ts';
import { storedNorm2 } from '../src/lora/change-norms.ts';
import { decodeInto, decodeToF32, dtypeBytes, encodeFromF32, parseDType, roundTo, type DType } from '../src/tensor/dtype.ts';

const bitsF32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0]!;
const f32Bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;

/** Encodes each value and returns the stored codes as unsigned integers. */
function codes(dtype: DType, values: number[]): number[] {
  const bytes = encodeFromF32(Float32Array.from(values), dtype);
  if (dtype === 'BF16' || dtype === 'F16') return [...new Uint16Array(bytes.buffer, bytes.byteOffset, values.length)];
  return [...bytes];
}

function decodeCodes(dtype: DType, list: number[]): Float32Array {
  const bytes = dtypeBytes(dtype) === 2 ? new Uint8Array(Uint16Array.from(list).buffer) : Uint8Array.from(list);
  return decodeToF32(bytes, dtype);
}

/** Reference decoder written from the format definition: sign, biased exponent, mantissa. */
function refDecode(code: number, expBits: number, manBits: number, kind: 'ieee' | 'fn'): number {
  const sign = code >> (expBits + manBits) ? -1 : 1;
  const e = (code >> manBits) & ((1 << expBits) - 1);
  const m = code & ((1 << manBits) - 1);
  const bias = 2 ** (expBits - 1) - 1;
  const top = (1 << expBits) - 1;
  if (kind === 'ieee' && e === top) return m === 0 ? sign * Infinity : NaN;
  if (kind === 'fn' && e === top && m === (1 << manBits) - 1) return NaN; // e4m3fn: only S.1111.111 is NaN
  if (e === 0) return sign * m * 2 ** (1 - bias - manBits);
  return sign * (1 + m / 2 ** manBits) * 2 ** (e - bias);
}

const FORMATS = [
  { dtype: 'F16' as const, expBits: 5, manBits: 10, kind: 'ieee' as const, count: 65536 },
  { dtype: 'BF16' as const, expBits: 8, manBits: 7, kind: 'ieee' as const, count: 65536 },
  { dtype: 'F8_E4M3' as const, expBits: 4, manBits: 3, kind: 'fn' as const, count: 256 },
  { dtype: 'F8_E5M2' as const, expBits: 5, manBits: 2, kind: 'ieee' as const, count: 256 },
];

describe('BF16 encode: round to nearest, ties to even', () => {
  it.each([
    ['1.0', 0x3f800000, 0x3f80],
    ['exactly half an ulp above 1 (tie, even is down)', 0x3f808000, 0x3f80],
    ['tie above an odd code (even is up)', 0x3f818000, 0x3f82],
    ['just above the tie', 0x3f808001, 0x3f81],
    ['just below the tie', 0x3f807fff, 0x3f80],
    ['negative tie', 0xbf808000, 0xbf80],
    ['carry through the mantissa into the exponent', 0x3fffffff, 0x4000],
    ['tie at the top of a binade carries into the exponent', 0x3fff8000, 0x4000],
    ['largest f32 overflows to +Inf', 0x7f7fffff, 0x7f80],
    ['largest value that stays finite', 0x7f7f7fff, 0x7f7f],
    ['-largest f32 overflows to -Inf', 0xff7fffff, 0xff80],
    ['+Inf', 0x7f800000, 0x7f80],
    ['-Inf', 0xff800000, 0xff80],
    ['f32 subnormal tie rounds to even (zero)', 0x00008000, 0x0000],
    ['f32 subnormal tie above odd', 0x00018000, 0x0002],
    ['tiny subnormal', 0x00000001, 0x0000],
    ['-0', 0x80000000, 0x8000],
  ])('%s', (_, input, expected) => {
    expect(codes('BF16', [bitsF32(input)])).toEqual([expected]);
  });

  it('NaN stays NaN, including NaNs whose payload lives only in the low 16 bits', () => {
    for (const bits of [0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff]) {
      const [c] = codes('BF16', [bitsF32(bits)]);
      expect((c! & 0x7f80) === 0x7f80 && (c! & 0x7f) !== 0, bits.toString(16)).toBe(true);
      expect(c! >> 15, 'sign kept').toBe(bits >>> 31);
    }
  });
});

describe('BF16 decode in bulk (SIMD groups of eight plus the scalar tail)', () => {
  it('decodes every one of the 65536 codes to the f32 with those top 16 bits, at any byte offset and length', () => {
    for (const [offset, count] of [[0, 65536], [1, 65536 - 3], [2, 13], [3, 8], [0, 7]] as const) {
      const backing = new Uint8Array(2 * 65536 + 8);
      const bytes = backing.subarray(offset, offset + 2 * count);
      for (let i = 0; i < count; i++) {
        const code = (i * 40503) & 0xffff; // a permutation of the codes, so neighbours differ
        bytes[2 * i] = code & 0xff;
        bytes[2 * i + 1] = code >>> 8;
      }
      const got = new Uint32Array(decodeToF32(bytes, 'BF16').buffer);
      for (let i = 0; i < count; i++) {
        const code = (i * 40503) & 0xffff;
        if (got[i] !== ((code << 16) >>> 0)) expect(got[i]!.toString(16), `offset ${offset}, value ${i}`).toBe(((code << 16) >>> 0).toString(16));
      }
    }
  });

  it('the SIMD kernel takes whole groups of eight and leaves the tail to the scalar loop', () => {
    expect(decodeBF16Simd(new Uint8Array(42), new Float32Array(21))).toBe(16);
  });
});

describe('Σ x² of BF16 bytes (the base norm an apply reports)', () => {
  /** The reference: every code decoded, squared and summed in f64, in order. */
  const reference = (bytes: Uint8Array) => decodeToF32(bytes, 'BF16').reduce((s, v) => s + v * v, 0);
  const codes = (count: number, offset = 0, top = 0x7f) => {
    const bytes = new Uint8Array(2 * count + offset).subarray(offset);
    for (let i = 0; i < count; i++) {
      const code = (i * 40503) & 0xffff & ((top << 8) | 0xff | 0x8000); // both signs, exponents up to `top`
      bytes[2 * i] = code & 0xff;
      bytes[2 * i + 1] = code >>> 8;
    }
    return bytes;
  };

  it('matches the f64 reference at odd lengths and offsets (SIMD groups of eight and the tail)', () => {
    for (const [count, offset] of [[0, 0], [1, 0], [7, 1], [8, 0], [9, 3], [65536 * 2 + 13, 1], [300_001, 0]] as const) {
      const bytes = codes(count, offset, 0x43); // |x| < 2^8 or so: no overflow, plenty of range
      const want = reference(bytes);
      const got = storedNorm2(bytes, 'BF16');
      expect(Math.abs(got - want), `count ${count}`).toBeLessThanOrEqual(1e-12 * want);
    }
  });

  it('the SIMD part covers whole groups of eight; Inf and NaN in the base come through as Inf and NaN', () => {
    expect(sumSquaresBF16Simd(new Uint8Array(42)).count).toBe(16);
    const inf = codes(24);
    inf[2 * 5 + 1] = 0x7f; inf[2 * 5] = 0x80; // +Inf inside the SIMD part
    expect(storedNorm2(inf, 'BF16')).toBe(Infinity);
    const nan = codes(24);
    nan[2 * 3 + 1] = 0xff; nan[2 * 3] = 0xc1; // a NaN
    expect(storedNorm2(nan, 'BF16')).toBeNaN();
    if (bf16SimdAvailable) expect(Math.abs(sumSquaresBF16Simd(codes(16)).sum - reference(codes(16)))).toBeLessThanOrEqual(1e-15 * reference(codes(16)));
  });
});

describe('BF16 encode in bulk (SIMD groups of eight plus the scalar tail)', () => {
  /** Nearest BF16 by distance, ties to the even code; independent of the bit tricks under test. */
  function nearestBF16(bits: number): number {
    const x = bitsF32(bits);
    if (Number.isNaN(x)) return -1; // checked separately: any NaN code
    const lo = (bits >>> 16) & 0xffff;
    const hi = (lo + 1) & 0xffff;
    const value = (code: number) => {
      const v = bitsF32((code << 16) >>> 0);
      // One step past the largest finite value is the overflow boundary 2^128 (encoded as Inf).
      return Number.isFinite(v) ? v : Math.sign(v) * 2 ** 128;
    };
    if (!Number.isFinite(x)) return lo;
    const dLo = Math.abs(x - value(lo));
    const dHi = Math.abs(x - value(hi));
    return dLo < dHi || (dLo === dHi && (lo & 1) === 0) ? lo : hi;
  }

  it('the SIMD kernel is available in this runtime (so the fast path is the one tested)', () => {
    expect(bf16SimdAvailable).toBe(true);
    expect(encodeBF16Simd(new Float32Array(21), new Uint16Array(21))).toBe(16);
  });

  it('every value of a large mixed batch rounds to the nearest BF16, ties to even', () => {
    const n = (1 << 18) + 5; // not a multiple of 8: the scalar tail runs too
    const bits = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const r = Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(i >>> 3, 0x85ebca6b);
      // Every fourth value is an exact tie (low half 0x8000) or one off it, the rest random.
      bits[i] = i % 4 === 0 ? (r & ~0xffff) | 0x8000 : i % 4 === 1 ? (r & ~0xffff) | 0x7fff : r;
    }
    bits.set([0x7f7fffff, 0xff7fffff | 0, 0x7f7f8000, 0x7f800000, 0xff800000 | 0, 0x7fc00000, 0x7f800001, 0xffffffff | 0], 0);
    const got = new Uint16Array(encodeFromF32(new Float32Array(bits.buffer), 'BF16').buffer);
    const wrong: string[] = [];
    for (let i = 0; i < n; i++) {
      const b = bits[i]!;
      const want = nearestBF16(b);
      const ok = want === -1 ? (got[i]! & 0x7f80) === 0x7f80 && (got[i]! & 0x7f) !== 0 && got[i]! >> 15 === b >>> 31 : got[i] === want;
      if (!ok) wrong.push(`${(b >>> 0).toString(16)} -> ${got[i]!.toString(16)} (want ${want.toString(16)})`);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });
});

describe('F16 encode', () => {
  it.each([
    ['1.0', 1, 0x3c00],
    ['0.1', 0.1, 0x2e66],
    ['-2.5', -2.5, 0xc100],
    ['1/3', 1 / 3, 0x3555],
    ['tie above 1 goes down to even', 1 + 2 ** -11, 0x3c00],
    ['tie above odd goes up to even', 1 + 3 * 2 ** -11, 0x3c02],
    ['just above a tie goes up', 1 + 2 ** -11 + 2 ** -20, 0x3c01],
    ['tie below 2 carries into the exponent', 2 - 2 ** -11, 0x4000],
    ['largest finite', 65504, 0x7bff],
    ['just under the overflow tie', 65519, 0x7bff],
    ['overflow tie rounds to Inf', 65520, 0x7c00],
    ['1e6 overflows to +Inf', 1e6, 0x7c00],
    ['-1e6 overflows to -Inf', -1e6, 0xfc00],
    ['+Inf', Infinity, 0x7c00],
    ['-Inf', -Infinity, 0xfc00],
    ['smallest subnormal', 2 ** -24, 0x0001],
    ['half the smallest subnormal (tie to zero)', 2 ** -25, 0x0000],
    ['just over half the smallest subnormal', 2 ** -25 + 2 ** -40, 0x0001],
    ['subnormal tie above odd', 3 * 2 ** -25, 0x0002],
    ['largest subnormal', 1023 * 2 ** -24, 0x03ff],
    ['subnormal tie carries into the smallest normal', 1023.5 * 2 ** -24, 0x0400],
    ['smallest normal', 2 ** -14, 0x0400],
    ['-0', -0, 0x8000],
    ['negative subnormal', -(2 ** -24), 0x8001],
  ])('%s', (_, input, expected) => {
    expect(codes('F16', [input])).toEqual([expected]);
  });

  it('NaN encodes to a NaN code', () => {
    const [c] = codes('F16', [NaN]);
    expect((c! & 0x7c00) === 0x7c00 && (c! & 0x3ff) !== 0).toBe(true);
  });
});

describe('FP8 encode: round to nearest even, saturate instead of overflow', () => {
  it.each([
    ['1.0', 1, 0x38],
    ['0.1', 0.1, 0x1d],
    ['448 is the largest finite', 448, 0x7e],
    ['464 is a tie between 448 and (NaN) 480: stays 448', 464, 0x7e],
    ['470 saturates', 470, 0x7e],
    ['1e6 saturates to 448', 1e6, 0x7e],
    ['-1e6 saturates to -448', -1e6, 0xfe],
    ['+Inf saturates (E4M3 has no Inf)', Infinity, 0x7e],
    ['-Inf saturates', -Infinity, 0xfe],
    ['tie goes down to even', 1 + 1 / 16, 0x38],
    ['tie goes up to even', 1 + 3 / 16, 0x3a],
    ['tie carries into the exponent', 1 + 15 / 16, 0x40],
    ['smallest subnormal', 2 ** -9, 0x01],
    ['half the smallest subnormal (tie to zero)', 2 ** -10, 0x00],
    ['subnormal tie above odd', 3 * 2 ** -10, 0x02],
    ['largest subnormal', 7 * 2 ** -9, 0x07],
    ['subnormal tie carries into the smallest normal', 7.5 * 2 ** -9, 0x08],
    ['-0', -0, 0x80],
  ])('E4M3 %s', (_, input, expected) => {
    expect(codes('F8_E4M3', [input])).toEqual([expected]);
  });

  it.each([
    ['1.0', 1, 0x3c],
    ['57344 is the largest finite', 57344, 0x7b],
    ['61440 (tie with Inf) saturates', 61440, 0x7b],
    ['1e6 saturates to 57344', 1e6, 0x7b],
    ['-1e6 saturates to -57344', -1e6, 0xfb],
    ['+Inf survives', Infinity, 0x7c],
    ['-Inf survives', -Infinity, 0xfc],
    ['tie goes down to even', 1.125, 0x3c],
    ['tie goes up to even', 1.375, 0x3e],
    ['tie carries into the exponent', 1.875, 0x40],
    ['smallest subnormal', 2 ** -16, 0x01],
    ['half the smallest subnormal (tie to zero)', 2 ** -17, 0x00],
    ['subnormal tie above odd', 3 * 2 ** -17, 0x02],
    ['-0', -0, 0x80],
  ])('E5M2 %s', (_, input, expected) => {
    expect(codes('F8_E5M2', [input])).toEqual([expected]);
  });

  it('NaN encodes to a NaN code in both formats', () => {
    expect(codes('F8_E4M3', [NaN, -NaN].map((v) => v)).every((c) => (c & 0x7f) === 0x7f)).toBe(true);
    const [c] = codes('F8_E5M2', [NaN]);
    expect((c! & 0x7c) === 0x7c && (c! & 0x03) !== 0).toBe(true);
  });
});

describe.each(FORMATS)('$dtype: every code', ({ dtype, expBits, manBits, kind, count }) => {
  const all = Array.from({ length: count }, (_, c) => c);
  const decoded = decodeCodes(dtype, all);

  it('decodes to the value the format definition gives', () => {
    const wrong: string[] = [];
    for (let c = 0; c < count; c++) {
      const want = Math.fround(refDecode(c, expBits, manBits, kind));
      const got = decoded[c]!;
      if (!(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)))) wrong.push(`${c.toString(16)}: ${got} != ${want}`);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });

  it('decodes then encodes to itself (NaN codes stay NaN)', () => {
    const back = codes(dtype, [...decoded]);
    const wrong: string[] = [];
    for (let c = 0; c < count; c++) {
      if (Number.isNaN(decoded[c]!)) {
        if (!Number.isNaN(decodeCodes(dtype, [back[c]!])[0]!)) wrong.push(`NaN code ${c.toString(16)} became ${back[c]!.toString(16)}`);
      } else if (back[c] !== c) wrong.push(`${c.toString(16)} -> ${back[c]!.toString(16)}`);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });

  it('sends midpoints between neighbours to the even code, and nudged midpoints to the nearer one', () => {
    // Positive finite codes in increasing order (codes are monotonic in value for positive numbers).
    const finite = all.filter((c) => c < count / 2 && Number.isFinite(decoded[c]!));
    const wrong: string[] = [];
    for (let i = 0; i + 1 < finite.length; i++) {
      const lo = finite[i]!;
      const hi = finite[i + 1]!;
      const mid = (decoded[lo]! + decoded[hi]!) / 2; // exact in f32: one bit more than the format has
      const midBits = f32Bits(mid);
      const even = lo % 2 === 0 ? lo : hi;
      const [atMid, above, below] = codes(dtype, [mid, bitsF32(midBits + 1), bitsF32(midBits - 1)]);
      if (atMid !== even) wrong.push(`mid ${mid}: ${atMid} (want ${even})`);
      if (above !== hi) wrong.push(`above ${mid}: ${above} (want ${hi})`);
      if (below !== lo && mid > 0) wrong.push(`below ${mid}: ${below} (want ${lo})`);
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });
});

describe('integer and bool dtypes', () => {
  const ints = [1.4, 1.5, 2.5, -1.5, -2.5, 300, -300, NaN, Infinity];
  it.each([
    ['I8', [1, 2, 2, -2, -2, 127, -128, 0, 127]],
    ['U8', [1, 2, 2, 0, 0, 255, 0, 0, 255]],
    ['I16', [1, 2, 2, -2, -2, 300, -300, 0, 32767]],
    ['I32', [1, 2, 2, -2, -2, 300, -300, 0, 2147483647]],
  ] as const)('%s rounds to nearest even and saturates instead of wrapping', (dtype, expected) => {
    const bytes = encodeFromF32(Float32Array.from(ints), dtype);
    const stored = { I8: Int8Array, U8: Uint8Array, I16: Int16Array, I32: Int32Array }[dtype];
    expect([...new stored(bytes.buffer as ArrayBuffer, bytes.byteOffset, ints.length)]).toEqual(expected);
  });

  it('I32 saturates 3e9 and decodes little-endian bytes', () => {
    expect([...new Int32Array(encodeFromF32(Float32Array.from([3e9, -3e9]), 'I32').buffer)]).toEqual([2147483647, -2147483648]);
    expect([...decodeToF32(Uint8Array.from([0x01, 0x02, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff]), 'I32')]).toEqual([513, -1]);
  });

  it('I64 encodes exact integers, saturates beyond ±2^63, NaN → 0', () => {
    const bytes = encodeFromF32(Float32Array.from([2 ** 62, -3, 1e30, -Infinity, NaN, 2.5]), 'I64');
    expect([...new BigInt64Array(bytes.buffer)]).toEqual([2n ** 62n, -3n, 2n ** 63n - 1n, -(2n ** 63n), 0n, 2n]);
    const raw = new Uint8Array(new BigInt64Array([-(2n ** 40n), 7n]).buffer);
    expect([...decodeToF32(raw, 'I64')]).toEqual([-(2 ** 40), 7]);
  });

  it('I8/U8/I16 decode signed and unsigned bytes', () => {
    expect([...decodeToF32(Uint8Array.from([0xff, 0x80, 0x7f, 0x00]), 'I8')]).toEqual([-1, -128, 127, 0]);
    expect([...decodeToF32(Uint8Array.from([0xff, 0x80]), 'U8')]).toEqual([255, 128]);
    expect([...decodeToF32(Uint8Array.from([0x00, 0x80, 0x34, 0x12]), 'I16')]).toEqual([-32768, 0x1234]);
  });

  it('BOOL: any non-zero (NaN included) is true, stored as 1', () => {
    expect([...encodeFromF32(Float32Array.from([0, -0, 0.5, -2, NaN]), 'BOOL')]).toEqual([0, 0, 1, 1, 1]);
    expect([...decodeToF32(Uint8Array.from([0, 1, 2]), 'BOOL')]).toEqual([0, 1, 1]);
  });
});

describe('F32 / F64 and buffer handling', () => {
  it('F32 is stored verbatim (little-endian), F64 widens exactly', () => {
    expect([...encodeFromF32(Float32Array.from([1]), 'F32')]).toEqual([0x00, 0x00, 0x80, 0x3f]);
    const f64 = new Float64Array(encodeFromF32(Float32Array.from([0.1, -Infinity]), 'F64').buffer);
    expect([...f64]).toEqual([Math.fround(0.1), -Infinity]);
    expect([...decodeToF32(new Uint8Array(new Float64Array([0.1, 1e300]).buffer), 'F64')]).toEqual([Math.fround(0.1), Infinity]);
  });

  it('decodes views at unaligned offsets', () => {
    for (const dtype of ['F32', 'F16', 'BF16', 'F64', 'I16', 'I32', 'I64'] as const) {
      const values = Float32Array.from([1, -2, 0.5]);
      const enc = encodeFromF32(values, dtype);
      const padded = new Uint8Array(enc.byteLength + 1);
      padded.set(enc, 1);
      expect([...decodeToF32(padded.subarray(1), dtype)], dtype).toEqual(dtype.startsWith('I') ? [1, -2, 0] : [1, -2, 0.5]);
    }
  });

  it('refuses byte counts that are not whole values, and outputs of the wrong size', () => {
    expect(() => decodeToF32(new Uint8Array(7), 'F32')).toThrow(/7 bytes is not a whole number of F32 values/);
    expect(() => decodeInto(new Uint8Array(8), 'F16', new Float32Array(3))).toThrow(/4 F16 values do not fit an output of 3/);
  });

  it('decodeInto fills a slice of a larger buffer', () => {
    const out = new Float32Array(4).fill(9);
    decodeInto(new Uint8Array(Uint16Array.from([0x3f80, 0xc000]).buffer), 'BF16', out.subarray(1, 3));
    expect([...out]).toEqual([9, 1, -2, 9]);
  });

  it('roundTo rounds in place through the stored dtype', () => {
    const v = Float32Array.from([1 + 2 ** -9, 1000, 70000]);
    expect(roundTo(v, 'BF16')).toBe(v);
    expect([...v]).toEqual([1, 1000, 70144]);
    expect([...roundTo(Float32Array.from([1e6, 0.1]), 'F8_E4M3')]).toEqual([448, 0.1015625]);
  });
});

describe('parseDType', () => {
  it.each([
    ['bf16', 'BF16'], ['BFloat16', 'BF16'], ['fp16', 'F16'], ['half', 'F16'], [' float32 ', 'F32'],
    ['fp8_e4m3fn', 'F8_E4M3'], ['fp8', 'F8_E4M3'], ['float8_e5m2', 'F8_E5M2'], ['i64', 'I64'], ['bool', 'BOOL'],
  ])('%s → %s', (text, want) => {
    expect(parseDType(text)).toBe(want);
  });

  it('rejects unknown names, including names inherited from Object.prototype', () => {
    expect(() => parseDType('fp4')).toThrow(/unknown dtype "fp4"/);
    expect(() => parseDType('constructor')).toThrow(/unknown dtype "constructor"/);
    expect(() => parseDType('__proto__')).toThrow(/unknown dtype/);
  });
});
