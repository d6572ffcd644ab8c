/**
 * WebAssembly SIMD kernels for the innermost loop of applyToBase: out = round(base + ΔW) for bf16
 * and f32 weights, four values per instruction. Plain JavaScript needs ~5 ns per bf16 value for
 * decode + add + round-to-nearest-even + encode (V8 does not vectorise typed-array loops), which
 * made the codec, not the matrix product, the slowest part of merging a LoRA into FLUX; these run
 * at memory speed.
 *
 * The module is assembled from its opcodes (wasm-asm.ts) and is checked bit for bit against the
 * reference codec in test/ops-simd.test.ts. Where WebAssembly SIMD is unavailable,
 * `addRoundKernels()` returns undefined and callers use JavaScript.
 *
 * Each kernel instance owns a private memory: callers copy a chunk in, run, and copy it out.
 */

import { roundToBf16Lanes } from './bf16-simd.ts';
import { I32, V128, assemble, compileOnce, ensureMemory, op, v128 } from './wasm-asm.ts';

/** Loop over n4 groups of four values; `body` may use locals 0..3 (src, delta, dst, n4) and 4, 5 (v128). */
function loop4(body: number[], steps: [local: number, bytes: number][]): number[] {
  return [
    ...op.block, ...op.loop,
    ...op.get(3), ...op.i32eqz, ...op.brIf(1),
    ...body,
    ...steps.flatMap(([local, bytes]) => [...op.get(local), ...op.i32(bytes), ...op.i32add, ...op.set(local)]),
    ...op.get(3), ...op.i32(1), ...op.i32sub, ...op.set(3),
    ...op.br(0),
    ...op.end, ...op.end,
  ];
}

/** bf16_add(src, delta, dst, n4): dst = bf16(f32(src) + delta), round to nearest even, NaN kept quiet. */
const BF16_ADD = loop4([
  ...op.get(2), // address of the store, below the value on the stack
  ...op.get(0), ...v128.load16x4u(), ...op.i32(16), ...v128.i32shl,
  ...op.get(1), ...v128.load(), ...v128.f32add, ...op.set(4),
  ...roundToBf16Lanes(4, 5), ...op.tee(5), ...op.get(5), ...v128.narrowU,
  ...v128.store64lane0,
], [[0, 8], [1, 16], [2, 8]]);

/** f32_add(src, delta, dst, n4): dst = src + delta. */
const F32_ADD = loop4([
  ...op.get(2), ...op.get(0), ...v128.load(), ...op.get(1), ...v128.load(), ...v128.f32add, ...v128.store(),
], [[0, 16], [1, 16], [2, 16]]);

const PARAMS = [I32, I32, I32, I32];
const compile = compileOnce(() => assemble([
  { name: 'bf16_add', params: PARAMS, results: [], locals: [V128, V128], code: BF16_ADD },
  { name: 'f32_add', params: PARAMS, results: [], locals: [V128, V128], code: F32_ADD },
]));

// ---- the kernels as JavaScript functions ------------------------------------------------------

export interface AddRoundKernels {
  /** dst = bf16(bf16(src) + delta), all of the same length n. */
  bf16Add(src: Uint16Array, delta: Float32Array, dst: Uint16Array): void;
  /** dst = src + delta. */
  f32Add(src: Float32Array, delta: Float32Array, dst: Float32Array): void;
}

/**
 * dst[i] = bf16(bf16(src[i]) + delta[i]) for i ≥ `from` in JavaScript (same rounding as the kernel:
 * nearest even, NaN kept quiet): the kernel's last n mod 4 values, or all of them without SIMD.
 */
export function bf16AddScalar(src: Uint16Array, delta: Float32Array, dst: Uint16Array, from = 0): void {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = from; i < src.length; i++) {
    u[0] = src[i]! << 16;
    f[0] = f[0]! + delta[i]!;
    const b = u[0]!;
    dst[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
}

/** dst[i] = src[i] + delta[i] for i ≥ `from` in JavaScript. */
export function f32AddScalar(src: Float32Array, delta: Float32Array, dst: Float32Array, from = 0): void {
  for (let i = from; i < src.length; i++) dst[i] = src[i]! + delta[i]!;
}

/** A kernel instance (one per thread), or undefined where WebAssembly SIMD is not available. */
export function addRoundKernels(): AddRoundKernels | undefined {
  const module = compile();
  if (!module) return undefined;
  const instance = new WebAssembly.Instance(module);
  const exports = instance.exports as { mem: WebAssembly.Memory; bf16_add: (...a: number[]) => void; f32_add: (...a: number[]) => void };
  const memory = exports.mem;
  /** Lays out three regions of the given byte sizes (16-byte aligned), growing the memory as needed. */
  const layout = (a: number, b: number, c: number) => {
    const align = (x: number) => Math.ceil(x / 16) * 16;
    const offsets = [0, align(a), align(a) + align(b)] as const;
    ensureMemory(memory, offsets[2] + align(c));
    return offsets;
  };
  const run = (kernel: (...a: number[]) => void, srcBytes: Uint8Array, delta: Float32Array, dstBytes: Uint8Array, n: number, dstPer: number) => {
    const [s, d, o] = layout(srcBytes.byteLength, delta.byteLength, dstBytes.byteLength);
    const heap = new Uint8Array(memory.buffer);
    heap.set(srcBytes, s);
    heap.set(new Uint8Array(delta.buffer, delta.byteOffset, delta.byteLength), d);
    kernel(s, d, o, n >>> 2);
    dstBytes.set(heap.subarray(o, o + (n & ~3) * dstPer));
  };
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return {
    bf16Add(src, delta, dst) {
      const n = src.length;
      run(exports.bf16_add, bytes(src), delta, bytes(dst), n, 2);
      bf16AddScalar(src, delta, dst, n & ~3);
    },
    f32Add(src, delta, dst) {
      const n = src.length;
      run(exports.f32_add, bytes(src), delta, bytes(dst), n, 4);
      f32AddScalar(src, delta, dst, n & ~3);
    },
  };
}
