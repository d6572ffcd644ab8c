/**
 * F32 → BF16 encoding (round to nearest even, NaN kept quiet) with WebAssembly SIMD, four lanes at
 * a time: twice the speed of the scalar loop, which matters because every tensor written in BF16
 * (a FLUX checkpoint is 12 G values) passes through it. BF16 → F32 decoding (each code shifted into
 * the top half of a word) likewise, about three times the speed of the best JavaScript loop, which
 * was the whole cost of reading a BF16 file from the page cache. The module is assembled from its opcodes
 * (wasm-asm.ts); where SIMD is unavailable callers fall back to the scalar loop, which computes
 * bit-identical results.
 *
 * Per lane, with x the f32 bits as i32:
 *   hi   = x >>> 16
 *   r    = (x + 0x7fff + (hi & 1)) >>> 16          round to nearest, ties to even
 *   nan  = (x & 0x7fffffff) > 0x7f800000           (signed compare: both sides are non-negative)
 *   out  = nan ? hi | 0x40 : r
 * and two vectors of results narrow (unsigned saturating, exact for 0..0xffff) into eight u16.
 */
import { F64, I32, V128, assemble, compile, ensureMemory, op, v128 } from './wasm-asm.ts';

/**
 * The rounding above for the four f32 in local `x` (local `hi`, a v128, is scratch): leaves four
 * i32 lanes holding the bf16 codes on the stack. Shared with the fused add-and-round kernel.
 */
export function roundToBf16Lanes(x: number, hi: number): number[] {
  return [
    ...op.get(x), ...op.i32(16), ...v128.i32shrU, ...op.tee(hi), ...v128.const32(0x40), ...v128.or,
    ...op.get(x), ...v128.const32(0x7fff), ...v128.i32add, ...op.get(hi), ...v128.const32(1), ...v128.and, ...v128.i32add, ...op.i32(16), ...v128.i32shrU,
    ...op.get(x), ...v128.const32(0x7fffffff), ...v128.and, ...v128.const32(0x7f800000), ...v128.i32gtS,
    ...v128.bitselect,
  ];
}

// Locals: 0 src, 1 dst, 2 count (params, i32); 3 end (i32); 4 x, 5 hi (v128).
const [SRC, DST, COUNT, END, X, HI] = [0, 1, 2, 3, 4, 5];

/** encode(src, dst, count): count f32 at src → count bf16 at dst; count a multiple of 8. */
const ENCODE = [
  ...op.get(SRC), ...op.get(COUNT), ...op.i32(2), ...op.i32shl, ...op.i32add, ...op.set(END),
  ...op.block, ...op.loop,
  ...op.get(SRC), ...op.get(END), ...op.i32geU, ...op.brIf(1),
  ...op.get(DST),
  ...op.get(SRC), ...v128.load(0), ...op.set(X), ...roundToBf16Lanes(X, HI),
  ...op.get(SRC), ...v128.load(16), ...op.set(X), ...roundToBf16Lanes(X, HI),
  ...v128.narrowU, ...v128.store(),
  ...op.get(SRC), ...op.i32(32), ...op.i32add, ...op.set(SRC),
  ...op.get(DST), ...op.i32(16), ...op.i32add, ...op.set(DST),
  ...op.br(0),
  ...op.end, ...op.end,
];

/** decode(src, dst, count): count bf16 at src → count f32 at dst; count a multiple of 8. */
const DECODE = [
  ...op.get(SRC), ...op.get(COUNT), ...op.i32(1), ...op.i32shl, ...op.i32add, ...op.set(END),
  ...op.block, ...op.loop,
  ...op.get(SRC), ...op.get(END), ...op.i32geU, ...op.brIf(1),
  ...op.get(DST), ...op.get(SRC), ...v128.load(0), ...v128.i32extendLowU16, ...op.i32(16), ...v128.i32shl, ...v128.store(0),
  ...op.get(DST), ...op.get(SRC), ...v128.load(0), ...v128.i32extendHighU16, ...op.i32(16), ...v128.i32shl, ...v128.store(16),
  ...op.get(SRC), ...op.i32(16), ...op.i32add, ...op.set(SRC),
  ...op.get(DST), ...op.i32(32), ...op.i32add, ...op.set(DST),
  ...op.br(0),
  ...op.end, ...op.end,
];

