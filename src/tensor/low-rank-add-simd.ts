/**
 * The inner loop of merging a LoRA into a base weight, fused: stored rows of W plus the low-rank
 * product up·down, rounded once to W's dtype, without ever holding ΔW. Each output value costs
 * `rank` multiply-adds; the product (not the codec or the disk) is the bulk of applyToBase's work,
 * and a general matmul followed by an add pass wrote and re-read a 4-byte ΔW per value and copied
 * it across the WebAssembly boundary twice.
 *
 * The kernel computes two rows × sixteen columns at a time in eight SIMD accumulators, reading
 * `down` packed as [column block][k][16] so the inner loop streams it contiguously, and uses fused
 * multiply-add where relaxed SIMD is available. Columns past the last multiple of 16, and
 * everything where WebAssembly SIMD is missing, go through the scalar loop, which accumulates in
 * f32 the same way (fused or not, results agree to f32 rounding of the sum before the final
 * rounding to the stored dtype).
 */
import { roundToBf16Lanes } from './bf16-simd.ts';
import { I32, V128, assemble, compileOnce, ensureMemory, op, relaxedSimd, v128 } from './wasm-asm.ts';

/** Stored dtypes the kernel reads and writes directly; other dtypes are decoded to F32 first. */
export type LowRankAddDType = 'BF16' | 'F32';

const BYTES: Record<LowRankAddDType, number> = { BF16: 2, F32: 4 };

// Locals: params 0 base, 1 up, 2 down, 3 out, 4 blocks, 5 rank, 6 stride (bytes per row);
// i32 7 k, 8 u0, 9 u1, 10 d, 11 rank·4; v128 12..19 accumulators, 20 down vector, 21 22 splats, 23 x, 24 scratch.
const [BASE, UP, DOWN, OUT, BLOCKS, RANK, STRIDE, K, U0, U1, D, RANK4] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const ACC = 12;
const [DV, S0, S1, X, SCRATCH] = [20, 21, 22, 23, 24];
const LOCALS = [I32, I32, I32, I32, I32, ...Array<number>(13).fill(V128)];

const inc = (local: number, by: number) => [...op.get(local), ...op.i32(by), ...op.i32add, ...op.set(local)];
/** Address of row `r` (0 or 1) of the region starting at param `at`. */
const rowAddress = (at: number, r: number) => (r === 0 ? op.get(at) : [...op.get(at), ...op.get(STRIDE), ...op.i32add]);

/** acc += s·dv, fused when relaxed SIMD is on. */
const multiplyAdd = (acc: number, s: number, fused: boolean) =>
  fused
    ? [...op.get(s), ...op.get(DV), ...op.get(acc), ...v128.f32madd, ...op.set(acc)]
    : [...op.get(acc), ...op.get(s), ...op.get(DV), ...v128.f32mul, ...v128.f32add, ...op.set(acc)];

/** Stores round(base + acc) for the 16 columns of row `r` at the current block. */
function epilogue(dtype: LowRankAddDType, r: number): number[] {
  const acc = (c: number) => ACC + 4 * r + c;
  if (dtype === 'F32') {
    return [0, 1, 2, 3].flatMap((c) => [
      ...rowAddress(OUT, r),
      ...rowAddress(BASE, r), ...v128.load(16 * c), ...op.get(acc(c)), ...v128.f32add,
      ...v128.store(16 * c),
    ]);
  }
  const rounded = (c: number) => [
    ...rowAddress(BASE, r), ...v128.load16x4u(8 * c), ...op.i32(16), ...v128.i32shl,
    ...op.get(acc(c)), ...v128.f32add, ...op.set(X),
    ...roundToBf16Lanes(X, SCRATCH),
  ];
  return [0, 1].flatMap((half) => [...rowAddress(OUT, r), ...rounded(2 * half), ...rounded(2 * half + 1), ...v128.narrowU, ...v128.store(16 * half)]);
}

/**
 * For k = 0..rank−1: accumulators += splat(up[r][k]) · (row k of the packed down block). (Unrolling
 * this by four with static offsets made TurboFan spill and ran at a third of the speed.)
 */
