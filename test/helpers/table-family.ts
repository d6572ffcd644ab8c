/**
 * Shared by the table-family tests (Wan, Qwen-Image, …): LoRA factors per module from a name table
 * the test writes itself, the float64 ΔW they mean, a file of them in any key layout, and the
 * worst relative error of a read set against that reference. Families whose original weights are
 * fused (FLUX.2, SD3, HunyuanVideo, Z-Image) write their table as `TableRow`s and use the `row…`
 * functions below, which place diffusers parts at their rows and swap (shift, scale) halves.
 */
import { expect, it } from 'vitest';
import type { AdapterSet } from '../../src/adapter/model.ts';
import { readLora } from '../../src/formats/read.ts';
import { writeSafetensors, type TensorEntry } from '../../src/safetensors/writer.ts';
import { keyedRandom } from '../../src/samples/lora-fixtures.ts';
import { referenceDeltas } from '../../src/samples/reference-delta.ts';

export const RANK = 4;

/** One module's factors: `name` is the original (canonical) path, `diffusers` its diffusers path. */
export interface Module {
  name: string;
  diffusers: string;
  out: number;
  in: number;
  down: Float32Array;
  up: Float32Array;
}

/** A module of the test's name table: original name, diffusers name, [out, in]. */
export type ModuleSpec = [original: string, diffusers: string, out: number, inp: number];

/** Random factors (keyed by name and seed) for every block module in `blocks` blocks under `blockPrefix(i)`, then the outer modules. */
export function factorModules(spec: { blockModules: readonly ModuleSpec[]; outerModules: readonly ModuleSpec[]; blocks: number; blockPrefix: (i: number) => string }, seed: number, blocks = spec.blocks): Module[] {
  const out: Module[] = [];
  const add = ([o, d, rows, cols]: ModuleSpec, prefix = '') => {
    const rd = keyedRandom(`${prefix}${o}.down`, seed);
    const ru = keyedRandom(`${prefix}${o}.up`, seed);
    out.push({
      name: prefix + o,
      diffusers: prefix + d,
      out: rows,
      in: cols,
      down: Float32Array.from({ length: RANK * cols }, () => rd() - 0.5),
      up: Float32Array.from({ length: rows * RANK }, () => ru() - 0.5),
    });
  };
  for (let i = 0; i < blocks; i++) for (const m of spec.blockModules) add(m, spec.blockPrefix(i));
  for (const m of spec.outerModules) add(m);
  return out;
}

/** ΔW = scale · up @ down in float64, by canonical target. */
export function expectedDeltas(mods: readonly Module[], scale: number): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const m of mods) {
    const d = new Float64Array(m.out * m.in);
    for (let r = 0; r < m.out; r++)
      for (let k = 0; k < RANK; k++) {
        const u = m.up[r * RANK + k]! * scale;
        for (let c = 0; c < m.in; c++) d[r * m.in + c]! += u * m.down[k * m.in + c]!;
      }
    out.set(`${m.name}.weight`, d);
  }
  return out;
}

/** The tensors of one LoRA module a trainer layout names. */
export type Role = 'down' | 'up' | 'alpha';

/** What a file of LoRA factors needs of a module: [out, in] and the factors. */
type Factors = { out: number; in: number; down: Float32Array; up: Float32Array };

/** A trainer layout: its key for a module's down, up and alpha, and whether it stores alphas. */
export type Layout = { name: string; alpha: boolean; key: (m: Module, role: Role) => string };

export const underscored = (s: string): string => s.replaceAll('.', '_');

export const f32 = (name: string, shape: number[], data: Float32Array): TensorEntry => ({ name, dtype: 'F32', shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });

/** The factors of `mods` under the keys `key` gives, an alpha per module when `alpha` is a number. */
async function writeFactors<M extends Factors>(path: string, mods: readonly M[], key: (m: M, role: Role) => string, alpha: number | undefined, metadata?: Record<string, string>): Promise<void> {
  const entries: TensorEntry[] = [];
  for (const m of mods) {
    entries.push(f32(key(m, 'down'), [RANK, m.in], m.down), f32(key(m, 'up'), [m.out, RANK], m.up));
    if (alpha !== undefined) entries.push(f32(key(m, 'alpha'), [], Float32Array.of(alpha)));
  }
  await writeSafetensors(path, entries, { metadata });
}

export function writeLayout(path: string, layout: Layout, mods: readonly Module[], opts: { alpha?: number; metadata?: Record<string, string> } = {}): Promise<void> {
  return writeFactors(path, mods, layout.key, layout.alpha ? (opts.alpha ?? RANK) : undefined, opts.metadata);
}

