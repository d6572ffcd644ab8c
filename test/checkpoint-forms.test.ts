/**
 * The forms layer itself (src/checkpoint/form.ts and its implementations): every form lists the
 * same tensor facts, reads whole tensors and row ranges into given buffers, and writes through a
 * staging name that only commit renames into place (abort leaves nothing); forms are told apart by
 * what the path is, not by its name alone; impossible output forms are refused before writing.
 */
import { mkdir, mkdtemp, readdir, rm, stat, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CanonicalView } from '../src/checkpoint/canonical.ts';
import { DiffusersFolderWriter } from '../src/checkpoint/diffusers-folder.ts';
import { formatIndex } from '../src/checkpoint/diffusers-index.ts';
import { openCheckpoint } from '../src/checkpoint/open.ts';
import { planOutput } from '../src/checkpoint/output-plan.ts';
import { SafetensorsOutput } from '../src/checkpoint/safetensors-file.ts';
import { GgufFile } from '../src/gguf/reader.ts';
import { writeGguf } from '../src/gguf/writer.ts';
import { SafetensorsFile, withSafetensors } from '../src/safetensors/reader.ts';
import { writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { diffusersIndexText, writeFluxDiffusersFolder } from './checkpoint-fixtures.ts';
import { SMALL_FLUX } from './ops-fixtures.ts';

let dir: string;
let bfl: string;
let folder: string;
let n = 0;
const fresh = (name: string) => join(dir, `${n++}-${name}`);
const exists = (p: string) => stat(p).then(() => true, () => false);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loraflow-ckpt-forms-'));
  bfl = join(dir, 'flux.safetensors');
  await writeFluxCheckpoint(bfl, { ...SMALL_FLUX, dtype: 'BF16', metadata: { note: 'base' } });
  folder = join(dir, 'pipeline', 'transformer');
  await writeFluxDiffusersFolder(folder, bfl, 2);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readers', () => {
  it('a safetensors file: the header\'s tensors, whole reads and row ranges into the caller\'s buffer, metadata', async () => {
    const r = await openCheckpoint(bfl);
    try {
      expect(r.container).toBe('safetensors');
      expect(r.metadata).toEqual({ note: 'base' });
      await withSafetensors(bfl, async (f) => {
        expect(r.tensors.map((t) => [t.name, t.shape.join(), t.dtype, t.byteLength])).toEqual(f.tensors.map((t) => [t.name, t.shape.join(), t.dtype, t.end - t.begin]));
        const name = 'single_blocks.0.linear1.weight';
        const whole = await f.readBytes(name);
        const buf = new Uint8Array(whole.byteLength);
        expect(await r.read(name, buf)).toBe(buf);
        expect(Buffer.from(buf).equals(Buffer.from(whole))).toBe(true);
        const rowBytes = whole.byteLength / f.info(name).shape[0]!;
        expect(Buffer.from(await r.read(name, undefined, 10, 7)).equals(Buffer.from(whole.subarray(10 * rowBytes, 17 * rowBytes)))).toBe(true);
        await expect(r.read(name, undefined, 10, 1000)).rejects.toThrow(/rows \[10, 1010\) are not a row range/);
        await expect(r.read('nope', undefined)).rejects.toThrow(/tensor "nope": no tensor of this name/);
      });
    } finally {
      await r.close();
    }
  });

  it('a diffusers folder is found from the pipeline folder, the model folder or its index, and read shard by shard', async () => {
    for (const path of [join(dir, 'pipeline'), folder, join(folder, 'diffusion_pytorch_model.safetensors.index.json')]) {
      const r = await openCheckpoint(path);
      try {
        expect(r.container, path).toBe('diffusers-folder');
        expect(r.folder!.shards.map((s) => s.file)).toEqual(['diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors']);
        expect(r.folder!.config).toBe(join(folder, 'config.json'));
        expect(r.metadata).toEqual({ format: 'pt' });
        const t = r.tensors.find((x) => x.name === 'transformer_blocks.1.attn.to_v.weight')!;
        const shard = r.fileOf(t.name);
        expect(shard.startsWith(folder)).toBe(true);
        const direct = await SafetensorsFile.open(shard);
        expect(Buffer.from(await r.read(t.name)).equals(Buffer.from(await direct.readBytes(t.name)))).toBe(true);
        await direct.close();
      } finally {
        await r.close();
      }
    }
  });

  it('a GGUF file is told by its magic, whatever it is called', async () => {
    const path = fresh('model.bin');
    await writeGguf(path, [{ name: 'w.weight', type: 'Q8_0', shape: [4, 64], data: Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)) }]);
    const r = await openCheckpoint(path);
    try {
      expect(r.container).toBe('gguf');
      expect(r.tensors).toEqual([expect.objectContaining({ name: 'w.weight', shape: [4, 64], dtype: 'Q8_0', byteLength: 4 * 2 * 34 })]);
      const f = await GgufFile.open(path);
      expect(Buffer.from(await r.read('w.weight', undefined, 1, 2)).equals(Buffer.from(await f.readRowBytes('w.weight', 1, 2)))).toBe(true);
      await f.close();
    } finally {
      await r.close();
    }
  });
});

