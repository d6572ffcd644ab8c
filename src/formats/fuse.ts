/**
 * Split → fused, exactly (as sd-scripts `convert_to_sd_scripts_cat` does it): LoRA pieces on row
 * ranges of one weight become one LoRA over the whole weight, with the downs concatenated and each
 * up placed at its rows in its own columns (block-diagonal). Pieces that share a bit-identical down (a fused LoRA that was
 * split by copying its down) share one column block again, so fused → split → fused gives back the
 * original rank. Per-piece scales are kept as one alpha when they agree; differing ones are folded
 * into the ups.
 */
import type { DType } from '../tensor/dtype.ts';
import type { LazyTensor } from '../tensor/lazy.ts';
import type { DoraMagnitude, LoraAdapter, Patch } from '../adapter/model.ts';
import { LoraFormatError } from '../adapter/errors.ts';
import { adapterRows } from '../adapter/kinds.ts';
import { tableFor } from './families.ts';
import { evalWidth, type ModuleTable } from './table/module-table.ts';
import { concatRows, placeBlocks, reshaped, sameTensor, scaledTensor } from '../adapter/tensor-ops.ts';

export interface LoraPiece {
  down: LazyTensor;
  up: LazyTensor;
  scale: number;
  /** First row of the destination weight this piece's up covers. */
  row: number;
  dora?: DoraMagnitude;
  /** Source module, for messages. */
  module: string;
}

export interface FusedLora {
  down: LazyTensor;
  up: LazyTensor;
  scale: number;
  rank: number;
  dora?: DoraMagnitude;
  /** Some up was multiplied by a factor that is not a power of two (values were rounded). */
  rounded: boolean;
}

const isPow2 = (x: number) => x !== 0 && Number.isFinite(x) && 2 ** Math.round(Math.log2(Math.abs(x))) === Math.abs(x);

function commonDType(ts: readonly LazyTensor[]): DType {
  const d = ts[0]!.dtype;
  return ts.every((t) => t.dtype === d) ? d : 'F32';
}

interface Group {
  down: LazyTensor;
  scale: number;
  members: LoraPiece[];
}

const overlaps = (a: LoraPiece, b: LoraPiece) => a.row < b.row + b.up.shape[0]! && b.row < a.row + a.up.shape[0]!;

async function groupByDown(pieces: readonly LoraPiece[]): Promise<Group[]> {
  const groups: Group[] = [];
  for (const p of pieces) {
    let home: Group | undefined;
    for (const g of groups) {
      if (g.scale !== p.scale || g.members.some((m) => overlaps(m, p))) continue;
      if (await sameTensor(g.down, p.down)) {
        home = g;
        break;
      }
    }
    if (home) home.members.push(p);
    else groups.push({ down: p.down, scale: p.scale, members: [p] });
  }
  return groups;
}

/** The scale most pieces share (so the fewest ups need arithmetic). */
function modalScale(groups: readonly Group[]): number {
  const counts = new Map<number, number>();
  for (const g of groups) counts.set(g.scale, (counts.get(g.scale) ?? 0) + g.members.length);
  return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
}

function fuseDora(pieces: readonly LoraPiece[], rows: number, name: string): DoraMagnitude | undefined {
  const withDora = pieces.filter((p) => p.dora);
  if (withDora.length === 0) return undefined;
  const sorted = [...pieces].sort((a, b) => a.row - b.row);
  let next = 0;
  for (const p of sorted) {
    if (!p.dora || p.dora.axis !== 'out' || p.row !== next) {
      throw new LoraFormatError(
        'INEXPRESSIBLE',
        `${name}: DoRA on part of a fused weight (${p.module}) cannot be fused: ${p.dora?.axis === 'in' ? 'a per-input-column magnitude of one part is not that of the whole weight' : 'every row of the fused weight needs a magnitude and only some parts have one'}`,
        p.module,
      );
    }
    next += p.up.shape[0]!;
  }
  if (next !== rows) throw new LoraFormatError('INEXPRESSIBLE', `${name}: DoRA parts cover ${next} of ${rows} rows, so the fused magnitude is unknown`, name);
  const mags = sorted.map((p) => reshaped(p.dora!.magnitude, [p.up.shape[0]!]));
  return { magnitude: concatRows(mags, commonDType(mags), `${name} magnitude`), axis: 'out' };
}

