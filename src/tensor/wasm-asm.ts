/**
 * A minimal WebAssembly binary writer for loraflow's SIMD kernels (BF16 encoding, add-and-round,
 * Gram dot products): enough opcodes to write small loops, and a module with one exported memory
 * and exported functions. (No toolchain at build or install time; the kernels are a few dozen bytes
 * each and are tested bit for bit against JavaScript.)
 */

import { setFlagsFromString } from 'node:v8';

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

export const I32 = 0x7f;
export const F64 = 0x7c;
export const V128 = 0x7b;

/** Instructions (opcode bytes; SIMD ones behind the 0xfd prefix with a LEB128 index). */
export const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (d: number) => [0x0c, ...uleb(d)],
  brIf: (d: number) => [0x0d, ...uleb(d)],
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  tee: (i: number) => [0x22, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v)],
  i32eqz: [0x45],
  i32geU: [0x4f],
  i32add: [0x6a],
  i32sub: [0x6b],
  i32shl: [0x74],
  f64add: [0xa0],
  simd: (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm],
};

/** memarg: alignment hint 0 (any), byte offset. */
const mem = (offset = 0) => [...uleb(0), ...uleb(offset)];

export const v128 = {
  load: (offset = 0) => op.simd(0x00, ...mem(offset)),
  load16x4u: (offset = 0) => op.simd(0x04, ...mem(offset)),
  /** Loads one f32 (or i32) into all four lanes. */
  load32splat: (offset = 0) => op.simd(0x09, ...mem(offset)),
  store: (offset = 0) => op.simd(0x0b, ...mem(offset)),
  store64lane0: op.simd(0x5b, ...mem(), 0),
  /** v128.const with v in all four i32 lanes. */
  const32: (v: number) => op.simd(0x0c, ...new Uint8Array(Int32Array.of(v, v, v, v).buffer)),
  and: op.simd(0x4e),
  or: op.simd(0x50),
  bitselect: op.simd(0x52),
  /** Signed: one x86 instruction, where unsigned needs several (kernels compare non-negative values). */
  i32gtS: op.simd(0x3b),
  /** The low / high four u16 lanes zero-extended to i32. */
  i32extendLowU16: op.simd(0xa9),
  i32extendHighU16: op.simd(0xaa),
  i32shl: op.simd(0xab),
  i32shrU: op.simd(0xad),
  i32add: op.simd(0xae),
  f32add: op.simd(0xe4),
  f32mul: op.simd(0xe6),
  /** Relaxed SIMD a·b + c (fused where the CPU has FMA); `relaxedSimd()` says whether it validates here. */
  f32madd: op.simd(0x105),
  f64lane: (lane: number) => op.simd(0x21, lane),
  /** i8x16.shuffle of the two vectors on the stack (lanes 0–15 the first, 16–31 the second). */
  shuffle: (...lanes: number[]) => op.simd(0x0d, ...lanes),
  /** f32 lanes 0 and 1 to two f64. */
  f64promoteLow: op.simd(0x5f),
  f64add: op.simd(0xf0),
  f64mul: op.simd(0xf2),
  narrowU: op.simd(0x86),
};

export interface WasmFunction {
  name: string;
  params: number[];
  results: number[];
  /** Extra locals, by type, after the parameters. */
  locals: number[];
  code: number[];
}

const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const name = (s: string) => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))];

/** A module exporting memory `mem` (1 page to start; callers grow it) and the functions. */
export function assemble(funcs: readonly WasmFunction[]): Uint8Array<ArrayBuffer> {
  const types = funcs.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))]);
  const bodies = funcs.map((f) => {
    const b = [...vec(f.locals.map((t) => [1, t])), ...f.code, ...op.end];
    return [...uleb(b.length), ...b];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(3, vec(funcs.map((_, i) => uleb(i)))),
    ...section(5, vec([[0x00, 1]])),
    ...section(7, vec([[...name('mem'), 0x02, 0], ...funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)])])),
    ...section(10, vec(bodies)),
  ]);
}

/** The compiled module; null where WebAssembly (with SIMD) is unavailable. */
export function compile(bytes: Uint8Array<ArrayBuffer>): WebAssembly.Module | null {
  return typeof WebAssembly === 'object' && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
}

/** compile() on first use, for kernels instantiated once per thread. */
export function compileOnce(bytes: () => Uint8Array<ArrayBuffer>): () => WebAssembly.Module | null {
  let compiled: WebAssembly.Module | null | undefined;
  return () => (compiled === undefined ? (compiled = compile(bytes())) : compiled);
}

const PAGE = 65536;

/** Grows `memory` to at least `bytes`. */
export function ensureMemory(memory: WebAssembly.Memory, bytes: number): void {
  if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE));
}

const RELAXED_PROBE = assemble([{ name: 'f', params: [], results: [], locals: [V128], code: [...v128.const32(0), ...v128.const32(0), ...v128.const32(0), ...v128.f32madd, ...op.set(0)] }]);
let relaxed: boolean | undefined;

/**
 * Whether relaxed SIMD (fused multiply-add) is available. Node 20's V8 has it behind a flag, which
 * is turned on here the first time this is asked (V8 flags are process-wide, so worker threads
 * started later see it too); Node 22 and later have it on by default.
 */
export function relaxedSimd(): boolean {
  if (relaxed !== undefined) return relaxed;
  if (typeof WebAssembly !== 'object') return (relaxed = false);
  if (!WebAssembly.validate(RELAXED_PROBE)) {
    try {
      setFlagsFromString('--experimental-wasm-relaxed-simd');
    } catch {
      // not in this runtime: the kernels use separate multiply and add
    }
  }
  return (relaxed = WebAssembly.validate(RELAXED_PROBE));
}