// sumSquares: params 0 src, 1 count; locals 2 end (i32), 3 pair, 4 lanes, 5 acc (v128).
const SQ = { src: 0, count: 1, end: 2, pair: 3, lanes: 4, acc: 5 };
/** The four f32 in local `lanes` squared in f64 and added to local `acc`, two at a time. */
const ADD_SQUARES = [
  ...op.get(SQ.lanes), ...v128.f64promoteLow, ...op.tee(SQ.pair), ...op.get(SQ.pair), ...v128.f64mul, ...op.get(SQ.acc), ...v128.f64add, ...op.set(SQ.acc),
  ...op.get(SQ.lanes), ...op.get(SQ.lanes), ...v128.shuffle(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7), ...v128.f64promoteLow,
  ...op.tee(SQ.pair), ...op.get(SQ.pair), ...v128.f64mul, ...op.get(SQ.acc), ...v128.f64add, ...op.set(SQ.acc),
];
/** sumSquares(src, count) → Σ x² in f64 over count bf16 at src; count a multiple of 8. */
const SUM_SQUARES = [
  ...op.get(SQ.src), ...op.get(SQ.count), ...op.i32(1), ...op.i32shl, ...op.i32add, ...op.set(SQ.end),
  ...op.block, ...op.loop,
  ...op.get(SQ.src), ...op.get(SQ.end), ...op.i32geU, ...op.brIf(1),
  ...op.get(SQ.src), ...v128.load(0), ...v128.i32extendLowU16, ...op.i32(16), ...v128.i32shl, ...op.set(SQ.lanes), ...ADD_SQUARES,
  ...op.get(SQ.src), ...v128.load(0), ...v128.i32extendHighU16, ...op.i32(16), ...v128.i32shl, ...op.set(SQ.lanes), ...ADD_SQUARES,
  ...op.get(SQ.src), ...op.i32(16), ...op.i32add, ...op.set(SQ.src),
  ...op.br(0),
  ...op.end, ...op.end,
  ...op.get(SQ.acc), ...v128.f64lane(0), ...op.get(SQ.acc), ...v128.f64lane(1), ...op.f64add,
];

/** Values per call: 256 KiB of f32 and 128 KiB of bf16, both staying in cache between the copies. */
const CHUNK = 65536;

interface Kernel {
  /** The f32 region (at 0) and the bf16 region (after it) of the kernel's memory. */
  input: Float32Array;
  output: Uint16Array;
  encode(src: number, dst: number, count: number): void;
  decode(src: number, dst: number, count: number): void;
  sumSquares(src: number, count: number): number;
}

function instantiate(): Kernel | null {
  const module = compile(assemble([
    { name: 'encode', params: [I32, I32, I32], results: [], locals: [I32, V128, V128], code: ENCODE },
    { name: 'decode', params: [I32, I32, I32], results: [], locals: [I32, V128, V128], code: DECODE },
    { name: 'sumSquares', params: [I32, I32], results: [F64], locals: [I32, V128, V128, V128], code: SUM_SQUARES },
  ]));
  if (!module) return null; // no WebAssembly SIMD here: the scalar loop does the work
  const exports = new WebAssembly.Instance(module).exports as { mem: WebAssembly.Memory; encode: Kernel['encode']; decode: Kernel['decode']; sumSquares: Kernel['sumSquares'] };
  ensureMemory(exports.mem, CHUNK * 6);
  return {
    input: new Float32Array(exports.mem.buffer, 0, CHUNK),
    output: new Uint16Array(exports.mem.buffer, CHUNK * 4, CHUNK),
    encode: exports.encode,
    decode: exports.decode,
    sumSquares: exports.sumSquares,
  };
}

const kernel = instantiate();

export const bf16SimdAvailable = kernel !== null;

/**
 * Encodes the first multiple-of-8 values of `values` into `dst` and returns how many it encoded
 * (0 without SIMD support); the caller encodes the rest.
 */
export function encodeBF16Simd(values: Float32Array, dst: Uint16Array): number {
  if (!kernel) return 0;
  const n = values.length - (values.length % 8);
  for (let i = 0; i < n; i += CHUNK) {
    const count = Math.min(CHUNK, n - i);
    kernel.input.set(count === CHUNK ? values.subarray(i, i + CHUNK) : values.subarray(i, i + count));
    kernel.encode(0, CHUNK * 4, count);
    dst.set(count === CHUNK ? kernel.output : kernel.output.subarray(0, count), i);
  }
  return n;
}

/**
 * Decodes the first multiple-of-8 values of the bf16 `bytes` (any alignment) into `dst` and returns
 * how many it decoded (0 without SIMD support); the caller decodes the rest.
 */
export function decodeBF16Simd(bytes: Uint8Array, dst: Float32Array): number {
  if (!kernel) return 0;
  const n = dst.length - (dst.length % 8);
  const staged = new Uint8Array(kernel.output.buffer, kernel.output.byteOffset, CHUNK * 2);
  for (let i = 0; i < n; i += CHUNK) {
    const count = Math.min(CHUNK, n - i);
    staged.set(bytes.subarray(2 * i, 2 * (i + count)));
    kernel.decode(CHUNK * 4, 0, count);
    dst.set(count === CHUNK ? kernel.input : kernel.input.subarray(0, count), i);
  }
  return n;
}

/**
 * Σ x² (in f64) over the first multiple-of-8 values of the bf16 `bytes` (any alignment): the base
 * norm an apply reports, at memory speed instead of a decode and a JavaScript loop per value.
 * Returns the sum and how many values it covered (0 without SIMD support); the caller adds the rest.
 */
export function sumSquaresBF16Simd(bytes: Uint8Array): { sum: number; count: number } {
  if (!kernel) return { sum: 0, count: 0 };
  const total = bytes.byteLength >> 1;
  const n = total - (total % 8);
  const staged = new Uint8Array(kernel.output.buffer, kernel.output.byteOffset, CHUNK * 2);
  let sum = 0;
  for (let i = 0; i < n; i += CHUNK) {
    const count = Math.min(CHUNK, n - i);
    staged.set(bytes.subarray(2 * i, 2 * (i + count)));
    sum += kernel.sumSquares(CHUNK * 4, count);
  }
  return { sum, count: n };
}
