/**
 * The operation tests every table family (Wan, Qwen-Image, FLUX.2, …) runs, registered from one
 * spec by `describeTableFamilyOperations(spec)` as `describe('<label> LoRAs through every operation')`.
 * Layout, detection, expert and metadata-reading tests stay in the family's own test file; this
 * suite holds what is the same for every family, with the family's facts passed in:
 *
 * - `id`, `label`: the architecture id every read/merged/extracted set must carry ('qwen-image') and
 *   the family's name in titles ('Qwen-Image').
 * - LoRA sources are `LoraWriter`s (test/helpers/table-family.ts): a trainer layout that writes the
 *   family's modules with factors from a seed and returns the float64 ΔW the file means, by canonical
 *   target. A 1:1 family builds them with `layoutWriter(layout, modules, metadata)`; a family whose
 *   original weights are fused (FLUX.2's qkv) writes its own, returning ΔW on the fused targets, so
 *   the suite never needs to know how names map. Seeds: 1 for the first LoRA of a test, 2 for the
 *   second of a merge, 3 for the second of an apply.
 * - `convert`: the source layouts to convert from (each to every WRITE_FORMATS layout and back, ΔW
 *   equal), `names`: what the written key names must hold, per output format (and per source), and
 *   optionally `kohyaMetadata`: the metadata a kohya output of a metadata-less file carries.
 * - `merge`: the two layouts merged (0.7·A − 0.4·B, concat and SVD at `rank`, then written as kohya).
 * - `resize` / `blocks`: the layout of the file resized (to RANK) and block-weighted; the block
 *   scheme as the family's docs state it (`groups` of numbered blocks by original-name prefix, in
 *   vector order, and the `in` / `out` module names), the weight specs with their expected weight per
 *   block id and the number of modules dropped, the specs refused with their message, the keep lists
 *   for filters. Every target must fall in a block; vectors are checked by value in IN, groups…, OUT
 *   order.
 * - `base`: how the family's checkpoint is written (every LoRA-able linear with [out, in], whether
 *   they carry biases, the other tensors written as ones), and the key prefixes it comes with; the
 *   apply test runs once per prefix, the extract test uses the first.
 * - `apply`: the two layouts applied (A at 1, B at 0.5): W + ΔW_A + 0.5·ΔW_B, the rest byte for byte.
 * - `extract`: the ΔW (seed 1) and the regex of targets the tuned model changes, the format the
 *   extracted LoRA is written in, and key names it must contain.
 * - `refusal`: the layout (and module count) of a LoRA applied to a foreign base (FLUX.1 unless
 *   `base` says otherwise) and the message naming both; optionally a foreign LoRA (another family's)
 *   into this family's base, refused likewise. Nothing is written in either case.
 * - `tolerances`: normwise relative errors, by test; the defaults are those the three first families
 *   were written with (exact paths 1e-6, factor arithmetic 1e-5, randomized SVD 1e-4).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertLora } from '../../src/formats/convert.ts';
import { readLora } from '../../src/formats/read.ts';
import { WRITE_FORMATS, type WriteFormat } from '../../src/formats/write/names.ts';
import { writeLora } from '../../src/formats/write/index.ts';
import { applyToBase } from '../../src/lora/apply.ts';
import { applyBlockWeights } from '../../src/lora/blocks.ts';
import { extractLora } from '../../src/lora/extract.ts';
import { filterPatches } from '../../src/lora/filter.ts';
import { mergeLoras } from '../../src/lora/merge.ts';
import { resizeLora } from '../../src/lora/resize.ts';
import { SafetensorsFile } from '../../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../../src/safetensors/writer.ts';
import { writeFluxCheckpoint } from '../../src/samples/flux-checkpoint.ts';
import { keyedRandom } from '../../src/samples/lora-fixtures.ts';
import { basePlusDeltaErrors } from './base-plus-delta.ts';
import { RANK, deltaError, f32, type LoraWriter } from './table-family.ts';
import { useTempDir } from './temp-dir.ts';

/** What the key names of one converted file must hold. */
export interface NameCheck {
  /** The source it was converted from (default: the first of `convert.sources`). */
  from?: LoraWriter;
  to: WriteFormat;
  /** Names it must contain. */
  contains?: readonly string[];
  /** Some name matches. */
  some?: RegExp;
  /** Every name (of those matching `within`, at least one) matches. */
  all?: RegExp;
  within?: RegExp;
}

