import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProblems, recipeToJson } from '../src/graph/index.ts';
import { writeSafetensors } from '../src/safetensors/index.ts';
import { writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { startTestServer, testRecipe, type TestServer } from './helpers/server-harness.ts';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
  await writeFile(path.join(t.loras, 'three.txt'), '3');
});
afterAll(async () => {
  await t.close();
});

/** read(3) → slow(steps) → write(path): the output file holds 3. */
const chain = (out: string, steps = 2, extra: Record<string, unknown> = {}) =>
  testRecipe(
    {
      read: { type: 'test.read', v: '1.0.0', params: { path: 'three.txt' } },
      slow: { type: 'test.slow', v: '1.0.0', in: { x: 'read.value' }, params: { steps } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'slow.y' }, params: { path: out } },
    },
    extra,
  );

const outputValue = async (rel: string) => (JSON.parse(await readFile(path.join(t.output, rel), 'utf8')) as { value: number }).value;

describe('GET /api/nodes', () => {
  it('lists every node type with its ports and params as JSON Schema', async () => {
    const r = await t.get('/api/nodes');
    expect(r.status).toBe(200);
    expect(Object.keys(r.body)).toContain('test.write');
    const write = r.body['test.write'];
    expect(write.output).toBe(true);
    expect(write.inputs.value).toEqual({ type: 'NUM', optional: false, list: false });
    expect(write.paramsSchema.properties.path['x-path']).toEqual({ kind: 'output', mode: 'write' });
    expect(write.paramOrder).toEqual(['path', 'delayMs']);
    expect(r.body['test.const'].paramsSchema.properties.value).toMatchObject({ type: 'integer', minimum: -1000, maximum: 1000, default: 1 });
  });
});

describe('recipes', () => {
  const recipe = chain('saved.json', 1, { meta: { name: 'Saved chain', description: 'three, slowly' }, ui: { nodes: { read: { pos: [10, 20] } } } });

  it('saves in canonical form, lists, reads back and deletes', async () => {
    const put = await t.request('PUT', '/api/recipes/my-chain', { recipe });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ name: 'my-chain', file: 'my-chain.json', ok: true, problems: [] });
    expect(await readFile(path.join(t.recipes, 'my-chain.json'), 'utf8')).toBe(recipeToJson(recipe));

    const list = await t.get('/api/recipes');
    expect(list.body.recipes).toEqual([expect.objectContaining({ name: 'my-chain', title: 'Saved chain', description: 'three, slowly' })]);

    const got = await t.get('/api/recipes/my-chain');
    expect(got.body.recipe).toEqual(JSON.parse(recipeToJson(recipe)));

    expect((await t.request('DELETE', '/api/recipes/my-chain')).body).toEqual({ deleted: 'my-chain' });
    expect((await t.get('/api/recipes/my-chain')).status).toBe(404);
    expect(await readdir(t.recipes)).toEqual([]);
  });

  it('saves a recipe that would not run yet, and says why', async () => {
    const broken = testRecipe({ x: { type: 'test.add', v: '2.1.0' } });
    const r = await t.request('PUT', '/api/recipes/wip', { recipe: broken });
    expect(r.status).toBe(200);
    expect(r.body.ok).toBe(false);
    expect(r.body.problems).toContainEqual(expect.objectContaining({ code: 'missing_input', nodeId: 'x', input: 'a' }));
    await t.request('DELETE', '/api/recipes/wip');
  });

  it('refuses documents that are not recipes, and bad names', async () => {
    const notRecipe = await t.request('PUT', '/api/recipes/x', { recipe: { nodes: [], links: [] } });
    expect(notRecipe.status).toBe(400);
    expect(notRecipe.body.error.code).toBe('invalid_recipe');
    for (const name of ['%2E%2E', '.hidden', 'a..b', 'a%2Fb', 'a%5Cb', '%2E%2E%2Fescape', 'x'.repeat(101)]) {
      const r = await t.raw('PUT', `/api/recipes/${name}`, { body: JSON.stringify({ recipe }), headers: { 'Content-Type': 'application/json' } });
      expect(r.status, name).toBe(400);
      expect(r.body.error.code, name).toBe('bad_recipe_name');
    }
    expect((await t.get('/api/recipes/nope')).body.error.code).toBe('unknown_recipe');
  });

  it('serves the examples read-only, YAML included', async () => {
    await writeFile(path.join(t.examples, 'yaml-chain.yaml'), 'format: loraflow.recipe\nschemaVersion: 1\nmeta: { name: From YAML }\nnodes:\n  one: { type: test.const, v: 1.0.0 }\n');
    const list = await t.get('/api/examples');
    expect(list.body.recipes).toEqual([expect.objectContaining({ name: 'yaml-chain', file: 'yaml-chain.yaml', title: 'From YAML' })]);
    const got = await t.get('/api/examples/yaml-chain');
    expect(got.body.recipe.nodes.one).toEqual({ type: 'test.const', v: '1.0.0' });
    expect((await t.request('PUT', '/api/examples/yaml-chain', { recipe })).status).toBe(404);
  });

  it('parses JSON and YAML text, and exports canonical JSON and YAML', async () => {
    const parsed = await t.post('/api/recipe/parse', { text: 'format: loraflow.recipe\nschemaVersion: 1\nnodes: { a: { type: test.const, v: 1.0.0, params: { value: 5 } } }\n' });
    expect(parsed.body.recipe.nodes.a.params).toEqual({ value: 5 });
    const bad = await t.post('/api/recipe/parse', { text: '{ "format": ' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('recipe_parse_error');

    const json = await t.post('/api/recipe/export', { recipe, format: 'json' });
    expect(json.body.text).toBe(recipeToJson(recipe));
    const yaml = await t.post('/api/recipe/export', { recipe, format: 'yaml' });
    const back = await t.post('/api/recipe/parse', { text: yaml.body.text, source: 'x.yaml' });
    expect(recipeToJson(back.body.recipe)).toBe(recipeToJson(recipe));
  });
});

