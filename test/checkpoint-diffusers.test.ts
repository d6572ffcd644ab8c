/**
 * Diffusers model folders as bases (src/checkpoint/diffusers-folder.ts, diffusers-names.ts): read
 * as the original tensors they assemble into, written back shard for shard, patched through the
 * module table's row maps (a LoRA on a fused q|k|v lands on to_q/to_k/to_v by rows, a modulation's
 * halves swap), converted to and from single files, refused when malformed, extracted from.
 */
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CanonicalView } from '../src/checkpoint/canonical.ts';
import type { Patch } from '../src/adapter/model.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { extractLora } from '../src/lora/extract.ts';
import { SafetensorsFile, withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32, encodeFromF32, type DType } from '../src/tensor/dtype.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { sampleTableLora, writeTableCheckpoint } from '../src/samples/table-samples.ts';
import { FAMILIES } from '../src/formats/families.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { dyadicPatch, expectedDeltas, firstDifference, fluxDiffusersParts, folderFiles, loraSet, partBytes, writeFluxDiffusersFolder } from './checkpoint-fixtures.ts';
import { SMALL_FLUX } from './ops-fixtures.ts';
import { expectDeltasClose } from './helpers/lora.ts';

const H = 48;
const MLP = 192;
let dir: string;
let bfl: string;
let folder: string;
let n = 0;
const fresh = (name: string) => join(dir, `${n++}-${name}`);

beforeAll(async () => {
  await useBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'loraflow-ckpt-diffusers-'));
  bfl = join(dir, 'flux-bfl.safetensors');
  await writeFluxCheckpoint(bfl, { ...SMALL_FLUX, dtype: 'BF16' });
  folder = join(dir, 'flux-diffusers', 'transformer');
  await writeFluxDiffusersFolder(folder, bfl, 3);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every LoRA kind and row placement the layouts must route: whole fused weights, q/k/v and mlp slices, a swapped modulation, LoKr, a bias slice over two parts, a norm replacement. */
function loras() {
  const l1 = loraSet([
    dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 1),
    dyadicPatch('single_blocks.0.linear1.weight', 3 * H + MLP, H, 2),
    dyadicPatch('final_layer.adaLN_modulation.1.weight', 2 * H, H, 3),
    dyadicPatch('double_blocks.1.txt_mlp.0.weight', MLP, H, 4),
  ]);
  const extras: Patch[] = [
    { component: 'transformer', target: 'double_blocks.1.img_attn.proj.weight', adapter: { kind: 'lokr', w1: memoryTensor(Float32Array.from({ length: 16 }, (_, i) => (i % 5) / 4 - 0.5), [4, 4]), w2: memoryTensor(Float32Array.from({ length: 144 }, (_, i) => ((i * 7) % 9) / 64 - 0.0625), [12, 12]), scale: 1 }, source: { module: 'lokr_proj', keys: [] } },
    { component: 'transformer', target: 'single_blocks.0.linear1.bias', rows: [0, 2 * H], adapter: { kind: 'full', diff: memoryTensor(Float32Array.from({ length: 2 * H }, (_, i) => ((i % 7) - 3) / 32), [2 * H]) }, source: { module: 'qk_bias', keys: [] } },
    { component: 'transformer', target: 'single_blocks.1.norm.key_norm.scale', adapter: { kind: 'set', value: memoryTensor(Float32Array.from([0.75, 1.25]), [2]) }, source: { module: 'key_norm', keys: [] } },
  ];
  const l2 = loraSet([
    dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 5, [H, H]),
    dyadicPatch('single_blocks.1.linear1.weight', 3 * H + MLP, H, 6, [3 * H, MLP]),
    ...extras,
  ]);
  return [{ set: l1, weight: 1 }, { set: l2, weight: 0.5 }];
}

const roundOnce = (w: Float64Array, dtype: DType) => decodeToF32(encodeFromF32(Float32Array.from(w), dtype), dtype);