/** Numbered blocks: targets `<prefix><n>.…` are block `<id><n, two digits>`, `count` of them. */
export interface BlockGroup {
  prefix: string;
  id: string;
  count: number;
}

/** A block-weight spec and what it must do: the weight of each block id (a vector's comes from its position) and how many modules it drops. */
export interface BlockWeightCase {
  spec: string | readonly number[];
  weight?: (id: string) => number;
  dropped: number;
}

/** A base checkpoint of the family: `<prefix><name>.weight` random for every linear (plus a bias of 0.25s), the others all ones. */
export interface BaseSpec {
  linears: readonly (readonly [name: string, out: number, inp: number])[];
  biases: boolean;
  others: readonly (readonly [name: string, shape: readonly number[]])[];
  prefixes: readonly string[];
}

/** A checkpoint of another family, to refuse a LoRA on. */
export interface ForeignBase {
  write(path: string): Promise<unknown>;
}

export interface Tolerances {
  convert: number;
  merge: number;
  resize: number;
  blocks: number;
  apply: number;
  extract: number;
}

export interface TableFamilyOpsSpec {
  id: string;
  label: string;
  convert: {
    sources: readonly LoraWriter[];
    names: readonly NameCheck[];
    kohyaMetadata?: { source: LoraWriter; count: number; want: Record<string, string> };
  };
  merge: { a: LoraWriter; b: LoraWriter; rank: number };
  resize: { source: LoraWriter };
  blocks: {
    source: LoraWriter;
    groups: readonly BlockGroup[];
    in: readonly string[];
    out: readonly string[];
    weighted: readonly BlockWeightCase[];
    refused: readonly (readonly [spec: string | readonly number[], error: RegExp])[];
    filters: readonly (readonly string[])[];
  };
  base: BaseSpec;
  apply: { a: LoraWriter; b: LoraWriter };
  extract: { deltas: Map<string, Float64Array>; targets: RegExp; format: WriteFormat; names?: readonly string[] };
  refusal: {
    source: LoraWriter;
    count: number;
    error: RegExp;
    base?: ForeignBase;
    foreignLora?: { write(path: string): Promise<unknown>; id: string; error: RegExp };
  };
  tolerances?: Partial<Tolerances>;
}

export const DEFAULT_TOLERANCES: Tolerances = { convert: 1e-6, merge: 1e-5, resize: 1e-5, blocks: 1e-6, apply: 1e-6, extract: 1e-4 };

/** A shrunk FLUX.1 checkpoint, the default foreign base. */
export const FLUX1_BASE: ForeignBase = { write: (path) => writeFluxCheckpoint(path, { scale: 64, doubleBlocks: 1, singleBlocks: 1, dtype: 'F32' }) };

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** Block ids in the order a weight vector lists them: IN, each group's blocks, OUT. */
export function blockIds(groups: readonly BlockGroup[]): string[] {
  return ['IN', ...groups.flatMap((g) => Array.from({ length: g.count }, (_, i) => `${g.id}${pad2(i)}`)), 'OUT'];
}

/** The number of a numbered block id ('B07' → 7). */
export const blockIndex = (id: string): number => Number(id.replace(/^\D+/, ''));

/** The block id of a canonical target by the spec's scheme, or undefined when it falls in none. */
export function blockOfTarget(blocks: Pick<TableFamilyOpsSpec['blocks'], 'groups' | 'in' | 'out'>, target: string): string | undefined {
  const name = target.replace(/\.weight$/, '');
  if (blocks.in.includes(name)) return 'IN';
  if (blocks.out.includes(name)) return 'OUT';
  for (const g of blocks.groups) {
    const n = name.startsWith(g.prefix) ? /^(\d+)\./.exec(name.slice(g.prefix.length)) : null;
    if (n) return `${g.id}${pad2(Number(n[1]))}`;
  }
  return undefined;
}

