/**
 * One unit of applyToBase's compute: a block of whole rows of one weight, base + ΔW encoded straight
 * into the output bytes, where ΔW for each row comes from the stacked LoRA factors of the group
 * covering it. On the CPU backends the fused low-rank kernel computes and rounds each value in one
 * pass; other backends compute ΔW with a matrix product and add it. Runs in a pool worker or inline;
 * all arrays may live in SharedArrayBuffers so a worker reads and writes them without copies.
 */
import { activeBackend } from '../tensor/backend.ts';
import { decodeToF32, dtypeBytes, type DType } from '../tensor/dtype.ts';
import { countNonFiniteStored } from '../tensor/finite.ts';
import { matmul } from '../tensor/linalg.ts';
import { lowRankAddKernel, type LowRankAdd } from '../tensor/low-rank-add-simd.ts';
import { addAndEncode } from './fused-codec.ts';

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
  inDtype: DType;
  /** Where the stored output values of the same rows go. */
  output: Uint8Array;
  outDtype: DType;
  cols: number;
  rowStart: number;
  rows: number;
  /** Over disjoint row ranges. */
  groups: readonly DeltaGroup[];
  stochasticSeed?: number;
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
}

/** Computes one chunk; returns what did not fit the output dtype and what came out non-finite. */
export async function runChunk(task: ChunkTask): Promise<ChunkCounts> {
  const outOfRange = CPU_BACKENDS.has(activeBackend()) ? fusedChunk(task) : await productChunk(task);
  return { outOfRange, nonFinite: countNonFiniteStored(task.output, task.outDtype) };
}

/** Rows [lo, hi) of the task (absolute row numbers) as stored input and output bytes. */
function rowBytes(task: ChunkTask, lo: number, hi: number): { input: Uint8Array; output: Uint8Array } {
  const inRow = task.cols * dtypeBytes(task.inDtype);
  const outRow = task.cols * dtypeBytes(task.outDtype);
  const a = lo - task.rowStart;
  const b = hi - task.rowStart;
  return { input: task.input.subarray(a * inRow, b * inRow), output: task.output.subarray(a * outRow, b * outRow) };
}

const aligned = (bytes: Uint8Array, dtype: DType) => bytes.byteOffset % dtypeBytes(dtype) === 0;

function fusedChunk(task: ChunkTask): number {
  const { rowStart, cols, inDtype, outDtype } = task;
  const end = rowStart + task.rows;
  kernel ??= lowRankAddKernel();
  let outOfRange = 0;
  let row = rowStart;
  const plain = (hi: number) => {
    if (hi <= row) return;
    const { input, output } = rowBytes(task, row, hi);
    outOfRange += addAndEncode(input, inDtype, undefined, outDtype, output, { stochasticSeed: task.stochasticSeed, firstIndex: row * cols });
  };
  for (const g of [...task.groups].sort((a, b) => a.rowStart - b.rowStart)) {
    const lo = Math.max(row, g.rowStart);
    const hi = Math.min(end, g.rowStart + g.rows);
    if (lo >= hi) continue;
    plain(lo);
    const { input, output } = rowBytes(task, lo, hi);
    const up = g.up.subarray((lo - g.rowStart) * g.rank, (hi - g.rowStart) * g.rank);
    if (inDtype === outDtype && (inDtype === 'BF16' || inDtype === 'F32') && aligned(input, inDtype) && aligned(output, outDtype)) {
      kernel(inDtype, input, up, g.down, g.rank, cols, output);
    } else {
      // Other dtype pairs: the sum in f32, then one rounding to the output dtype.
      const values = decodeToF32(input, inDtype);
      const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      kernel('F32', bytes, up, g.down, g.rank, cols, bytes);
      outOfRange += addAndEncode(bytes, 'F32', undefined, outDtype, output, { stochasticSeed: task.stochasticSeed, firstIndex: lo * cols });
    }
    row = hi;
  }
  plain(end);
  return outOfRange;
}

async function productChunk(task: ChunkTask): Promise<number> {
  const { rowStart, rows, cols } = task;
  const end = rowStart + rows;
  let delta: Float32Array | undefined;
  for (const g of task.groups) {
    const lo = Math.max(rowStart, g.rowStart);
    const hi = Math.min(end, g.rowStart + g.rows);
    if (lo >= hi) continue;
    const part = await matmul(g.up.subarray((lo - g.rowStart) * g.rank, (hi - g.rowStart) * g.rank), [hi - lo, g.rank], g.down, [g.rank, cols]);
    if (!delta && lo === rowStart && hi === end) {
      delta = part;
      continue;
    }
    delta ??= new Float32Array(rows * cols);
    delta.set(part, (lo - rowStart) * cols);
  }
  return addAndEncode(task.input, task.inDtype, delta, task.outDtype, task.output, { stochasticSeed: task.stochasticSeed, firstIndex: rowStart * cols });
}
