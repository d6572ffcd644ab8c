/**
 * One unit of applyToBase's compute: a block of whole rows of one weight, base + ΔW encoded straight
 * into the output bytes, where ΔW for each row comes from the stacked LoRA factors of the group
 * covering it. On the CPU backends the fused low-rank kernel computes and rounds each value in one
 * pass; other backends compute ΔW with a matrix product and add it. Stored encodings of their own
 * (GGUF block types, scaled fp8 in and out) are decoded and encoded here too, chunk by chunk, so
 * they run on the pool like everything else (chunk-codec.ts). Runs in a pool worker or inline; all
 * arrays may live in SharedArrayBuffers so a worker reads and writes them without copies.
 */
import { storedBytes } from '../checkpoint/encoding.ts';
import { activeBackend } from '../tensor/backend.ts';
import { dtypeBytes, isCodecDType, type DType } from '../tensor/dtype.ts';
import { countNonFiniteStored } from '../tensor/finite.ts';
import { addAndEncode } from '../tensor/fused-codec.ts';
import { matmul } from '../tensor/linalg.ts';
import { lowRankAddKernel, type LowRankAdd } from '../tensor/low-rank-add-simd.ts';
import { rowAmax } from '../checkpoint/scaled-fp8.ts';
import { storedNorm2 } from './change-norms.ts';
import { decodeRows, encodeRows, scratchOf, sumOfSquares } from './chunk-codec.ts';

/** Stacked LoRA factors of one row range: ΔW[rowStart .. rowStart+rows) = up [rows, rank] @ down [rank, cols]. */
export interface DeltaGroup {
  rowStart: number;
  rows: number;
  rank: number;
  up: Float32Array;
  down: Float32Array;
}

export interface ChunkTask {
  /** Stored base values of rows [rowStart, rowStart + rows). */
  input: Uint8Array;
  /** A safetensors dtype or a ggml block type. */
  inDtype: string;
  /** Where the stored output values of the same rows go. */
  output: Uint8Array;
  outDtype: string;
  cols: number;
  rowStart: number;
  rows: number;
  /** Over disjoint row ranges. */
  groups: readonly DeltaGroup[];
  stochasticSeed?: number;
  /** Scaled fp8 input: the base is q · scale (one value, or one per row of this chunk). */
  inScale?: Float32Array;
  /** Scaled fp8 output: values are divided by this (one value, or one per row of this chunk) before rounding. */
  outScale?: Float32Array;
  /** Also return Σ base² (the decoded base, before ΔW). */
  norms?: boolean;
  /** Also return the largest finite |value| of each output row (before encoding). */
  amax?: boolean;
}

/** Backends that compute on this thread's CPU, where the fused kernel beats a general matrix product. */
const CPU_BACKENDS = new Set(['wasm', 'cpu', 'none']);

let kernel: LowRankAdd | undefined;

/** What one chunk's output holds that a user should hear about. */
export interface ChunkCounts {
  /** Values beyond the output dtype's largest finite value (fp8: written saturated; F16: Inf). */
  outOfRange: number;
  /** Output values that are NaN or ±Inf (an F16 overflow, NaN from inf − inf, a NaN let into a LoRA). */
  nonFinite: number;
  /** Σ base² of the chunk, when asked. */
  base2?: number;
  /** Largest finite |value| per output row, when asked. */
  amax?: Float32Array;
}

/** Tasks the plain byte paths serve: both sides safetensors dtypes, no scales, no row maxima. */
function isPlainTask(task: ChunkTask): boolean {
  return isCodecDType(task.inDtype) && isCodecDType(task.outDtype) && !task.inScale && !task.outScale && !task.amax;
}

/** Computes one chunk; returns what did not fit the output dtype and what came out non-finite. */
export async function runChunk(task: ChunkTask): Promise<ChunkCounts> {
  const cpu = CPU_BACKENDS.has(activeBackend());
  if (!isPlainTask(task)) return cpu ? viaF32(task, fusedDelta) : productViaF32(task);
  const { outOfRange, base2 } = cpu ? fusedChunk(task) : await productChunk(task);
  return { outOfRange, nonFinite: countNonFiniteStored(task.output, task.outDtype as DType), base2 };
}

/** Rows [lo, hi) of the task (absolute row numbers) as stored input and output bytes. */
function rowBytes(task: ChunkTask, lo: number, hi: number): { input: Uint8Array; output: Uint8Array } {
  const inRow = storedBytes(task.inDtype, task.cols);
  const outRow = storedBytes(task.outDtype, task.cols);
  const a = lo - task.rowStart;
  const b = hi - task.rowStart;
  return { input: task.input.subarray(a * inRow, b * inRow), output: task.output.subarray(a * outRow, b * outRow) };
}

const aligned = (bytes: Uint8Array, dtype: DType) => bytes.byteOffset % dtypeBytes(dtype) === 0;

/** The task's groups clipped to its rows, in row order: [lo, hi) and the group's up rows for them. */
function segments(task: ChunkTask): Segment[] {
  const end = task.rowStart + task.rows;
  const out: Segment[] = [];
  for (const g of [...task.groups].sort((a, b) => a.rowStart - b.rowStart)) {
    const lo = Math.max(task.rowStart, g.rowStart);
    const hi = Math.min(end, g.rowStart + g.rows);
    if (lo < hi) out.push({ lo, hi, g, up: g.up.subarray((lo - g.rowStart) * g.rank, (hi - g.rowStart) * g.rank) });
  }
  return out;
}