/** Writes the family's base at `prefix`, each linear plus `tuned`'s ΔW where it has one. */
export async function writeTableBase(path: string, base: BaseSpec, prefix: string, tuned?: Map<string, Float64Array>): Promise<void> {
  const entries: TensorEntry[] = [];
  for (const [name, out, inp] of base.linears) {
    const r = keyedRandom(`base ${name}`, 9);
    const w = Float32Array.from({ length: out * inp }, () => r() - 0.5);
    const t = tuned?.get(`${name}.weight`);
    if (t) for (let i = 0; i < w.length; i++) w[i]! += t[i]!;
    entries.push(f32(`${prefix}${name}.weight`, [out, inp], w));
    if (base.biases) entries.push(f32(`${prefix}${name}.bias`, [out], new Float32Array(out).fill(0.25)));
  }
  for (const [name, shape] of base.others) entries.push(f32(`${prefix}${name}`, [...shape], new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(1)));
  await writeSafetensors(path, entries);
}

/** Σ wᵢ·ΔWᵢ over maps with the same targets. */
function combine(terms: readonly (readonly [number, Map<string, Float64Array>])[]): Map<string, Float64Array> {
  const [[w0, first]] = terms as [[number, Map<string, Float64Array>]];
  return new Map([...first].map(([k, d]) => [k, d.map((v, i) => terms.slice(1).reduce((s, [w, m]) => s + w * m.get(k)![i]!, w0 * v))]));
}

function checkNames(names: readonly string[], check: NameCheck, what: string): void {
  for (const n of check.contains ?? []) expect(names, `${what}: ${n}`).toContain(n);
  if (check.some) expect(names.some((n) => check.some!.test(n)), `${what}: some name matches ${check.some}`).toBe(true);
  if (check.all) {
    const within = names.filter((n) => !check.within || check.within.test(n));
    expect(within.length, `${what}: names within ${check.within}`).toBeGreaterThan(0);
    expect(within.filter((n) => !check.all!.test(n)), `${what}: names not matching ${check.all}`).toEqual([]);
  }
}