function kLoop(rows: 1 | 2, fused: boolean): number[] {
  return [
    ...op.get(RANK), ...op.set(K),
    ...op.block, ...op.loop,
    ...op.get(K), ...op.i32eqz, ...op.brIf(1),
    ...op.get(U0), ...v128.load32splat(), ...op.set(S0),
    ...(rows === 2 ? [...op.get(U1), ...v128.load32splat(), ...op.set(S1)] : []),
    ...[0, 1, 2, 3].flatMap((c) => [
      ...op.get(D), ...v128.load(16 * c), ...op.set(DV),
      ...multiplyAdd(ACC + c, S0, fused),
      ...(rows === 2 ? multiplyAdd(ACC + 4 + c, S1, fused) : []),
    ]),
    ...inc(D, 64), ...inc(U0, 4), ...inc(U1, 4), ...inc(K, -1),
    ...op.br(0),
    ...op.end, ...op.end,
  ];
}

/**
 * rows_R(base, up, down, out, blocks, rank, stride): for R rows (1 or 2) and `blocks` blocks of 16
 * columns, out = round(base + up·down); up rows are `rank` f32 apart, base/out rows `stride` bytes.
 */
function kernelCode(dtype: LowRankAddDType, rows: 1 | 2, fused: boolean): number[] {
  const accs = rows * 4;
  return [
    ...op.get(RANK), ...op.i32(2), ...op.i32shl, ...op.set(RANK4),
    ...op.get(DOWN), ...op.set(D),
    ...op.block, ...op.loop,
    ...op.get(BLOCKS), ...op.i32eqz, ...op.brIf(1),
    ...Array.from({ length: accs }, (_, i) => [...v128.const32(0), ...op.set(ACC + i)]).flat(),
    ...op.get(UP), ...op.set(U0),
    ...op.get(UP), ...op.get(RANK4), ...op.i32add, ...op.set(U1),
    ...kLoop(rows, fused),
    ...epilogue(dtype, 0),
    ...(rows === 2 ? epilogue(dtype, 1) : []),
    ...inc(BASE, 16 * BYTES[dtype]), ...inc(OUT, 16 * BYTES[dtype]), ...inc(BLOCKS, -1),
    ...op.br(0),
    ...op.end, ...op.end,
  ];
}

const PARAMS = [I32, I32, I32, I32, I32, I32, I32];
const moduleFor = (fused: boolean) =>
  compileOnce(() =>
    assemble(
      (['BF16', 'F32'] as const).flatMap((dtype) =>
        ([1, 2] as const).map((rows) => ({ name: `${dtype}_${rows}`, params: PARAMS, results: [], locals: LOCALS, code: kernelCode(dtype, rows, fused) })),
      ),
    ),
  );
const fusedModule = moduleFor(true);
const plainModule = moduleFor(false);

// ---- scalar loop: tails and hosts without SIMD ------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 code → f32 value. */
function bf16Value(code: number): number {
  u32[0] = code << 16;
  return f32[0]!;
}