describe('runs', () => {
  it('runs a recipe in the worker and keeps status, ordered events and outputs', async () => {
    const post = await t.post('/api/runs', { recipe: chain('run1.json') });
    expect(post.status).toBe(202);
    const run = await t.waitForRun(post.body.runId);
    expect(run.status).toBe('success');
    expect(await outputValue('run1.json')).toBe(3);
    expect(run.result.written).toEqual([path.join(t.output, 'run1.json')]);
    expect(run.result.outputs).toEqual({ save: { path: 'run1.json', value: 3 } });
    const types = run.events.map((e: { type: string }) => e.type).filter((x: string) => x !== 'node.progress' && x !== 'node.log');
    expect(types).toEqual(['run.queued', 'run.start', 'node.start', 'node.done', 'node.start', 'node.done', 'node.start', 'node.done', 'run.success']);
    const seqs = run.events.map((e: { seq: number }) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const e of run.events) expect(e.runId).toBe(run.id);
  });

  it('refuses an invalid recipe with the per-node report the CLI prints', async () => {
    const bad = testRecipe({
      c: { type: 'test.const', v: '1.0.0', params: { value: 5000 } },
      w: { type: 'test.write', v: '1.0.0', in: { value: 'c.nope' }, params: { path: 'x.json' } },
      u: { type: 'no.such', v: '1.0.0' },
    });
    const r = await t.post('/api/runs', { recipe: bad });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_recipe');
    const problems = r.body.error.details.problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: 'bad_param', nodeId: 'c', param: 'value' }),
        expect.objectContaining({ code: 'link_to_missing_output', nodeId: 'w', input: 'value' }),
        expect.objectContaining({ code: 'unknown_node_type', nodeId: 'u', nodeType: 'no.such' }),
      ]),
    );
    expect(r.body.error.message).toBe(formatProblems(problems));
    expect((await t.get('/api/runs')).body.runs.every((x: { status: string }) => x.status !== 'queued')).toBe(true);
  });

  it('applies overrides to exposed params, and runs saved recipes by name', async () => {
    const doc = chain('over.json', 1, { expose: { where: 'save.params.path' } });
    const r = await t.post('/api/runs', { recipe: doc, overrides: { where: 'over-2.json' } });
    expect((await t.waitForRun(r.body.runId)).status).toBe('success');
    expect(await outputValue('over-2.json')).toBe(3);
    await expect(stat(path.join(t.output, 'over.json'))).rejects.toThrow();

    const unknown = await t.post('/api/runs', { recipe: doc, overrides: { nope: 1 } });
    expect(unknown.body.error.details.problems).toEqual([expect.objectContaining({ code: 'unknown_override', expose: 'nope' })]);

    await t.request('PUT', '/api/recipes/by-name', { recipe: chain('by-name.json', 1) });
    const byName = await t.post('/api/runs', { recipeName: 'by-name' });
    expect((await t.waitForRun(byName.body.runId)).status).toBe('success');
    expect(await outputValue('by-name.json')).toBe(3);
    expect((await t.post('/api/runs', { recipeName: 'missing' })).status).toBe(404);
    expect((await t.post('/api/runs', {})).body.error.code).toBe('invalid_body');
  });

  it('cancels the running run (no output left) and a queued one (never starts)', async () => {
    const slow = await t.post('/api/runs', { recipe: chain('cancelled.json', 500) });
    const queued = await t.post('/api/runs', { recipe: chain('never.json', 1) });
    expect(queued.body.status).toBe('queued');
    // Wait until the slow node reports progress, so the cancel lands inside it.
    for (let i = 0; i < 400; i++) {
      const r = await t.get(`/api/runs/${slow.body.runId}`);
      if (r.body.events.some((e: { type: string }) => e.type === 'node.progress')) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    const c2 = await t.post(`/api/runs/${queued.body.runId}/cancel`);
    expect(c2.body.status).toBe('cancelled');
    const c1 = await t.post(`/api/runs/${slow.body.runId}/cancel`);
    expect(c1.status).toBe(202);

    const r1 = await t.waitForRun(slow.body.runId);
    expect(r1.status).toBe('cancelled');
    expect(r1.events.at(-1)).toMatchObject({ type: 'run.cancelled', nodeId: 'slow' });
    const r2 = await t.waitForRun(queued.body.runId);
    expect(r2.status).toBe('cancelled');
    expect(r2.events.map((e: { type: string }) => e.type)).toEqual(['run.queued', 'run.cancelled']);
    expect(await readdir(t.output)).not.toContain('cancelled.json');
    expect(await readdir(t.output)).not.toContain('never.json');

    const again = await t.post(`/api/runs/${slow.body.runId}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('run_finished');
    expect((await t.post('/api/runs/not-a-run/cancel')).status).toBe(404);
  });

  it('reports a failing node by id with the error message', async () => {
    const doc = testRecipe({
      one: { type: 'test.const', v: '1.0.0' },
      boom: { type: 'test.fail', v: '1.0.0', in: { x: 'one.value' }, params: { message: 'kaput' } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'boom.y' }, params: { path: 'fail.json' } },
    });
    const run = await t.waitForRun((await t.post('/api/runs', { recipe: doc })).body.runId);
    expect(run.status).toBe('error');
    expect(run.error).toMatchObject({ nodeId: 'boom', message: 'kaput' });
    expect(run.events.at(-1)).toMatchObject({ type: 'run.error', nodeId: 'boom', nodeType: 'test.fail', message: 'kaput', executed: ['one'] });
  });

  it('lists runs newest first, with summaries', async () => {
    const r = await t.get('/api/runs?limit=2');
    expect(r.body.runs).toHaveLength(2);
    expect(r.body.total).toBeGreaterThanOrEqual(5);
    expect(r.body.runs[0].createdAt >= r.body.runs[1].createdAt).toBe(true);
    expect(r.body.runs[0]).not.toHaveProperty('events');
    expect(r.body.runs[0].eventCount).toBeGreaterThan(0);
    expect((await t.get('/api/runs?limit=0')).body.error.code).toBe('invalid_query');
  });
});

describe('files and inspection', () => {
  it('lists a root, a sub-folder, recursively and by extension', async () => {
    await mkdir(path.join(t.loras, 'sub'));
    await writeSampleLora(path.join(t.loras, 'sub', 'kohya.safetensors'), { format: 'kohya', rank: 2, blocks: { double: 1, single: 1 } });
    const top = await t.get('/api/files?root=loras');
    expect(top.body.entries.map((e: { name: string; type: string }) => `${e.type}:${e.name}`)).toEqual(['dir:sub', 'file:three.txt']);
    const sub = await t.get('/api/files?root=loras&path=sub');
    expect(sub.body.entries).toEqual([expect.objectContaining({ name: 'kohya.safetensors', path: 'sub/kohya.safetensors', type: 'file' })]);
    const rec = await t.get('/api/files?root=loras&recursive=1&ext=safetensors');
    expect(rec.body.entries.map((e: { path: string }) => e.path)).toEqual(['sub/kohya.safetensors']);
    expect((await t.get('/api/files?root=nope')).body.error.code).toBe('unknown_root');
    expect((await t.get('/api/files?root=loras&path=three.txt')).body.error.code).toBe('not_a_directory');
    const roots = await t.get('/api/roots');
    expect(roots.body.roots).toEqual([{ name: 'loras', dir: t.loras }, { name: 'output', dir: t.output }]);
  });

  it('inspects a safetensors header with the detected format', async () => {
    const r = await t.get('/api/inspect?root=loras&path=sub/kohya.safetensors');
    expect(r.status).toBe(200);
    expect(r.body.path).toBe('sub/kohya.safetensors');
    expect(r.body.tensorCount).toBeGreaterThan(0);
    expect(r.body.detection.format).toBe('kohya');
    expect(r.body.detection.architecture).toBe('flux');
    // Alpha values come from the file's 0-d tensors, the same report `loraflow inspect --json` gives.
    const alphas = Object.values(r.body.detection.alphas as Record<string, number>);
    expect(alphas.length).toBe(r.body.detection.modules.length);
    expect(alphas.every((a) => typeof a === 'number' && Number.isFinite(a))).toBe(true);
    expect(JSON.stringify(r.body)).not.toContain(t.dir);

    const notSt = await t.get('/api/inspect?root=loras&path=three.txt');
    expect(notSt.status).toBe(422);
    expect(notSt.body.error.message).toContain('loras/three.txt');
    expect((await t.get('/api/inspect?root=loras&path=missing.safetensors')).status).toBe(404);
  });
});

describe('POST /api/recipe-from-file', () => {
  const stored = chain('from-file.json', 1, { expose: { where: 'save.params.path' } });
  const provenance = JSON.stringify({ recipe: stored, overrides: { where: 'other.json' }, version: '0.1.0', node: 'save' });
  let file: Uint8Array;
  beforeAll(async () => {
    const p = path.join(t.dir, 'with-recipe.safetensors');
    await writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [2], data: new Uint8Array(8) }], { metadata: { 'loraflow.recipe': provenance, other: 'x' } });
    file = new Uint8Array(await readFile(p));
  });

  it('recovers the recipe, with the run overrides folded into the params', async () => {
    for (const body of [file, file.subarray(0, 8 + Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true)))]) {
      const r = await t.post('/api/recipe-from-file?name=with-recipe.safetensors', body);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ file: 'with-recipe.safetensors', overrides: { where: 'other.json' }, version: '0.1.0', nodeId: 'save' });
      expect(r.body.recipe.nodes.save.params.path).toBe('other.json');
      expect(r.body.recipe.nodes.read).toEqual(stored.nodes.read);
    }
  });

  it('answers from the header without waiting for the rest of a big upload', async () => {
    const headerLen = 8 + Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: t.server.port, method: 'POST', path: '/api/recipe-from-file?name=big.safetensors', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(headerLen + 1e9) } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', (e) => (e.message.includes('EPIPE') || e.message.includes('ECONNRESET') ? undefined : reject(e)));
      // The header, then a first megabyte of the announced gigabyte; the rest never comes.
      req.write(file.subarray(0, headerLen));
      req.write(new Uint8Array(1 << 20));
    });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body).recipe.nodes.save.params.path).toBe('other.json');
  });

  it('says clearly when there is no recipe or no safetensors', async () => {
    const p = path.join(t.dir, 'plain.safetensors');
    await writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [1], data: new Uint8Array(4) }], { metadata: { a: 'b' } });
    const none = await t.post('/api/recipe-from-file?name=plain.safetensors', new Uint8Array(await readFile(p)));
    expect(none.status).toBe(422);
    expect(none.body.error).toMatchObject({ code: 'no_recipe' });
    expect(none.body.error.message).toContain('plain.safetensors');

    const junk = await t.post('/api/recipe-from-file?name=junk.bin', new TextEncoder().encode('hello, this is not a tensor file'));
    expect(junk.status).toBe(413);
    const short = await t.post('/api/recipe-from-file', new Uint8Array([1, 2, 3]));
    expect(short.body.error.code).toBe('not_safetensors');
    const truncated = await t.post('/api/recipe-from-file', file.subarray(0, 20));
    expect(truncated.body.error.code).toBe('truncated_header');
  });
});