/** Worst normwise relative error of a set's ΔW against weight · `want`, after checking it patches exactly `want`'s targets. */
export async function deltaError(set: Pick<AdapterSet, 'patches'>, want: Map<string, Float64Array>, weight = 1): Promise<number> {
  const got = await referenceDeltas(set);
  expect(new Set([...got.keys()])).toEqual(new Set([...want.keys()].map((k) => `transformer:${k}`)));
  let worst = 0;
  for (const [target, d] of want) {
    const g = got.get(`transformer:${target}`)!.data;
    expect(g.length, target).toBe(d.length);
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < d.length; i++) {
      diff = Math.max(diff, Math.abs(g[i]! - weight * d[i]!));
      norm = Math.max(norm, Math.abs(weight * d[i]!));
    }
    worst = Math.max(worst, diff / norm);
  }
  return worst;
}

/**
 * A LoRA writer for test/helpers/table-family-ops.ts: one trainer layout of a family, able to write
 * the family's modules with factors drawn from any seed and say what ΔW that file means.
 */
export interface LoraWriter {
  /** The layout's name (titles and messages). */
  readonly name: string;
  /**
   * Writes a LoRA of the family's modules with factors from `seed` (only the first `count` when given)
   * in this layout, with the family's usual metadata unless `metadata` is given, and returns the
   * float64 ΔW it means by canonical target (`<original name>.weight`).
   */
  write(path: string, seed: number, opts?: { count?: number; metadata?: Record<string, string> }): Promise<Map<string, Float64Array>>;
}

/** A `LoraWriter` for a 1:1 table family: `modules(seed)` in `layout`, `metadata` on every file unless the call gives its own. */
export function layoutWriter(layout: Layout, modules: (seed: number) => readonly Module[], metadata?: Record<string, string>): LoraWriter {
  return {
    name: layout.name,
    async write(path, seed, opts = {}) {
      const mods = modules(seed).slice(0, opts.count);
      await writeLayout(path, layout, mods, { metadata: opts.metadata ?? metadata });
      return expectedDeltas(mods, 1);
    },
  };
}

/**
 * A row of a name table whose original weights may be fused: the original (canonical) name, the
 * diffusers name (an array = the diffusers parts of the fused original weight in order, h rows each,
 * the last taking the rest), [out, in], and whether the (shift, scale) halves swap between the two.
 */
export type TableRow = readonly [original: string, diffusers: string | readonly string[], out: number, inp: number, swap?: boolean];

/** Which names of a `TableRow` a file uses. */
export type Naming = 'original' | 'diffusers';

/** One LoRA module of a file: its name, the original weight it lands on (`full` rows), from which row, whether its halves swap. */
export interface RowUnit {
  name: string;
  target: string;
  full: number;
  row: number;
  out: number;
  in: number;
  swap: boolean;
  down: Float32Array;
  up: Float32Array;
}

/**
 * Random factors for every module of `table` in `naming`. They are keyed by the module's name, or
 * with `keyBy: 'target'` by its original target and row, so that every naming of one model carries
 * the same ΔW.
 */
export function rowUnits(table: readonly TableRow[], naming: Naming, seed: number, h: number, keyBy: 'name' | 'target' = 'name'): RowUnit[] {
  const out: RowUnit[] = [];
  const add = (name: string, target: string, full: number, row: number, o: number, i: number, swap: boolean) => {
    const key = keyBy === 'name' ? name : `${target}@${row}`;
    const rd = keyedRandom(`${key}.down`, seed);
    const ru = keyedRandom(`${key}.up`, seed);
    out.push({ name, target, full, row, out: o, in: i, swap, down: Float32Array.from({ length: RANK * i }, () => rd() - 0.5), up: Float32Array.from({ length: o * RANK }, () => ru() - 0.5) });
  };
  for (const [orig, dif, o, i, swap] of table) {
    if (naming === 'original') add(orig, orig, o, 0, o, i, false);
    else if (typeof dif === 'string') add(dif, orig, o, 0, o, i, swap ?? false);
    else dif.forEach((p, k) => add(p, orig, o, k * h, k < dif.length - 1 ? h : o - k * h, i, false));
  }
  return out;
}

/** ΔW = scale · up @ down in float64 by original target: parts at their rows, a swapped module's halves exchanged. */
export function rowDeltas(units: readonly RowUnit[], scale = 1): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const u of units) {
    const key = `${u.target}.weight`;
    const d = out.get(key) ?? new Float64Array(u.full * u.in);
    out.set(key, d);
    const half = u.out / 2;
    for (let r = 0; r < u.out; r++) {
      const dest = u.row + (u.swap ? (r < half ? r + half : r - half) : r);
      for (let k = 0; k < RANK; k++) {
        const v = u.up[r * RANK + k]! * scale;
        for (let c = 0; c < u.in; c++) d[dest * u.in + c]! += v * u.down[k * u.in + c]!;
      }
    }
  }
  return out;
}