/** f32 value → bf16 code, nearest even, NaN kept quiet (as the kernel and the codec do). */
function bf16Code(value: number): number {
  f32[0] = value;
  const b = u32[0]!;
  return (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

/** The same sum as the kernel for columns from..cols-1 of `rows` rows, in plain JavaScript. */
function scalarRows(dtype: LowRankAddDType, base: Uint8Array, up: Float32Array, down: Float32Array, rows: number, rank: number, cols: number, out: Uint8Array, from: number): void {
  const read = dtype === 'BF16' ? new Uint16Array(base.buffer, base.byteOffset, rows * cols) : new Float32Array(base.buffer, base.byteOffset, rows * cols);
  const write = dtype === 'BF16' ? new Uint16Array(out.buffer, out.byteOffset, rows * cols) : new Float32Array(out.buffer, out.byteOffset, rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = from; j < cols; j++) {
      let acc = 0;
      for (let k = 0; k < rank; k++) acc = Math.fround(acc + Math.fround(up[r * rank + k]! * down[k * cols + j]!));
      const i = r * cols + j;
      write[i] = dtype === 'BF16' ? bf16Code(Math.fround(bf16Value(read[i]!) + acc)) : Math.fround(read[i]! + acc);
    }
  }
}

// ---- the kernel as a JavaScript function ------------------------------------------------------

/** Bytes of base rows staged in the kernel's memory per pass (stays in cache with the packed down). */
const BATCH_BYTES = 256 << 10;

export interface LowRankAdd {
  /**
   * out = round(base + up·down) for `rows` stored rows of `cols` values of `dtype` (little-endian
   * bytes; `out` may be `base`); up is [rows, rank], down [rank, cols], both f32.
   */
  (dtype: LowRankAddDType, base: Uint8Array, up: Float32Array, down: Float32Array, rank: number, cols: number, out: Uint8Array): void;
  /** Whether the SIMD kernel runs (false: the scalar loop does everything), and with fused multiply-add. */
  readonly simd: boolean;
  readonly fused: boolean;
}

type Exported = Record<`${LowRankAddDType}_${1 | 2}`, (...args: number[]) => void> & { mem: WebAssembly.Memory };

export interface LowRankAddOptions {
  /** false: the scalar loop only (default: SIMD where WebAssembly has it). */
  simd?: boolean;
  /** false: separate multiply and add even where relaxed SIMD has a fused one. */
  fused?: boolean;
}

/** A kernel instance with its own memory (one per thread). */
export function lowRankAddKernel(opts: LowRankAddOptions = {}): LowRankAdd {
  const fusedModuleHere = opts.fused !== false && relaxedSimd() ? fusedModule() : null;
  const module = opts.simd === false ? null : (fusedModuleHere ?? plainModule());
  const exports = module ? (new WebAssembly.Instance(module).exports as unknown as Exported) : undefined;

  const run = (dtype: LowRankAddDType, base: Uint8Array, up: Float32Array, down: Float32Array, rank: number, cols: number, out: Uint8Array) => {
    const per = BYTES[dtype];
    const rows = base.byteLength / (cols * per);
    if (!Number.isInteger(rows) || out.byteLength !== base.byteLength || up.length !== rows * rank || down.length !== rank * cols) {
      throw new RangeError(`lowRankAdd: ${base.byteLength} bytes of ${dtype} base, up ${up.length}, down ${down.length} do not fit rank ${rank} × ${cols} columns`);
    }
    const blocks = exports ? Math.floor(cols / 16) : 0;
    if (blocks === 0 || rank === 0) {
      scalarRows(dtype, base, up, down, rows, rank, cols, out, 0);
      return;
    }
    const batch = Math.max(2, Math.floor(BATCH_BYTES / (cols * per)) & ~1);
    const downBytes = rank * blocks * 64;
    const upAt = downBytes;
    const rowsAt = upAt + batch * rank * 4;
    ensureMemory(exports!.mem, rowsAt + batch * cols * per);
    const memory = exports!.mem.buffer;
    const packed = new Float32Array(memory, 0, rank * blocks * 16);
    for (let b = 0; b < blocks; b++) {
      for (let k = 0; k < rank; k++) packed.set(down.subarray(k * cols + 16 * b, k * cols + 16 * b + 16), (b * rank + k) * 16);
    }
    const heap = new Uint8Array(memory);
    const stride = cols * per;
    for (let r0 = 0; r0 < rows; r0 += batch) {
      const n = Math.min(batch, rows - r0);
      const staged = heap.subarray(rowsAt, rowsAt + n * stride);
      const upRows = up.subarray(r0 * rank, (r0 + n) * rank);
      staged.set(base.subarray(r0 * stride, (r0 + n) * stride));
      new Float32Array(memory, upAt, n * rank).set(upRows);
      for (let r = 0; r + 1 < n; r += 2) exports![`${dtype}_2`](rowsAt + r * stride, upAt + r * rank * 4, 0, rowsAt + r * stride, blocks, rank, stride);
      if (n % 2) exports![`${dtype}_1`](rowsAt + (n - 1) * stride, upAt + (n - 1) * rank * 4, 0, rowsAt + (n - 1) * stride, blocks, rank, stride);
      // The kernel rewrote the staged rows in place; the last cols mod 16 columns still hold base values.
      if (blocks * 16 < cols) scalarRows(dtype, staged, upRows, down, n, rank, cols, staged, blocks * 16);
      out.set(staged, r0 * stride);
    }
  };
  return Object.assign(run, { simd: exports !== undefined, fused: exports !== undefined && module === fusedModuleHere });
}
