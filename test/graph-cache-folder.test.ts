/**
 * The run cache's file fingerprints for diffusers model folders: every file under a folder and every
 * shard an index names is fingerprinted (path, size, mtime), so a shard rewritten in place changes
 * a reading node's key and makes an output node's entry stale, although the index and the folder
 * itself are unchanged.
 */
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunCache, cacheKey, fingerprintFile } from '../src/graph/cache.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-cache-folder-');
const INDEX = 'diffusion_pytorch_model.safetensors.index.json';
const SHARDS = ['diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors'];

/** A folder with an index naming two shards (their bytes are not read: only stat'd). */
async function folder(name: string): Promise<string> {
  const dir = tmp.path(name, 'unet');
  await mkdir(dir, { recursive: true });
  const weightMap = { 'conv_in.weight': SHARDS[0], 'conv_out.weight': SHARDS[1] };
  await writeFile(join(dir, INDEX), JSON.stringify({ metadata: { total_size: 8 }, weight_map: weightMap }));
  for (const s of SHARDS) await writeFile(join(dir, s), 'aaaa');
  await writeFile(join(dir, 'config.json'), '{}');
  return dir;
}

/** Rewrites a shard in place: the same size, other bytes, a later mtime; the index and the folder keep theirs. */
async function rewriteShard(dir: string, shard: string): Promise<void> {
  const before = await fingerprintFile(dir);
  await writeFile(join(dir, shard), 'bbbb');
  const later = new Date(Date.now() + 5000);
  await utimes(join(dir, shard), later, later);
  // the folder's own stat must not be what tells the change
  await utimes(dir, new Date(before!.mtimeMs), new Date(before!.mtimeMs));
}

describe('fingerprints of a diffusers folder', () => {
  it('lists every file of the folder, sorted, each with size and mtime', async () => {
    const dir = await folder('list');
    const fp = (await fingerprintFile(dir))!;
    expect(fp.parts!.map((p) => p.path)).toEqual([join(dir, 'config.json'), ...SHARDS.map((s) => join(dir, s)), join(dir, INDEX)]);
    expect(fp.parts!.slice(1, 3).map((p) => p.size)).toEqual([4, 4]);
    // the index path itself fingerprints the same shards
    expect((await fingerprintFile(join(dir, INDEX)))!.parts!.map((p) => p.path)).toEqual(SHARDS.map((s) => join(dir, s)));
  });

  it('changes when a shard is rewritten in place, for the folder, its parent and its index', async () => {
    const dir = await folder('rewrite');
    const paths = [dir, join(dir, '..'), join(dir, INDEX)];
    const before = await Promise.all(paths.map(async (p) => cacheKey(await fingerprintFile(p))));
    await rewriteShard(dir, SHARDS[1]!);
    const after = await Promise.all(paths.map(async (p) => cacheKey(await fingerprintFile(p))));
    for (let i = 0; i < paths.length; i++) expect(after[i], paths[i]).not.toBe(before[i]);
  });

  it('marks a missing shard an index names', async () => {
    const dir = await folder('missing');
    await writeFile(join(dir, INDEX), JSON.stringify({ weight_map: { a: SHARDS[0], b: 'gone.safetensors' } }));
    const fp = (await fingerprintFile(join(dir, INDEX)))!;
    expect(fp.parts!.find((p) => p.path.endsWith('gone.safetensors'))).toMatchObject({ size: -1 });
  });

  it('leaves a plain file as it was: path, size and mtime only', async () => {
    const file = tmp.path('plain.safetensors');
    await writeFile(file, 'xyz');
    expect(Object.keys((await fingerprintFile(file))!).sort()).toEqual(['mtimeMs', 'path', 'size']);
  });

  it('drops a cached output whose folder had a shard rewritten', async () => {
    const dir = await folder('written');
    const cache = new RunCache();
    cache.set('k', { nodeType: 'save-model', outputs: {}, summary: null, written: [(await fingerprintFile(dir))!] });
    expect(await cache.lookup('k')).toBeDefined();
    await rewriteShard(dir, SHARDS[0]!);
    expect(await cache.lookup('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});
