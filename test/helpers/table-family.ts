/**
 * Shared by the table-family tests (Wan, Qwen-Image, …): LoRA factors per module from a name table
 * the test writes itself, the float64 ΔW they mean, a file of them in any key layout, and the
 * worst relative error of a read set against that reference.
 */
import { expect } from 'vitest';
import type { AdapterSet } from '../../src/formats/model.ts';
import { writeSafetensors, type TensorEntry } from '../../src/safetensors/writer.ts';
import { keyedRandom } from '../../src/testing/lora-fixtures.ts';
import { referenceDeltas } from '../../src/testing/reference-delta.ts';

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

/** A trainer layout: its key for a module's down, up and alpha, and whether it stores alphas. */
export type Layout = { name: string; alpha: boolean; key: (m: Module, role: 'down' | 'up' | 'alpha') => string };

export const underscored = (s: string): string => s.replaceAll('.', '_');

export const f32 = (name: string, shape: number[], data: Float32Array): TensorEntry => ({ name, dtype: 'F32', shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });

export async function writeLayout(path: string, layout: Layout, mods: readonly Module[], opts: { alpha?: number; metadata?: Record<string, string> } = {}): Promise<void> {
  const entries: TensorEntry[] = [];
  for (const m of mods) {
    entries.push(f32(layout.key(m, 'down'), [RANK, m.in], m.down), f32(layout.key(m, 'up'), [m.out, RANK], m.up));
    if (layout.alpha) entries.push(f32(layout.key(m, 'alpha'), [], Float32Array.of(opts.alpha ?? RANK)));
  }
  await writeSafetensors(path, entries, { metadata: opts.metadata });
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
