/**
 * Sample files of a table family (Wan, …) from its family object alone: a LoRA in each writable
 * layout on the modules trainers target, and a single-file base checkpoint with every table
 * weight under its original name (`model.diffusion_model.` prefix), widths as the family's sample
 * spec gives them. Deterministic: the same family writes the same bytes.
 */
import { join } from 'node:path';
import type { Family } from '../formats/family.ts';
import type { AdapterSet, Patch } from '../adapter/model.ts';
import { evalWidth, type TableModule } from '../formats/table/module-table.ts';
import { fillIndex } from '../formats/table/template.ts';
import { writeLora } from '../formats/write/index.ts';
import type { WriteFormat } from '../formats/write/names.ts';
import { writeSafetensors, type TensorEntry } from '../safetensors/writer.ts';
import { encodeFromF32 } from '../tensor/dtype.ts';
import { memoryTensor } from '../tensor/lazy.ts';
import { keyedRandom } from './lora-fixtures.ts';

const RANK = 4;

/** The shape of `m` in block `block`: a variant's where the sample's blocks have it (SD3's last block, its dual-attention blocks). */
function shapeOf(family: Family, m: TableModule, block?: number): number[] {
  const variant = block === undefined ? undefined : m.variants?.find((x) => (x.blocks === 'last' ? block === blocksOf(family, m.group) - 1 : block < blocksOf(family, x.blocks.group)));
  return (variant?.shape ?? m.shape).map((e) => {
    const v = evalWidth(e, family.samples!.widths);
    if (v === undefined) throw new Error(`${family.id} samples: no width for "${e}" of ${m.original}`);
    return v;
  });
}

/** How many blocks of a table group the samples have. */
export function blocksOf(family: Family, group: string): number {
  const b = family.samples!.blocks;
  return typeof b === 'number' ? b : (b[group] ?? 0);
}

/** Every (module, block) of the table the family's samples have. */
function instances(family: Family, filter?: readonly string[]): { m: TableModule; path: string; block?: number }[] {
  const out: { m: TableModule; path: string; block?: number }[] = [];
  for (const m of family.table!.modules) {
    if (filter && !filter.includes(m.original)) continue;
    const indexed = m.original.includes('{i}');
    const blocks = indexed ? blocksOf(family, m.group) : 1;
    for (let i = 0; i < blocks; i++) out.push({ m, path: fillIndex(m.original, indexed ? i : undefined), block: indexed ? i : undefined });
  }
  return out;
}

const values = (key: string, seed: number, n: number, amp: number) => {
  const r = keyedRandom(key, seed);
  return Float32Array.from({ length: n }, () => amp * (r() - 0.5));
};

/** A rank-4 LoRA on the trainers' default targets, alpha 2 (scale ½). */
export function sampleTableLora(family: Family, seed: number): AdapterSet {
  const patches: Patch[] = instances(family, family.samples!.targets).map(({ m, path, block }) => {
    const [rows, cols] = shapeOf(family, m, block) as [number, number];
    return {
      component: family.denoiser,
      target: `${path}.weight`,
      adapter: {
        kind: 'lora',
        down: memoryTensor(values(`${path} down`, seed, RANK * cols, 1), [RANK, cols], 'F32', `${path} down`),
        up: memoryTensor(values(`${path} up`, seed, rows * RANK, 0.1), [rows, RANK], 'F32', `${path} up`),
        alpha: RANK / 2,
        scale: 0.5,
      },
      source: { module: path, keys: [] },
    };
  });
  return { architecture: family.id, format: 'sample', patches, metadata: {}, unknownKeys: [], notes: [] };
}

export async function writeTableLora(path: string, family: Family, format: WriteFormat, seed: number): Promise<void> {
  await writeLora(path, sampleTableLora(family, seed), { format, dtype: 'F16', operation: 'samples' });
}

/** The base checkpoint: every table weight (norms' `scale` under BFL names; a bias per linear matrix where the model has them), F32, original names with `model.diffusion_model.`. */
export async function writeTableCheckpoint(path: string, family: Family, seed = 0): Promise<void> {
  const entries: TensorEntry[] = [];
  for (const { m, path: p, block } of instances(family)) {
    const shape = shapeOf(family, m, block);
    const n = shape.reduce((a, b) => a * b, 1);
    const key = `model.diffusion_model.${p}`;
    entries.push({ name: `${key}.${m.kind === 'norm' ? 'scale' : 'weight'}`, dtype: 'F32', shape, data: encodeFromF32(values(key, seed, n, 2 / Math.sqrt(shape.at(-1)!)), 'F32') });
    if (shape.length === 2 && family.samples!.biases !== false) entries.push({ name: `${key}.bias`, dtype: 'F32', shape: [shape[0]!], data: encodeFromF32(values(`${key}.bias`, seed, shape[0]!, 0.1), 'F32') });
  }
  await writeSafetensors(path, entries, { order: 'reference' });
}

/** Writes `<id>-kohya-lora`, `<id>-diffusers-lora` and `<id>-base` for a table family; returns what was written. */
export async function writeTableSamples(dir: string, family: Family): Promise<{ file: string; what: string }[]> {
  const file = (n: string) => join(dir, `${family.id}-${n}.safetensors`);
  const w = family.samples!.widths;
  const b = family.samples!.blocks;
  const size = `real key names and ${typeof b === 'number' ? b : Object.entries(b).map(([g, n]) => `${n} ${g}`).join(' + ')} blocks, hidden width ${w.h}`;
  await writeTableLora(file('kohya-lora'), family, 'kohya', 21);
  await writeTableLora(file('diffusers-lora'), family, 'diffusers', 22);
  await writeTableCheckpoint(file('base'), family);
  return [
    { file: file('kohya-lora'), what: `${family.label} LoRA in kohya layout (lora_unet_ + original names, alpha 2 at rank 4), ${size}` },
    { file: file('diffusers-lora'), what: `${family.label} LoRA in diffusers/PEFT layout (transformer. + diffusers names), rank 4` },
    { file: file('base'), what: `${family.label}-shaped single-file base checkpoint (model.diffusion_model. + original names, F32), ${size}` },
  ];
}