/** A trainer layout of a `TableRow` family: which naming it uses, its key for a module's down, up and alpha, whether it stores alphas. */
export type RowLayout<N extends string = Naming> = { name: string; naming: N; alpha: boolean; key: (name: string, role: Role) => string };

/** A file of `units` in `layout` (alpha RANK unless given, where the layout stores alphas). */
/** Seed-1 units of both namings with their expected ΔW, looked up by a layout's naming. */
export function bothNamings(table: readonly TableRow[], h: number): { original: RowUnit[]; diffusers: RowUnit[]; want: Record<Naming, Map<string, Float64Array>>; unitsOf: (l: { naming: Naming }) => RowUnit[]; wantOf: (l: { naming: Naming }) => Map<string, Float64Array> } {
  const units = { original: rowUnits(table, 'original', 1, h), diffusers: rowUnits(table, 'diffusers', 1, h) };
  const want = { original: rowDeltas(units.original), diffusers: rowDeltas(units.diffusers) };
  return { ...units, want, unitsOf: (l) => units[l.naming], wantOf: (l) => want[l.naming] };
}

export function writeRowLayout(path: string, layout: RowLayout<string>, units: readonly RowUnit[], opts: { alpha?: number; metadata?: Record<string, string> } = {}): Promise<void> {
  return writeFactors(path, units, (u, r) => layout.key(u.name, r), layout.alpha ? (opts.alpha ?? RANK) : undefined, opts.metadata);
}

/** A `LoraWriter` of a `TableRow` family: `units(seed, count)` in `layout`, `metadata` on every file unless the call gives its own. */
export function rowWriter(layout: RowLayout<string>, units: (seed: number, count: number | undefined) => readonly RowUnit[], metadata?: Record<string, string>): LoraWriter {
  return {
    name: layout.name,
    async write(path, seed, opts = {}) {
      const mods = units(seed, opts.count);
      await writeRowLayout(path, layout, mods, { metadata: opts.metadata ?? metadata });
      return rowDeltas(mods);
    },
  };
}

/** What `itReadsEveryLayout` needs of a family. */
export interface LayoutReads<L extends { name: string }> {
  /** The architecture every file must read as. */
  id: string;
  layouts: readonly L[];
  /** Each layout is written once per entry: `{}` is titled "no metadata", `undefined` writes none and is not titled. */
  metadata: readonly (Record<string, string> | undefined)[];
  /** A path in the test's temp dir. */
  file: (name: string) => string;
  /** Writes the family's modules in `layout` and returns how many modules that is and the ΔW they mean. */
  write: (path: string, layout: L, metadata: Record<string, string> | undefined) => Promise<{ count: number; want: Map<string, Float64Array> }>;
}

/** One test per layout and metadata: family `id`, no unknown key, one patch per module, ΔW equal to the float64 reference. */
export function itReadsEveryLayout<L extends { name: string }>(spec: LayoutReads<L>): void {
  for (const layout of spec.layouts) {
    for (const metadata of spec.metadata) {
      const none = metadata !== undefined && Object.keys(metadata).length === 0;
      it(`${layout.name}${none ? ', no metadata' : ''}: family ${spec.id}, no unknown key, ΔW equal to the float64 reference`, async () => {
        const path = spec.file(`${underscored(layout.name).replace(/\W+/g, '-')}-${Object.keys(metadata ?? {}).length}.safetensors`);
        const { count, want } = await spec.write(path, layout, metadata);
        const set = await readLora(path);
        try {
          expect(set.architecture).toBe(spec.id);
          expect(set.unknownKeys).toEqual([]);
          expect(set.patches).toHaveLength(count);
          expect(await deltaError(set, want)).toBeLessThan(1e-6);
        } finally {
          await set.close();
        }
      });
    }
  }
}

/** `itReadsEveryLayout` for a `TableRow` family: each layout's seed-1 units written with `metadata` and with none. */
export function itReadsEveryRowLayout<L extends RowLayout<string>>(spec: { id: string; layouts: readonly L[]; metadata: Record<string, string>; file: (name: string) => string; units: (layout: L) => readonly RowUnit[]; want: (layout: L) => Map<string, Float64Array> }): void {
  itReadsEveryLayout({
    ...spec,
    metadata: [spec.metadata, {}],
    write: async (path, layout, metadata) => {
      await writeRowLayout(path, layout, spec.units(layout), { metadata });
      return { count: spec.units(layout).length, want: spec.want(layout) };
    },
  });
}