describe('writers', () => {
  it('a safetensors output exists only once committed; abort leaves nothing', async () => {
    const out = fresh('out.safetensors');
    const specs = [{ name: 'a', shape: [2], dtype: 'F32' }];
    const w = await SafetensorsOutput.create(out, specs, { k: 'v' });
    await w.write('a', new Uint8Array(8));
    expect(await exists(out)).toBe(false);
    await w.commit();
    expect(await withSafetensors(out, async (f) => f.metadata)).toEqual({ k: 'v' });
    const gone = fresh('gone.safetensors');
    const before = await readdir(dir);
    const w2 = await SafetensorsOutput.create(gone, specs, undefined);
    await w2.abort();
    expect(await readdir(dir)).toEqual(before);
  });

  it('a folder output is staged whole (shards, index, config) and renamed into place; abort removes it; an existing folder is never written over', async () => {
    const out = fresh('folder');
    const config = join(folder, 'config.json');
    const shards = [
      { file: 'diffusion_pytorch_model-00001-of-00002.safetensors', specs: [{ name: 'x.weight', shape: [2, 2], dtype: 'F32' }], metadata: { format: 'pt' } },
      { file: 'diffusion_pytorch_model-00002-of-00002.safetensors', specs: [{ name: 'y.weight', shape: [3], dtype: 'BF16' }], metadata: { format: 'pt' } },
    ];
    const w = await DiffusersFolderWriter.create(out, shards, { indexed: true, config });
    await w.write('x.weight', new Uint8Array(16));
    await w.write('y.weight', new Uint8Array(6));
    expect(await exists(out)).toBe(false);
    await w.commit();
    expect((await readdir(out)).sort()).toEqual(['config.json', 'diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors', 'diffusion_pytorch_model.safetensors.index.json']);
    await expect(DiffusersFolderWriter.create(out, shards, { indexed: true })).rejects.toMatchObject({ code: 'OUTPUT_EXISTS' });
    const before = await readdir(dir);
    const w2 = await DiffusersFolderWriter.create(fresh('aborted'), shards, { indexed: true });
    await w2.write('x.weight', new Uint8Array(16));
    await w2.abort();
    expect(await readdir(dir)).toEqual(before);
    // a wrong tensor aborts the whole folder
    const w3 = await DiffusersFolderWriter.create(fresh('wrong'), shards, { indexed: true });
    await expect(w3.write('y.weight', new Uint8Array(6))).rejects.toThrow(/expected "x\.weight"/);
    expect(await readdir(dir)).toEqual(before);
  });

  it('writes the index as diffusers does (sorted keys, two-space indent, newline)', () => {
    const map = new Map([['b.weight', 's2'], ['a.bias', 's1'], ['a.weight', 's1']]);
    expect(formatIndex(map, 1234)).toBe(diffusersIndexText(map, 1234));
  });
});

describe('output forms that cannot be', () => {
  it('are refused before anything is opened for writing', async () => {
    const single = await CanonicalView.open(bfl);
    const diff = await CanonicalView.open(folder);
    try {
      expect(() => planOutput(single, { format: 'gguf' })).toThrow(/GGUF output keeps a GGUF input's quant types; this input is a safetensors/);
      expect(() => planOutput(diff, { format: 'diffusers', layout: 'original' })).toThrow(/a diffusers folder holds diffusers names/);
      expect(planOutput(diff, { format: 'safetensors' })).toMatchObject({ container: 'safetensors', layout: 'diffusers' });
      expect(planOutput(single, { format: 'diffusers' })).toMatchObject({ container: 'diffusers-folder', layout: 'diffusers' });
      expect(planOutput(single, {})).toMatchObject({ container: 'safetensors', layout: 'original' });
    } finally {
      await single.close();
      await diff.close();
    }
  });

  it('a single file named like diffusers\' weights but with no config.json beside it is a plain safetensors file', async () => {
    const d = fresh('loose');
    await mkdir(d);
    await copyFile(join(folder, 'diffusion_pytorch_model-00001-of-00002.safetensors'), join(d, 'diffusion_pytorch_model.safetensors'));
    const r = await openCheckpoint(join(d, 'diffusion_pytorch_model.safetensors'));
    expect(r.container).toBe('safetensors');
    await r.close();
  });
});
