/**
 * One unit of applyToBase's compute: a block of whole rows of one weight. ΔW for those rows comes
 * from the stacked LoRA factors of each row slice (one matmul per slice that meets the block), then
 * base + ΔW is encoded straight into the output bytes. Runs in a pool worker or inline; all arrays
 * may live in SharedArrayBuffers so a worker reads and writes them without copies.
 */
import type { DType } from '../tensor/dtype.ts';
import { matmul } from '../tensor/linalg.ts';
import { addAndEncode } from './fused-codec.ts';

/** Stacked LoRA factors of one row slice: ΔW[rowStart .. rowStart+rows) = up [rows, rank] @ down [rank, cols]. */
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
  groups: readonly DeltaGroup[];
  stochasticSeed?: number;
}

/** Computes one chunk; returns how many values did not fit the output dtype. */
export async function runChunk(task: ChunkTask): Promise<number> {
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
    const at = (lo - rowStart) * cols;
    for (let i = 0; i < part.length; i++) delta[at + i]! += part[i]!;
  }
  return addAndEncode(task.input, task.inDtype, delta, task.outDtype, task.output, { stochasticSeed: task.stochasticSeed, firstIndex: rowStart * cols });
}