describe('a diffusers folder as a base', () => {
  it('reads as the original tensors its diffusers parts assemble into, bit for bit', async () => {
    const view = await CanonicalView.open(join(dir, 'flux-diffusers'));
    try {
      expect(view.layout).toBe('diffusers');
      expect(view.family?.id).toBe('flux');
      expect(view.reader.folder?.shards.length).toBe(3);
      await withSafetensors(bfl, async (f) => {
        expect(view.tensors.map((t) => t.name).sort()).toEqual(f.tensors.map((t) => t.name).sort());
        for (const t of f.tensors) {
          expect(view.info(t.name).shape, t.name).toEqual(t.shape);
          expect(Buffer.from(await view.readStored(t.name)).equals(Buffer.from(await f.readBytes(t.name))), t.name).toBe(true);
        }
        // a row range across parts (k rows of to_k, then v rows of to_v)
        const rows = await view.readStored('double_blocks.0.img_attn.qkv.weight', undefined, H + 5, H);
        expect(Buffer.from(rows).equals(Buffer.from((await f.readBytes('double_blocks.0.img_attn.qkv.weight')).subarray((H + 5) * H * 2, (2 * H + 5) * H * 2)))).toBe(true);
      });
    } finally {
      await view.close();
    }
  });

  it('comes back byte for byte from an apply without LoRAs (shards, index, config)', async () => {
    const out = fresh('roundtrip');
    const report = await applyToBase({ threads: 0, base: folder, out, loras: [] });
    expect(report.files[0]!.copied).toBe(report.files[0]!.tensors);
    const [a, b] = await Promise.all([folderFiles(folder), folderFiles(out)]);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes), name).toBe(true);
  });

  it('gets W + Σ wᵢ·ΔWᵢ through its diffusers parts, rounded once, as a single file would', async () => {
    const ls = loras();
    const out = fresh('applied');
    const report = await applyToBase({ threads: 0, base: folder, out, loras: ls });
    expect(report.modules).toBe(ls.reduce((s, l) => s + l.set.patches.length, 0));
    const single = fresh('applied-bfl.safetensors');
    await applyToBase({ threads: 0, base: bfl, out: single, loras: ls });
    const expected = await expectedDeltas(ls);
    const view = await CanonicalView.open(out);
    try {
      expect(view.reader.folder?.shards.map((s) => s.file)).toEqual(['diffusion_pytorch_model-00001-of-00003.safetensors', 'diffusion_pytorch_model-00002-of-00003.safetensors', 'diffusion_pytorch_model-00003-of-00003.safetensors']);
      await withSafetensors(bfl, async (b) => withSafetensors(single, async (s) => {
        let patched = 0;
        for (const t of b.tensors) {
          const want = expected(await b.readF32(t.name), t.name);
          const got = await view.readF32(t.name);
          if (want) {
            patched++;
            expect(firstDifference(got, roundOnce(want, 'BF16')), t.name).toBeUndefined();
          } else expect(Buffer.from(await view.readStored(t.name)).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
          // and each diffusers tensor holds exactly the rows a single-file apply gives its BFL tensor
          const bytes = await s.readBytes(t.name);
          for (const part of fluxDiffusersParts(t.name, t.shape[0]!, H)) {
            expect(Buffer.from(await view.reader.read(part.name)).equals(Buffer.from(partBytes(bytes, bytes.byteLength / t.shape[0]!, part))), part.name).toBe(true);
          }
        }
        expect(patched).toBe(8);
      }));
    } finally {
      await view.close();
    }
  });

  it('is written as a single file in original names (--format safetensors --layout original), and a single file as a folder', async () => {
    const ls = loras();
    const single = fresh('from-folder.safetensors');
    await applyToBase({ threads: 0, base: folder, out: single, loras: ls, format: 'safetensors', layout: 'original' });
    const reference = fresh('bfl-applied.safetensors');
    await applyToBase({ threads: 0, base: bfl, out: reference, loras: ls });
    await withSafetensors(single, async (a) => withSafetensors(reference, async (b) => {
      expect(a.tensors.map((t) => t.name).sort()).toEqual(b.tensors.map((t) => t.name).sort());
      for (const t of b.tensors) expect(Buffer.from(await a.readBytes(t.name)).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
    }));
    // the other way: a BFL file to a folder (no LoRA): the tensors of the fixture folder, in new shards of at most 200 kB
    const made = fresh('to-folder');
    const report = await applyToBase({ threads: 0, base: bfl, out: made, loras: [], format: 'diffusers', shardBytes: 200_000 });
    expect(report.notes.join()).toMatch(/no diffusers config\.json/);
    const files = await readdir(made);
    expect(files).toContain('diffusion_pytorch_model.safetensors.index.json');
    expect(files.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
    const index = JSON.parse(await readFile(join(made, 'diffusion_pytorch_model.safetensors.index.json'), 'utf8'));
    const fixture = await CanonicalView.open(folder);
    const back = await CanonicalView.open(made);
    try {
      expect(Object.keys(index.weight_map).sort()).toEqual(fixture.reader.tensors.map((t) => t.name).sort());
      expect(index.metadata.total_size).toBe(fixture.reader.tensors.reduce((s, t) => s + t.byteLength, 0));
      for (const t of fixture.reader.tensors) expect(Buffer.from(await back.reader.read(t.name)).equals(Buffer.from(await fixture.reader.read(t.name))), t.name).toBe(true);
      // shards stay under the limit unless one tensor alone is larger
      for (const s of back.reader.folder!.shards) {
        const bytes = s.tensors.reduce((sum, name) => sum + back.reader.info(name).byteLength, 0);
        expect(bytes <= 200_000 || s.tensors.length === 1).toBe(true);
      }
    } finally {
      await fixture.close();
      await back.close();
    }
  });

  it('reads an unsharded folder (one diffusion_pytorch_model.safetensors beside config.json) and keeps it unsharded', async () => {
    const one = fresh('one-shard');
    await writeFluxDiffusersFolder(one, bfl, 1);
    const ls = loras();
    const out = fresh('one-shard-out');
    // the weights file itself names the folder too
    await applyToBase({ threads: 0, base: join(one, 'diffusion_pytorch_model.safetensors'), out, loras: ls, dtype: 'fp32' });
    expect((await readdir(out)).sort()).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
    const expected = await expectedDeltas(ls);
    const view = await CanonicalView.open(out);
    try {
      await withSafetensors(bfl, async (b) => {
        for (const t of b.tensors) {
          const want = expected(await b.readF32(t.name), t.name);
          expect(firstDifference(await view.readF32(t.name), want ? Float32Array.from(want) : await b.readF32(t.name)), t.name).toBeUndefined();
        }
      });
    } finally {
      await view.close();
    }
  });

  it('gives an extraction from a folder base and a single-file tuned model the ΔW of the change', async () => {
    const ls = loras().slice(0, 1);
    const tuned = fresh('tuned.safetensors');
    await applyToBase({ threads: 0, base: bfl, out: tuned, loras: ls, dtype: 'fp32' });
    const base32 = fresh('base32');
    await applyToBase({ threads: 0, base: folder, out: base32, loras: [], dtype: 'fp32' });
    const { set, report } = await extractLora({ base: base32, tuned, rank: 4 });
    expect(report.architecture).toBe('flux');
    expect(report.modules.map((m) => m.key).sort()).toEqual(ls[0]!.set.patches.map((p) => p.target).sort());
    expectDeltasClose(await referenceDeltas(ls[0]!.set), await referenceDeltas(set), 1e-5);
  });
});

describe('malformed diffusers folders are refused, naming the file and tensor, with nothing written', () => {
  async function broken(edit: (dir: string) => Promise<void>): Promise<string> {
    const d = fresh('broken');
    await writeFluxDiffusersFolder(d, bfl, 3);
    await edit(d);
    return d;
  }
  async function refused(base: string, pattern: RegExp, code: string) {
    const out = fresh('never');
    const before = await readdir(dir);
    const err = await applyToBase({ threads: 0, base, out, loras: loras() }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { code?: string }).code).toBe(code);
    expect((err as Error).message).toMatch(pattern);
    expect(await readdir(dir)).toEqual(before);
  }
  const index = (d: string) => join(d, 'diffusion_pytorch_model.safetensors.index.json');

  it('an index naming a shard that is not there', async () => {
    const d = await broken((x) => rm(join(x, 'diffusion_pytorch_model-00002-of-00003.safetensors')));
    await refused(d, /index\.json: tensor "[^"]+": the index puts this tensor in shard diffusion_pytorch_model-00002-of-00003\.safetensors, but .* does not exist/, 'MISSING_SHARD');
  });

  it('a shard without a tensor the index puts in it', async () => {
    const d = await broken(async (x) => {
      const shard = join(x, 'diffusion_pytorch_model-00001-of-00003.safetensors');
      const f = await SafetensorsFile.open(shard);
      const keep = f.tensors.slice(1);
      const entries = await Promise.all(keep.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) })));
      const dropped = f.tensors[0]!.name;
      await f.close();
      await writeSafetensors(shard, entries, { metadata: { format: 'pt' } });
      expect(dropped).toBeTruthy();
    });
    await refused(d, /00001-of-00003\.safetensors: tensor "[^"]+": the index .* puts this tensor in this shard, but the shard does not hold it/, 'INDEX_MISMATCH');
  });

  it('an index whose shard name leaves the folder', async () => {
    const d = await broken(async (x) => {
      const text = (await readFile(index(x), 'utf8')).replace('"diffusion_pytorch_model-00003-of-00003.safetensors"', '"../flux-bfl.safetensors"');
      await writeFile(index(x), text);
    });
    await refused(d, /index\.json: tensor "[^"]+": weight_map names "\.\.\/flux-bfl\.safetensors" as its shard/, 'BAD_INDEX');
  });

  it('a fused weight with one of its diffusers parts missing', async () => {
    const d = await broken(async (x) => {
      // move to_k of block 0 out of the folder, index and shard alike
      const shardName = JSON.parse(await readFile(index(x), 'utf8')).weight_map['transformer_blocks.0.attn.to_k.weight'];
      const shard = join(x, shardName);
      const f = await SafetensorsFile.open(shard);
      const keep = f.tensors.filter((t) => t.name !== 'transformer_blocks.0.attn.to_k.weight');
      const entries = await Promise.all(keep.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) })));
      await f.close();
      await writeSafetensors(`${shard}.new`, entries, { metadata: { format: 'pt' } });
      await rename(`${shard}.new`, shard);
      const doc = JSON.parse(await readFile(index(x), 'utf8'));
      delete doc.weight_map['transformer_blocks.0.attn.to_k.weight'];
      await writeFile(index(x), JSON.stringify(doc));
    });
    await refused(d, /tensor "transformer_blocks\.0\.attn\.to_[qv]\.weight": transformer_blocks\.0\.attn\.to_k\.weight is missing/, 'BAD_PARTS');
  });

  it('a folder with no weights at all', async () => {
    const d = fresh('empty');
    await mkdir(d);
    await refused(d, /not a diffusers model folder/, 'NOT_A_MODEL_FOLDER');
    await rm(d, { recursive: true });
  });

  it('a DoRA normalised per input column over a whole fused weight (its parts cannot each renormalise it)', async () => {
    const p = dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 9);
    const dora: Patch = { ...p, dora: { axis: 'in', magnitude: memoryTensor(new Float32Array(H).fill(1), [1, H]) } };
    const out = fresh('never');
    await expect(applyToBase({ threads: 0, base: folder, out, loras: [{ set: loraSet([dora]), weight: 1 }] })).rejects.toThrow(/DoRA patch normalised per input column .* cannot be split/);
    expect(await readdir(dir)).not.toContain(out.slice(dir.length + 1));
  });
});