/** One LoRA over `rows` rows whose ΔW equals the sum of the pieces' ΔW (each at its rows). */
export async function fuseLoraPieces(pieces: readonly LoraPiece[], rows: number, opts: { name: string; dtype?: DType }): Promise<FusedLora> {
  if (pieces.length === 0) throw new Error(`${opts.name}: nothing to fuse`);
  const cols = pieces[0]!.down.shape[1]!;
  for (const p of pieces) {
    if (p.down.shape[1] !== cols) throw new LoraFormatError('BAD_SHAPES', `${opts.name}: ${p.module} has input width ${p.down.shape[1]}, others ${cols}`, p.module);
    if (p.row < 0 || p.row + p.up.shape[0]! > rows) throw new LoraFormatError('BAD_SHAPES', `${opts.name}: ${p.module} covers rows ${p.row}..${p.row + p.up.shape[0]!} of a ${rows}-row weight`, p.module);
  }
  const only = pieces[0]!;
  if (pieces.length === 1 && only.row === 0 && only.up.shape[0] === rows) {
    const dtype = opts.dtype;
    return {
      down: dtype ? scaledTensor(only.down, 1, dtype) : only.down,
      up: dtype ? scaledTensor(only.up, 1, dtype) : only.up,
      scale: only.scale,
      rank: only.down.shape[0]!,
      dora: only.dora,
      rounded: false,
    };
  }
  const dora = fuseDora(pieces, rows, opts.name);
  const groups = await groupByDown(pieces);
  const scale = modalScale(groups);
  const dtype = opts.dtype ?? commonDType(pieces.flatMap((p) => [p.down, p.up]));
  let rounded = false;
  const blocks: { t: LazyTensor; row: number; col: number }[] = [];
  let col = 0;
  for (const g of groups) {
    const ratio = g.scale / scale;
    if (ratio !== 1 && !isPow2(ratio)) rounded = true;
    for (const m of g.members) blocks.push({ t: scaledTensor(m.up, ratio, dtype), row: m.row, col });
    col += g.down.shape[0]!;
  }
  return {
    down: concatRows(groups.map((g) => g.down), dtype, `${opts.name} down`),
    up: placeBlocks([rows, col], blocks, dtype, `${opts.name} up`),
    scale,
    rank: col,
    dora,
    rounded,
  };
}

/**
 * Height of the weight a group of patches targets: a whole-weight patch's, else the module
 * table's (the family's, or the first whose table knows the target) in the widths `context` shows.
 */
export function fullRows(patches: readonly Patch[], context: readonly Patch[], table?: ModuleTable): number {
  const whole = patches.find((p) => !p.rows);
  if (whole) return adapterRows(whole.adapter);
  const first = patches[0]!;
  const found = table ? { table, component: first.component } : tableFor(first.target);
  const t = found?.table.target(first.target);
  const n = t && found ? evalWidth(t.module.shape[0]!, found.table.inferDims(context, found.component).values) : undefined;
  if (n === undefined) {
    throw new LoraFormatError('INEXPRESSIBLE', `${patches[0]!.target}: cannot tell how many rows the fused weight has from this LoRA's shapes`, patches[0]!.source.module);
  }
  return Math.max(n, ...patches.map((p) => p.rows![0] + p.rows![1]));
}

/** The LoRA patches of one target as pieces (scale and rows from each patch). */
export function piecesOf(patches: readonly Patch[]): LoraPiece[] {
  return patches.map((p) => {
    const a = p.adapter as LoraAdapter;
    return { down: a.down, up: a.up, scale: a.scale, row: p.rows?.[0] ?? 0, dora: p.dora, module: p.source.module };
  });
}

/**
 * The LoRA patches of one target (row slices, or several LoRAs on the same weight) as one
 * whole-weight patch: concatenated downs, block-diagonal up, an alpha that keeps the common scale.
 * `rows` (the weight's full height) defaults to a whole-weight patch's, else to the table module's
 * height in the widths `context` (e.g. the whole set) shows; `table` is the set's family's
 * (`familyOf(set.architecture).table`; without it, the first table that knows the target: FLUX.1's
 * for the BFL names HunyuanVideo and FLUX.2 share).
 */
export async function fuseTargetPatches(patches: readonly Patch[], opts: { rows?: number; dtype?: DType; context?: readonly Patch[]; table?: ModuleTable } = {}): Promise<Patch> {
  const first = patches[0]!;
  if (!first) throw new Error('fuseTargetPatches: no patches');
  for (const p of patches) {
    if (p.adapter.kind !== 'lora') throw new LoraFormatError('INEXPRESSIBLE', `${p.source.module}: a ${p.adapter.kind} adapter cannot be fused with LoRA row slices`, p.source.module);
    if (p.target !== first.target || p.component !== first.component) throw new Error(`fuseTargetPatches: ${p.target} is not ${first.target}`);
  }
  const rows = opts.rows ?? fullRows(patches, opts.context ?? patches, opts.table);
  const fused = await fuseLoraPieces(piecesOf(patches), rows, { name: first.target, dtype: opts.dtype });
  const adapter: LoraAdapter = { kind: 'lora', down: fused.down, up: fused.up, scale: fused.scale, alpha: fused.scale * fused.rank };
  const patch: Patch = {
    component: first.component,
    target: first.target,
    adapter,
    source: { module: [...new Set(patches.map((p) => p.source.module))].join(' + '), keys: patches.flatMap((p) => p.source.keys) },
  };
  if (fused.dora) patch.dora = fused.dora;
  const reshape = patches.find((p) => p.reshape)?.reshape;
  if (reshape) patch.reshape = reshape;
  return patch;
}
