/**
 * LoRA factors as plain row-major matrices, and stacking several LoRAs on one weight into a single
 * pair (up [rows, ΣR] @ down [ΣR, cols]) whose product is the weighted sum of their deltas:
 * downs are concatenated, each up is multiplied by its factor and placed at its row slice in its
 * own columns (block-diagonal when the slices differ). This one identity serves concat merges,
 * SVD merges, applying several LoRAs at once, and fusing row-slice patches.
 */
import type { Patch } from '../adapter/model.ts';
import { plainLora } from '../adapter/tucker.ts';
import { adapterShapeError, loraDims } from '../adapter/kinds.ts';

export interface FactorPart {
  up: Float32Array;
  down: Float32Array;
  rows: number;
  rank: number;
  cols: number;
  /** First row of the target this part covers. */
  rowStart: number;
  /** Multiplies the part's delta (e.g. weight · scale). */
  factor: number;
}

/** Reads one LoRA patch's factors (rowStart relative to `originRow`). */
export async function readFactorPart(patch: Patch, factor: number, originRow = 0): Promise<FactorPart> {
  if (patch.adapter.kind !== 'lora') throw adapterShapeError(patch.source.module, `is a ${patch.adapter.kind} adapter, not a LoRA`);
  const adapter = plainLora(patch.adapter, patch.source.module);
  const { rows, rank, cols } = loraDims(adapter, patch.source.module);
  const [up, down] = await Promise.all([adapter.up.f32(), adapter.down.f32()]);
  return { up, down, rows, rank, cols, rowStart: (patch.rows?.[0] ?? 0) - originRow, factor: factor * adapter.scale };
}

export interface StackedFactors {
  up: Float32Array;
  down: Float32Array;
  rows: number;
  rank: number;
  cols: number;
}

/** The ups of `parts` side by side in one [rows, ΣR] matrix: each multiplied by its factor, at its row slice, in its own columns. */
function placeUps(parts: readonly Omit<FactorPart, 'down' | 'cols'>[], rows: number): Float32Array {
  const rank = parts.reduce((s, p) => s + p.rank, 0);
  const up = new Float32Array(rows * rank);
  let c0 = 0;
  for (const p of parts) {
    if (p.rowStart < 0 || p.rowStart + p.rows > rows) throw new Error(`placeUps: rows ${p.rowStart}..${p.rowStart + p.rows} outside 0..${rows}`);
    for (let i = 0; i < p.rows; i++) {
      const src = i * p.rank;
      const dst = (p.rowStart + i) * rank + c0;
      for (let j = 0; j < p.rank; j++) up[dst + j] = p.factor * p.up[src + j]!;
    }
    c0 += p.rank;
  }
  return up;
}

/** The downs of `parts` stacked into one [ΣR, cols] matrix. */
function stackDowns(parts: readonly Pick<FactorPart, 'down' | 'rank' | 'cols'>[], cols: number): Float32Array {
  const down = new Float32Array(parts.reduce((s, p) => s + p.rank, 0) * cols);
  let r0 = 0;
  for (const p of parts) {
    if (p.cols !== cols) throw new Error(`stackDowns: a part has ${p.cols} input columns, expected ${cols}`);
    down.set(p.down, r0 * cols);
    r0 += p.rank;
  }
  return down;
}

/** One up/down pair over `rows` rows with up @ down = Σ factorᵢ · placeᵢ(upᵢ @ downᵢ). */
export function stackFactors(parts: readonly FactorPart[], rows: number, cols: number): StackedFactors {
  return { up: placeUps(parts, rows), down: stackDowns(parts, cols), rows, rank: parts.reduce((s, p) => s + p.rank, 0), cols };
}

/** Splits a truncated SVD (u [m,k], s, vt [k,n]) into balanced factors up = u·√s, down = √s·vt. */
export function splitSvd(u: Float32Array, s: ArrayLike<number>, vt: Float32Array, m: number, k: number, n: number, keep = k): { up: Float32Array; down: Float32Array } {
  const up = new Float32Array(m * keep);
  const down = new Float32Array(keep * n);
  for (let j = 0; j < keep; j++) {
    const r = Math.sqrt(Math.max(0, s[j]!));
    for (let i = 0; i < m; i++) up[i * keep + j] = u[i * k + j]! * r;
    const row = j * n;
    for (let c = 0; c < n; c++) down[row + c] = vt[row + c]! * r;
  }
  return { up, down };
}