export function describeTableFamilyOperations(spec: TableFamilyOpsSpec): void {
  const { id, label } = spec;
  const tol = { ...DEFAULT_TOLERANCES, ...spec.tolerances };
  const ids = blockIds(spec.blocks.groups);
  const blockOf = (target: string) => blockOfTarget(spec.blocks, target);

  describe(`${label} LoRAs through every operation`, () => {
    const tmp = useTempDir(`loraflow-${id}-ops-`);

    it('converts to kohya, diffusers and comfyui and back with ΔW unchanged, in the layouts the trainers use', async () => {
      const names = new Map<LoraWriter, Map<WriteFormat, string[]>>();
      for (const [i, source] of spec.convert.sources.entries()) {
        const src = join(tmp.dir, `conv-src-${i}.safetensors`);
        const want = await source.write(src, 1);
        const byFormat = new Map<WriteFormat, string[]>();
        names.set(source, byFormat);
        for (const to of WRITE_FORMATS) {
          const out = join(tmp.dir, `conv-${i}-${to}.safetensors`);
          await convertLora(src, out, { to });
          const file = await SafetensorsFile.open(out);
          byFormat.set(to, file.tensors.map((t) => t.name));
          await file.close();
          const set = await readLora(out);
          expect(set.architecture, `${source.name} → ${to}`).toBe(id);
          expect(set.unknownKeys, `${source.name} → ${to}`).toEqual([]);
          expect(await deltaError(set, want), `${source.name} → ${to}`).toBeLessThan(tol.convert);
          await set.close();
        }
      }
      for (const check of spec.convert.names) {
        const from = check.from ?? spec.convert.sources[0]!;
        const got = names.get(from)?.get(check.to);
        if (!got) throw new Error(`name check for ${from.name} → ${check.to}: ${from.name} is not one of convert.sources`);
        checkNames(got, check, `${from.name} → ${check.to}`);
      }
    });

    const meta = spec.convert.kohyaMetadata;
    if (meta) {
      it(`kohya output of a file without metadata carries ${label}'s trainer metadata`, async () => {
        const src = join(tmp.dir, 'meta-src.safetensors');
        await meta.source.write(src, 1, { count: meta.count, metadata: {} });
        const out = join(tmp.dir, 'meta-kohya.safetensors');
        await convertLora(src, out, { to: 'kohya' });
        const file = await SafetensorsFile.open(out);
        for (const [k, v] of Object.entries(meta.want)) expect(file.metadata?.[k], k).toBe(v);
        await file.close();
        const back = await readLora(out);
        expect(back.architecture).toBe(id);
        await back.close();
      });
    }

    const { a: mergeA, b: mergeB, rank } = spec.merge;
    it(`merges two ${label} LoRAs from different trainers (${mergeA.name}; ${mergeB.name}): concat exact, SVD at rank ${rank} exact`, async () => {
      const a = join(tmp.dir, 'merge-a.safetensors');
      const b = join(tmp.dir, 'merge-b.safetensors');
      const want = combine([[0.7, await mergeA.write(a, 1)], [-0.4, await mergeB.write(b, 2)]]);
      const sa = await readLora(a);
      const sb = await readLora(b);
      for (const method of ['concat', 'svd'] as const) {
        const { set } = await mergeLoras([{ set: sa, weight: 0.7 }, { set: sb, weight: -0.4 }], { method, rank });
        expect(set.architecture, method).toBe(id);
        expect(await deltaError(set, want), method).toBeLessThan(tol.merge);
        const out = join(tmp.dir, `merged-${method}.safetensors`);
        await writeLora(out, set, { format: 'kohya' });
        const back = await readLora(out);
        expect(back.architecture, `${method} written`).toBe(id);
        expect(await deltaError(back, want), `${method} written`).toBeLessThan(tol.merge);
        await back.close();
      }
      await sa.close();
      await sb.close();
    });

    it(`resize to the full rank keeps ΔW (${spec.resize.source.name})`, async () => {
      const path = join(tmp.dir, 'resize.safetensors');
      const want = await spec.resize.source.write(path, 1);
      const set = await readLora(path);
      const resized = await resizeLora(set, { rank: RANK });
      expect(await deltaError(resized.set, want)).toBeLessThan(tol.resize);
      await set.close();
    });

    const range = `IN, ${spec.blocks.groups.map((g) => `${g.id}00–${g.id}${pad2(g.count - 1)}`).join(', ')}, OUT`;
    it(`block weights use ${range}: each module scaled by its block's weight, by value; vectors in that order; bad specs refused`, async () => {
      const path = join(tmp.dir, 'blocks.safetensors');
      const want = await spec.blocks.source.write(path, 1);
      for (const k of want.keys()) expect(blockOf(k), `${k} falls in a block`).toBeDefined();
      const set = await readLora(path);
      for (const c of spec.blocks.weighted) {
        const what = Array.isArray(c.spec) ? `[${c.spec.join(',')}]` : String(c.spec);
        let weight = c.weight;
        if (typeof c.spec !== 'string') {
          const vector = c.spec;
          expect(vector.length, what).toBe(ids.length);
          weight = (block) => vector[ids.indexOf(block)]!;
        }
        if (!weight) throw new Error(`block weight case ${what}: a spec string needs its expected weight per block id`);
        const weighted = applyBlockWeights(set, typeof c.spec === 'string' ? c.spec : [...c.spec]);
        const scaled = new Map<string, Float64Array>();
        for (const [k, d] of want) {
          const w = weight(blockOf(k)!);
          if (w !== 0) scaled.set(k, d.map((v) => w * v));
        }
        expect(await deltaError(weighted.set, scaled), what).toBeLessThan(tol.blocks);
        expect(weighted.report.dropped, what).toHaveLength(c.dropped);
      }
      for (const [bad, error] of spec.blocks.refused) expect(() => applyBlockWeights(set, typeof bad === 'string' ? bad : [...bad])).toThrow(error);
      await set.close();
    });

    it(`filters keep exactly the modules of the named blocks (${spec.blocks.filters.map((f) => f.join('+')).join('; ')})`, async () => {
      const path = join(tmp.dir, 'filters.safetensors');
      const want = await spec.blocks.source.write(path, 1);
      const set = await readLora(path);
      for (const keep of spec.blocks.filters) {
        const upper = keep.map((b) => b.toUpperCase());
        const expected = [...want.keys()].filter((k) => upper.includes(blockOf(k) ?? '')).sort();
        expect(expected.length, keep.join('+')).toBeGreaterThan(0);
        expect(filterPatches(set, { keepBlocks: keep }).set.patches.map((p) => p.target).sort(), keep.join('+')).toEqual(expected);
      }
      await set.close();
    });

    for (const prefix of spec.base.prefixes) {
      const { a: applyA, b: applyB } = spec.apply;
      it(`applies two ${label} LoRAs (${applyA.name}; ${applyB.name}) into a ${label} base (${prefix || 'bare names'}): W + Σ wᵢ·ΔWᵢ, the rest byte for byte`, async () => {
        const base = join(tmp.dir, `base-${prefix.length}.safetensors`);
        const out = join(tmp.dir, `applied-${prefix.length}.safetensors`);
        await writeTableBase(base, spec.base, prefix);
        const a = join(tmp.dir, `apply-a-${prefix.length}.safetensors`);
        const b = join(tmp.dir, `apply-b-${prefix.length}.safetensors`);
        const want = combine([[1, await applyA.write(a, 1)], [0.5, await applyB.write(b, 3)]]);
        const sa = await readLora(a);
        const sb = await readLora(b);
        await applyToBase({ base, out, loras: [{ set: sa, weight: 1 }, { set: sb, weight: 0.5 }] });
        const baseFile = await SafetensorsFile.open(base);
        const outFile = await SafetensorsFile.open(out);
        const errors = await basePlusDeltaErrors(baseFile, outFile, (name) => {
          const d = name.startsWith(prefix) ? want.get(name.slice(prefix.length)) : undefined;
          return d && { data: d };
        });
        expect(errors.size).toBe(spec.base.linears.length);
        expect(Math.max(...errors.values())).toBeLessThan(tol.apply);
        await Promise.all([baseFile.close(), outFile.close(), sa.close(), sb.close()]);
      });
    }

    it(`extracts a ${label} LoRA from a tuned/base pair that recovers ΔW, and names its modules in ${label} terms (${spec.extract.format})`, async () => {
      const prefix = spec.base.prefixes[0]!;
      const base = join(tmp.dir, 'x-base.safetensors');
      const tuned = join(tmp.dir, 'x-tuned.safetensors');
      const few = new Map([...spec.extract.deltas].filter(([k]) => spec.extract.targets.test(k)));
      expect(few.size).toBeGreaterThan(0);
      await writeTableBase(base, spec.base, prefix);
      await writeTableBase(tuned, spec.base, prefix, few);
      const { set, report } = await extractLora({ base, tuned, rank: RANK });
      expect(report.architecture).toBe(id);
      expect(set.architecture).toBe(id);
      expect(await deltaError(set, few)).toBeLessThan(tol.extract);
      const out = join(tmp.dir, 'x.safetensors');
      await writeLora(out, set, { format: spec.extract.format });
      const back = await readLora(out);
      expect(back.architecture).toBe(id);
      expect(back.unknownKeys).toEqual([]);
      expect(await deltaError(back, few)).toBeLessThan(tol.extract);
      const file = await SafetensorsFile.open(out);
      const names = file.tensors.map((t) => t.name);
      for (const n of spec.extract.names ?? []) expect(names).toContain(n);
      await file.close();
      await back.close();
    });

    const refusal = spec.refusal;
    it(`a ${label} LoRA given with another family's base is refused naming both, and nothing is written${refusal.foreignLora ? `; another family's LoRA into a ${label} base too` : ''}`, async () => {
      const foreign = join(tmp.dir, 'foreign-base.safetensors');
      await (refusal.base ?? FLUX1_BASE).write(foreign);
      const lora = join(tmp.dir, 'lora-on-foreign.safetensors');
      await refusal.source.write(lora, 1, { count: refusal.count });
      const set = await readLora(lora);
      expect(set.architecture).toBe(id);
      const out = join(tmp.dir, 'never.safetensors');
      await expect(applyToBase({ base: foreign, out, loras: [{ set, weight: 1 }] })).rejects.toThrow(refusal.error);
      await expect(SafetensorsFile.open(out)).rejects.toThrow();
      await set.close();

      const other = refusal.foreignLora;
      if (!other) return;
      const own = join(tmp.dir, 'own-base.safetensors');
      await writeTableBase(own, spec.base, '');
      const otherPath = join(tmp.dir, 'foreign-lora.safetensors');
      await other.write(otherPath);
      const s = await readLora(otherPath);
      expect(s.architecture).toBe(other.id);
      await expect(applyToBase({ base: own, out, loras: [{ set: s, weight: 1 }] })).rejects.toThrow(other.error);
      await expect(SafetensorsFile.open(out)).rejects.toThrow();
      await s.close();
    });
  });
}
