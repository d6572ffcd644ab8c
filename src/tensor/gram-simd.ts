/**
 * Gram matrices G[p][q] = a_p · a_q of a few long float64 rows, with a WebAssembly SIMD dot product
 * (four f64x2 accumulators). This is the bulk of the work of an SVD merge or resize (low-rank-svd.ts):
 * m·R²/2 multiply-adds per factor, ~45 M for a FLUX linear1 module at stacked rank 64.
 */
import { F64, I32, V128, assemble, compileOnce, ensureMemory, op, v128 } from './wasm-asm.ts';

/** dot(a, b, n8): Σ a[i]·b[i] over 8·n8 float64 values. Locals 3..6 are the accumulators. */
const DOT = [
  ...op.block, ...op.loop,
  ...op.get(2), ...op.i32eqz, ...op.brIf(1),
  ...[0, 1, 2, 3].flatMap((k) => [...op.get(3 + k), ...op.get(0), ...v128.load(16 * k), ...op.get(1), ...v128.load(16 * k), ...v128.f64mul, ...v128.f64add, ...op.set(3 + k)]),
  ...op.get(0), ...op.i32(64), ...op.i32add, ...op.set(0),
  ...op.get(1), ...op.i32(64), ...op.i32add, ...op.set(1),
  ...op.get(2), ...op.i32(1), ...op.i32sub, ...op.set(2),
  ...op.br(0),
  ...op.end, ...op.end,
  ...op.get(3), ...op.get(4), ...v128.f64add, ...op.get(5), ...op.get(6), ...v128.f64add, ...v128.f64add, ...op.tee(3),
  ...v128.f64lane(0), ...op.get(3), ...v128.f64lane(1), ...op.f64add,
];

const compile = compileOnce(() => assemble([{ name: 'dot', params: [I32, I32, I32], results: [F64], locals: [V128, V128, V128, V128], code: DOT }]));

let instance: { mem: WebAssembly.Memory; dot: (a: number, b: number, n8: number) => number } | null | undefined;

function kernel() {
  if (instance === undefined) {
    const module = compile();
    instance = module ? (new WebAssembly.Instance(module).exports as unknown as NonNullable<typeof instance>) : null;
  }
  return instance;
}

function jsGram(a: Float64Array, count: number, stride: number, len: number): Float64Array {
  const g = new Float64Array(count * count);
  for (let p = 0; p < count; p++)
    for (let q = p; q < count; q++) {
      let s = 0;
      for (let j = 0; j < len; j++) s += a[p * stride + j]! * a[q * stride + j]!;
      g[p * count + q] = g[q * count + p] = s;
    }
  return g;
}

/**
 * The Gram matrix of `count` rows of length `len`; `fill` writes row p at view[p·stride ..] (the
 * rest of each row is zero padding). Rows are written straight into the kernel's memory.
 */
export function rowGram(count: number, len: number, fill: (view: Float64Array, stride: number) => void): Float64Array {
  const stride = Math.ceil(len / 8) * 8;
  const k = kernel();
  if (!k) {
    const a = new Float64Array(count * stride);
    fill(a, stride);
    return jsGram(a, count, stride, len);
  }
  ensureMemory(k.mem, count * stride * 8);
  const view = new Float64Array(k.mem.buffer, 0, count * stride);
  view.fill(0);
  fill(view, stride);
  const g = new Float64Array(count * count);
  for (let p = 0; p < count; p++)
    for (let q = p; q < count; q++) g[p * count + q] = g[q * count + p] = k.dot(p * stride * 8, q * stride * 8, stride / 8);
  return g;
}
