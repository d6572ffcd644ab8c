/**
 * Fused → split, exactly (as sd-scripts `convert_to_ai_toolkit_cat` and diffusers' kohya FLUX
 * converter do it): a LoRA on a fused weight (qkv, linear1) becomes one LoRA per part. Row-slicing ΔW is row-slicing the up, so each part takes its rows of
 * the up. The down is divided between parts only when the up is verified block-diagonal (every
 * column non-zero in at most one part, checked on exact zeros); otherwise each part gets the whole
 * down, which is what keeps a genuinely fused LoRA exact.
 */
import type { LazyTensor } from '../tensor/lazy.ts';
import type { DoraMagnitude, LoraAdapter } from '../adapter/model.ts';
import { LoraFormatError } from '../adapter/errors.ts';
import { gatherCols, gatherRows, placeBlocks, reshaped, rowSlice, sharedReads } from '../adapter/tensor-ops.ts';

export interface SplitPart {
  /** Destination module name. */
  name: string;
  /** Rows of the target this part covers. */
  start: number;
  len: number;
}

export interface SplitPiece {
  part: SplitPart;
  down: LazyTensor;
  up: LazyTensor;
  scale: number;
  dora?: DoraMagnitude;
}

export interface SplitResult {
  pieces: SplitPiece[];
  /** The down was divided between parts (block-diagonal up) rather than copied to each. */
  chunked: boolean;
}

/**
 * Which part each column of the up belongs to, when the up is block-diagonal over `ranges`
 * (row ranges relative to the up); undefined when some column is non-zero in two parts.
 * All-zero columns go to the part their position falls in, so a zero up still splits evenly.
 */
export function blockDiagonalColumns(up: Float32Array, rows: number, rank: number, ranges: readonly [number, number][]): number[] | undefined {
  const owner = new Int32Array(rank).fill(-1);
  for (let p = 0; p < ranges.length; p++) {
    const [r0, r1] = ranges[p]!;
    for (let r = r0; r < r1; r++) {
      const row = r * rank;
      for (let c = 0; c < rank; c++) {
        if (up[row + c] === 0) continue;
        if (owner[c] === -1) owner[c] = p;
        else if (owner[c] !== p) return undefined;
      }
    }
  }
  // rows outside every range must be zero too, or they would be lost
  const covered = new Uint8Array(rows);
  for (const [r0, r1] of ranges) covered.fill(1, r0, r1);
  for (let r = 0; r < rows; r++) {
    if (covered[r]) continue;
    for (let c = 0; c < rank; c++) if (up[r * rank + c] !== 0) return undefined;
  }
  return Array.from(owner, (o, c) => (o === -1 ? Math.floor((c * ranges.length) / rank) : o));
}

/**
 * Splits one LoRA on target rows `[rowStart, rowStart + up rows)` into the parts it overlaps.
 * A part the LoRA covers only in part gets zero up rows for the rest.
 */
export async function splitLora(
  adapter: LoraAdapter,
  rowStart: number,
  parts: readonly SplitPart[],
  opts: { module: string; dora?: DoraMagnitude },
): Promise<SplitResult> {
  const [rows, rank] = adapter.up.shape as [number, number];
  const overlapping = parts
    .map((part) => ({ part, o0: Math.max(part.start, rowStart), o1: Math.min(part.start + part.len, rowStart + rows) }))
    .filter((x) => x.o1 > x.o0);
  const covered = overlapping.reduce((s, x) => s + (x.o1 - x.o0), 0);
  if (covered !== rows) {
    throw new LoraFormatError('INEXPRESSIBLE', `${opts.module}: rows ${rowStart}..${rowStart + rows} are not all inside the parts ${parts.map((p) => p.name).join(', ')}`, opts.module);
  }
  if (opts.dora?.axis === 'in' && overlapping.length > 1) {
    throw new LoraFormatError('INEXPRESSIBLE', `${opts.module}: a per-input-column DoRA magnitude of a fused weight is not the magnitude of any of its parts`, opts.module);
  }
  // the up's rows for each part, placed in the part's own row range
  const upFor = (x: (typeof overlapping)[number], up: LazyTensor) => {
    const slice = rowSlice(up, x.o0 - rowStart, x.o1 - x.o0);
    if (x.o0 === x.part.start && x.o1 === x.part.start + x.part.len) return slice;
    return placeBlocks([x.part.len, up.shape[1]!], [{ t: slice, row: x.o0 - x.part.start, col: 0 }], up.dtype, `${opts.module} → ${x.part.name}`);
  };
  const doraFor = (x: (typeof overlapping)[number]): DoraMagnitude | undefined => {
    const d = opts.dora;
    if (!d) return undefined;
    if (d.axis === 'in') return d;
    if (x.o0 !== x.part.start || x.o1 !== x.part.start + x.part.len) {
      throw new LoraFormatError('INEXPRESSIBLE', `${opts.module}: DoRA covers only part of ${x.part.name}, whose other rows' magnitude is unknown`, opts.module);
    }
    return { magnitude: rowSlice(reshaped(d.magnitude, [rows]), x.o0 - rowStart, x.o1 - x.o0), axis: 'out' };
  };

  // every part reads the same up (and, when copied, the same down): read each once
  const up = sharedReads(adapter.up, overlapping.length);
  if (overlapping.length > 1) {
    const ranges = overlapping.map((x) => [x.o0 - rowStart, x.o1 - rowStart] as [number, number]);
    const owner = blockDiagonalColumns(await adapter.up.f32(), rows, rank, ranges);
    if (owner) {
      const pieces: SplitPiece[] = [];
      overlapping.forEach((x, p) => {
        const cols = owner.flatMap((o, c) => (o === p ? [c] : []));
        if (cols.length === 0) {
          // no ΔW on this part; dropping it is exact unless DoRA would still renormalise its rows
          if (opts.dora) throw new LoraFormatError('INEXPRESSIBLE', `${opts.module}: ${x.part.name} has DoRA but no LoRA columns of its own`, opts.module);
          return;
        }
        pieces.push({
          part: x.part,
          down: gatherRows(adapter.down, cols),
          up: upFor(x, gatherCols(up, cols)),
          scale: adapter.scale,
          dora: doraFor(x),
        });
      });
      return { pieces, chunked: true };
    }
  }
  const down = sharedReads(adapter.down, overlapping.length);
  return {
    pieces: overlapping.map((x) => ({ part: x.part, down, up: upFor(x, up), scale: adapter.scale, dora: doraFor(x) })),
    chunked: false,
  };
}