/** What a plain chunk computes: the values beyond the output dtype's range, and Σ base² when asked. */
interface PlainCounts {
  outOfRange: number;
  base2?: number;
}

function fusedChunk(task: ChunkTask): PlainCounts {
  const { rowStart, cols, stochasticSeed } = task;
  const inDtype = task.inDtype as DType;
  const outDtype = task.outDtype as DType;
  kernel ??= lowRankAddKernel();
  let outOfRange = 0;
  let base2 = 0;
  let row = rowStart;
  const plain = (hi: number) => {
    if (hi <= row) return;
    const { input, output } = rowBytes(task, row, hi);
    if (task.norms) base2 += storedNorm2(input, inDtype);
    outOfRange += addAndEncode(input, inDtype, undefined, outDtype, output, { stochasticSeed, firstIndex: row * cols });
  };
  for (const { lo, hi, g, up } of segments(task)) {
    plain(lo);
    const { input, output } = rowBytes(task, lo, hi);
    if (inDtype === outDtype && (inDtype === 'BF16' || inDtype === 'F32') && aligned(input, inDtype) && aligned(output, outDtype)) {
      if (task.norms) base2 += storedNorm2(input, inDtype);
      kernel(inDtype, input, up, g.down, g.rank, cols, output);
    } else {
      // Other dtype pairs: the sum in f32 (this thread's scratch), then one rounding to the output dtype.
      const values = decodeRows(input, inDtype, hi - lo, scratchOf((hi - lo) * cols));
      if (task.norms) base2 += sumOfSquares(values);
      const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      kernel('F32', bytes, up, g.down, g.rank, cols, bytes);
      outOfRange += encodeRows(values, hi - lo, { dtype: outDtype, stochasticSeed, firstIndex: lo * cols }, output).outOfRange;
    }
    row = hi;
  }
  plain(rowStart + task.rows);
  return { outOfRange, base2: task.norms ? base2 : undefined };
}

interface Segment {
  lo: number;
  hi: number;
  g: DeltaGroup;
  /** The group's up rows for [lo, hi). */
  up: Float32Array;
}

/** values (rows [lo, hi) of the task, decoded) += ΔW of the segment's group. */
type AddDelta = (values: Float32Array, s: Segment) => void;

/** ΔW with the fused kernel, in place on the decoded rows. */
function fusedDelta(values: Float32Array, { lo, hi, g, up }: Segment): void {
  kernel ??= lowRankAddKernel();
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  kernel('F32', bytes, up, g.down, g.rank, values.length / (hi - lo), bytes);
}

/**
 * A chunk in an encoding of its own: decode the rows to f32 (scaled, dequantized), add each
 * group's ΔW, take what was asked (Σ base², row maxima), encode once.
 */
function viaF32(task: ChunkTask, addDelta: AddDelta): ChunkCounts {
  const { rowStart, rows, cols } = task;
  const values = decodeRows(task.input, task.inDtype, rows, scratchOf(rows * cols), task.inScale);
  const base2 = task.norms ? sumOfSquares(values) : undefined;
  for (const s of segments(task)) addDelta(values.subarray((s.lo - rowStart) * cols, (s.hi - rowStart) * cols), s);
  const amax = task.amax ? rowAmax(values, rows) : undefined;
  const counts = encodeRows(values, rows, { dtype: task.outDtype, scale: task.outScale, stochasticSeed: task.stochasticSeed, firstIndex: rowStart * cols }, task.output);
  return { ...counts, base2, amax };
}

/** ΔW of each segment by a matrix product on the backend (GPU, native), keyed by its first row. */
async function segmentProducts(task: ChunkTask): Promise<Map<number, Float32Array>> {
  const products = new Map<number, Float32Array>();
  for (const { lo, hi, g, up } of segments(task)) products.set(lo, await matmul(up, [hi - lo, g.rank], g.down, [g.rank, task.cols]));
  return products;
}

async function productViaF32(task: ChunkTask): Promise<ChunkCounts> {
  const products = await segmentProducts(task);
  return viaF32(task, (values, s) => {
    const delta = products.get(s.lo)!;
    for (let i = 0; i < values.length; i++) values[i]! += delta[i]!;
  });
}

async function productChunk(task: ChunkTask): Promise<PlainCounts> {
  const { rowStart, rows, cols } = task;
  let delta: Float32Array | undefined;
  for (const [lo, part] of await segmentProducts(task)) {
    if (!delta && lo === rowStart && part.length === rows * cols) {
      delta = part;
      continue;
    }
    delta ??= new Float32Array(rows * cols);
    delta.set(part, (lo - rowStart) * cols);
  }
  const base2 = task.norms ? storedNorm2(task.input, task.inDtype as DType) : undefined;
  return { outOfRange: addAndEncode(task.input, task.inDtype as DType, delta, task.outDtype as DType, task.output, { stochasticSeed: task.stochasticSeed, firstIndex: rowStart * cols }), base2 };
}