describe.each(FAMILIES.filter((f) => f.table && f.samples).map((f) => [f.id, f] as const))('a %s base through the module table', (_id, family) => {
  it('goes to a diffusers folder and back to its original file byte for byte, and takes a LoRA the same in either form', async () => {
    const original = fresh(`${family.id}-base.safetensors`);
    await writeTableCheckpoint(original, family, 3);
    const folderOut = fresh(`${family.id}-folder`);
    await applyToBase({ threads: 0, base: original, out: folderOut, loras: [], format: 'diffusers' });
    const back = fresh(`${family.id}-back.safetensors`);
    await applyToBase({ threads: 0, base: folderOut, out: back, loras: [], format: 'safetensors', layout: 'original' });
    const PREFIX = 'model.diffusion_model.';
    await withSafetensors(original, async (a) => withSafetensors(back, async (b) => {
      expect(b.tensors.map((t) => PREFIX + t.name).sort()).toEqual(a.tensors.map((t) => t.name).sort());
      for (const t of a.tensors) expect(Buffer.from(await b.readBytes(t.name.slice(PREFIX.length))).equals(Buffer.from(await a.readBytes(t.name))), t.name).toBe(true);
    }));
    // a sample LoRA (the trainers' targets, q/k/v parts among them) into the file and into the folder: the same values
    const lora = [{ set: sampleTableLora(family, 7), weight: 0.75 }];
    const intoFile = fresh(`${family.id}-file-out.safetensors`);
    const intoFolder = fresh(`${family.id}-folder-out`);
    await applyToBase({ threads: 0, base: original, out: intoFile, loras: lora });
    await applyToBase({ threads: 0, base: folderOut, out: intoFolder, loras: lora });
    const view = await CanonicalView.open(intoFolder);
    try {
      let changed = 0;
      await withSafetensors(intoFile, async (f) => withSafetensors(original, async (o) => {
        for (const t of f.tensors) {
          const bytes = await f.readBytes(t.name);
          expect(Buffer.from(await view.readStored(t.name.slice(PREFIX.length))).equals(Buffer.from(bytes)), t.name).toBe(true);
          if (!Buffer.from(bytes).equals(Buffer.from(await o.readBytes(t.name)))) changed++;
        }
      }));
      expect(changed).toBe(new Set(lora[0]!.set.patches.map((p) => p.target)).size);
    } finally {
      await view.close();
    }
  });
});
