/**
 * The server and the user's own roots: the output root is made at start; the file listing names
 * each file's format and family from its header (cached per file version); the examples' sample
 * files are written on request into `samples/` of the input roots, after which the examples
 * validate; an inspect answers with the file's root-relative name, also for a file a run wrote.
 */
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRAPHS_DIR } from '../server/static.ts';
import { ModelCatalog } from '../server/model-catalog.ts';
import { startTestServer, type TestServer } from './helpers/server-harness.ts';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ nodes: 'real', roots: { loras: 'my-loras', checkpoints: 'my-models', output: 'not/yet/here' }, examplesDir: GRAPHS_DIR });
}, 60_000);
afterAll(async () => {
  await t?.close();
});

const example = async (name: string) => JSON.parse(await readFile(path.join(GRAPHS_DIR, `${name}.json`), 'utf8'));

describe('roots the user started the server with', () => {
  it('makes the output root at start, so it lists (empty) before any run', async () => {
    expect((await stat(path.join(t.dir, 'not/yet/here'))).isDirectory()).toBe(true);
    const r = await t.get('/api/files?root=output');
    expect(r.status).toBe(200);
    expect(r.body.entries).toEqual([]);
    // an input root whose folder is not there yet lists as empty, said so
    expect((await t.get('/api/models?root=loras')).body).toEqual({ root: 'loras', entries: [], truncated: false, missing: true });
  });

  it('writes the sample files into samples/ of the input roots on request; the examples then validate', async () => {
    const recipe = await example('merge-aitoolkit-kohya');
    const before = await t.post('/api/recipe/validate', { recipe });
    expect(before.body.problems.map((p: { nodeId: string; code: string }) => `${p.nodeId}:${p.code}`).sort()).toEqual(['aitoolkit:file_not_found', 'kohya:file_not_found']);
    const r = await t.post('/api/samples', {});
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.written.map((w: { root: string }) => w.root)).toEqual(['checkpoints', 'loras']);
    for (const w of r.body.written) {
      expect(w.dir).toBe('samples');
      expect(w.files).toEqual(expect.arrayContaining(['samples/flux-kohya-lora.safetensors', 'samples/flux-base.safetensors']));
    }
    const a = await readFile(path.join(t.dir, 'my-loras/samples/flux-kohya-lora.safetensors'));
    const b = await readFile(path.join(t.dir, 'my-models/samples/flux-kohya-lora.safetensors'));
    expect(a.equals(b)).toBe(true);
    for (const name of ['merge-aitoolkit-kohya', 'merge-into-checkpoint', 'extract-and-resize']) {
      const v = await t.post('/api/recipe/validate', { recipe: await example(name) });
      expect(v.body.problems, name).toEqual([]);
    }
    // no hidden temp folder is left in the roots
    expect((await readdir(path.join(t.dir, 'my-loras'))).sort()).toEqual(['samples']);
    const bad = await t.post('/api/samples', { roots: ['nope'] });
    expect(bad.status).toBe(404);
    expect(bad.body.error.code).toBe('unknown_root');
  }, 120_000);

  it('lists each file of a root with its format and family, from the header', async () => {
    await writeFile(path.join(t.dir, 'my-loras', 'broken.safetensors'), 'not a header');
    const r = await t.get('/api/models?root=loras');
    expect(r.status).toBe(200);
    const by = Object.fromEntries(r.body.entries.map((e: { path: string }) => [e.path, e]));
    expect(by['samples/flux-kohya-lora.safetensors']).toMatchObject({ kind: 'lora', format: 'kohya', architecture: 'flux', info: 'kohya · flux' });
    expect(by['samples/flux-aitoolkit-lora.safetensors']).toMatchObject({ kind: 'lora', format: 'diffusers', architecture: 'flux', info: 'diffusers · flux' });
    expect(by['samples/sdxl-kohya-lora.safetensors']).toMatchObject({ kind: 'lora', format: 'kohya', architecture: 'sdxl', info: 'kohya · sdxl' });
    expect(by['samples/flux-base.safetensors']).toMatchObject({ kind: 'checkpoint', architecture: 'flux', info: 'checkpoint · flux' });
    expect(by['broken.safetensors'].info).toMatch(/^unreadable: /);
    expect(by['broken.safetensors'].error).not.toContain(t.dir);
    expect((await t.get('/api/models?root=nope')).status).toBe(404);
  });

  it('inspect names the file by root and root-relative path, also when asked by the absolute path a run wrote', async () => {
    const byRoot = await t.get('/api/inspect?root=loras&path=samples/flux-kohya-lora.safetensors&limit=0');
    expect(byRoot.body).toMatchObject({ root: 'loras', path: 'samples/flux-kohya-lora.safetensors', name: 'loras/samples/flux-kohya-lora.safetensors', file: 'samples/flux-kohya-lora.safetensors' });
    const abs = path.join(t.dir, 'my-models', 'samples', 'flux-base.safetensors');
    const written = await t.get(`/api/inspect?written=${encodeURIComponent(abs)}&limit=0`);
    expect(written.status).toBe(200);
    expect(written.body).toMatchObject({ root: 'checkpoints', path: 'samples/flux-base.safetensors', name: 'checkpoints/samples/flux-base.safetensors' });
    expect(JSON.stringify(written.body)).not.toContain(t.dir);
    const outside = await t.get(`/api/inspect?written=${encodeURIComponent('/etc/passwd')}`);
    expect(outside.status).toBe(403);
    expect(outside.body.error.message).toBe('passwd is not inside any root (checkpoints, loras, output)');
    expect((await t.get('/api/inspect?written=relative/x.safetensors')).status).toBe(400);
    expect((await t.get('/api/inspect?root=loras')).status).toBe(400);
  });
});

describe('ModelCatalog', () => {
  it('reads a header once per file version: again after the file changes size or time', async () => {
    const catalog = new ModelCatalog({ loras: path.join(t.dir, 'my-loras') });
    const first = await catalog.list('loras');
    const reads = catalog.reads;
    expect(reads).toBe(first.entries.length);
    await catalog.list('loras');
    expect(catalog.reads).toBe(reads);
    const f = path.join(t.dir, 'my-loras', 'samples', 'flux-kohya-lora.safetensors');
    const later = new Date(Date.now() + 5000);
    await utimes(f, later, later);
    await catalog.list('loras');
    expect(catalog.reads).toBe(reads + 1);
    await writeFile(path.join(t.dir, 'my-loras', 'broken.safetensors'), await readFile(path.join(t.dir, 'my-loras', 'samples', 'sdxl-kohya-lora.safetensors')));
    const after = await catalog.list('loras');
    expect(catalog.reads).toBe(reads + 2);
    expect(after.entries.find((e) => e.path === 'broken.safetensors')).toMatchObject({ kind: 'lora', architecture: 'sdxl' });
  });
});
