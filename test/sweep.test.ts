/**
 * Sweeps (`loraflow run RECIPE --sweep …`): expansion (product order, lists inside values, sweep
 * files, templates, globs) and real runs of a merge recipe, each point's output checked by value
 * (ΔW = w₀·ΔW_a + w₁·ΔW_b against a float64 reference), a failing point reported while the others
 * finish, shared upstream nodes computed once, and sweeps refused before anything runs when two
 * points would write one file; and the server's sweep submissions (in-process queue).
 */
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRecipeFile } from '../src/graph/recipe.ts';
import { expandGlob } from '../src/graph/sweep-glob.ts';
import { planSweep } from '../src/graph/sweep-plan.ts';
import { runSweep } from '../src/graph/sweep-run.ts';
import { SweepError, expandSweep, fillTemplate, parseSweepArg, splitList, sweepFilePoints, templateValue } from '../src/graph/sweep.ts';
import type { RunEvent } from '../src/graph/events.ts';
import { registry } from '../nodes/index.ts';
import { cli } from './helpers/cli.ts';
import { startTestServer, testRecipe, type TestServer } from './helpers/server-harness.ts';
import { writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { compareDeltas, type TargetDelta } from '../src/samples/reference-delta.ts';
import { exists } from './helpers/files.ts';
import { deltasOf } from './helpers/lora.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { weightedSum } from './ops-fixtures.ts';

const GRAPH = fileURLToPath(new URL('../graphs/merge-aitoolkit-kohya.json', import.meta.url));
const tmp = useTempDir('loraflow-sweep-');
const home = process.cwd();
/** Sweeps are domain-free: a few FLUX blocks keep the merges fast; the key names are the real ones. */
const FEW = { double: 2, single: 3 };
const delta = new Map<string, Map<string, TargetDelta>>();

beforeAll(async () => {
  await mkdir(tmp.path('loras'), { recursive: true });
  await mkdir(tmp.path('fixed'), { recursive: true });
  // Two LoRAs the glob finds (different layouts), one broken file it finds too, and a hidden staging-like file it must skip.
  await writeSampleLora(tmp.path('loras/x.safetensors'), { format: 'kohya', seed: 11, rank: 4, blocks: FEW });
  await writeSampleLora(tmp.path('loras/y.safetensors'), { format: 'aitoolkit', seed: 12, rank: 3, blocks: FEW });
  await writeFile(tmp.path('loras/broken.safetensors'), 'this is not a safetensors file');
  await writeFile(tmp.path('loras/.x.safetensors.123.abcdefabcdef.tmp'), 'staging');
  await writeSampleLora(tmp.path('fixed/b.safetensors'), { format: 'kohya', seed: 13, rank: 2, scale: 0.5, blocks: FEW });
  await copyFile(GRAPH, tmp.path('merge.json'));
  for (const f of ['loras/x.safetensors', 'loras/y.safetensors', 'fixed/b.safetensors']) delta.set(f, await deltasOf(tmp.path(f)));
  process.chdir(tmp.dir);
});
afterAll(() => {
  process.chdir(home);
});

/** The output's ΔW is w₀·ΔW(a) + w₁·ΔW(b) to f32 rounding. */
async function expectMerge(out: string, a: string, weights: [number, number]): Promise<void> {
  const want = weightedSum([delta.get(a)!, delta.get('fixed/b.safetensors')!], weights);
  const { maxRelError, worst } = compareDeltas(want, await deltasOf(tmp.path(out)));
  expect(maxRelError, `${out}: worst ${worst}`).toBeLessThan(1e-5);
}

/** The rows of the summary table, cells split on runs of two or more spaces. */
const tableRows = (stdout: string) =>
  stdout.trim().split('\n').slice(2).map((l) => l.split(/ {2,}/));

describe('sweep expansion', () => {
  it('splits values on commas outside brackets and quotes', () => {
    expect(splitList('0.5,1,[1,0.5],{"a":[1,2]},"x,y"')).toEqual(['0.5', '1', '[1,0.5]', '{"a":[1,2]}', '"x,y"']);
    expect(parseSweepArg('weights=[1,0.5],[0.5,1]')).toEqual({ name: 'weights', values: ['[1,0.5]', '[0.5,1]'] });
    expect(() => parseSweepArg('w=1,,2')).toThrow(/empty value/);
    expect(() => parseSweepArg('=1')).toThrow(SweepError);
  });

  it('is a cartesian product with the first axis slowest, combined with every sweep-file set', () => {
    const points = expandSweep(
      { base: { rank: '8' }, axes: [{ name: 'a', values: ['p', 'q'] }, { name: 'w', values: ['1', '2', '3'] }], points: [{ m: 'x' }, { m: 'y' }] },
      { name: 'r' },
    );
    expect(points).toHaveLength(12);
    expect(points.slice(0, 4).map((p) => p.label)).toEqual(['m=x a=p w=1', 'm=x a=p w=2', 'm=x a=p w=3', 'm=x a=q w=1']);
    expect(points[11]!.overrides).toEqual({ rank: '8', m: 'y', a: 'q', w: '3' });
    expect(points.map((p) => p.index)).toEqual([...Array(12).keys()].map((i) => i + 1));
  });

  it('fills templates: values by name, a file by its stem, lists joined, {{ }} literal, unknown names refused', () => {
    expect(templateValue('loras/sub/x.v2.safetensors', true)).toBe('x.v2');
    expect(templateValue('[1,0.5]')).toBe('1_0.5');
    expect(templateValue([0.25, -1])).toBe('0.25_-1');
    expect(templateValue('a/b')).toBe('a_b');
    expect(fillTemplate('out/{{x}}-{a}.st', { a: '1' })).toBe('out/{x}-1.st');
    expect(() => fillTemplate('out/{nope}.st', { a: '1' })).toThrow(/no value for \{nope\}; known: \{a\}/);
    const points = expandSweep(
      { axes: [{ name: 'a', values: ['loras/x.safetensors', 'loras/y.safetensors'] }, { name: 'w', values: ['[1,0.5]'] }], templates: { output: 'out/{name}-{index}-{a}-{w}.safetensors' } },
      { name: 'merge', pathNames: new Set(['a', 'output']) },
    );
    expect(points.map((p) => p.overrides.output)).toEqual(['out/merge-1-x-1_0.5.safetensors', 'out/merge-2-y-1_0.5.safetensors']);
  });

  it('reads sweep files as a list or { points: [...] }', () => {
    expect(sweepFilePoints([{ w: 1 }, { w: 2 }])).toEqual([{ w: 1 }, { w: 2 }]);
    expect(sweepFilePoints({ points: [{ w: 1 }] })).toEqual([{ w: 1 }]);
    expect(() => sweepFilePoints([])).toThrow(/non-empty list/);
    expect(() => sweepFilePoints([1])).toThrow(/entry 1 is not an object/);
  });

  it('globs files under a root, skipping hidden (staging) files, with ** for any depth', async () => {
    expect(await expandGlob('loras/*.safetensors', tmp.dir)).toEqual(['loras/broken.safetensors', 'loras/x.safetensors', 'loras/y.safetensors']);
    expect(await expandGlob('*/[xb].safetensors', tmp.dir)).toEqual(['fixed/b.safetensors', 'loras/x.safetensors']);
    expect(await expandGlob('**/b.safetensors', tmp.dir)).toEqual(['fixed/b.safetensors']);
    expect(await expandGlob('loras/*.ckpt', tmp.dir)).toEqual([]);
  });

  it('plans against the recipe: globs over the param root, a derived name per point for an exposed output, unknown names refused', async () => {
    const recipe = await readRecipeFile('merge.json');
    const plan = await planSweep(recipe, { axes: [parseSweepArg('a=loras/[xy].safetensors'), parseSweepArg('weights=[1,1],[2,0]')] }, { registry, name: 'merge', cwd: tmp.dir });
    expect(plan.templates).toEqual({ output: 'out/flux-merged-{a}-{weights}.safetensors' });
    expect(plan.points.map((p) => p.overrides)).toEqual([
      { a: 'loras/x.safetensors', weights: '[1,1]', output: 'out/flux-merged-x-1_1.safetensors' },
      { a: 'loras/x.safetensors', weights: '[2,0]', output: 'out/flux-merged-x-2_0.safetensors' },
      { a: 'loras/y.safetensors', weights: '[1,1]', output: 'out/flux-merged-y-1_1.safetensors' },
      { a: 'loras/y.safetensors', weights: '[2,0]', output: 'out/flux-merged-y-2_0.safetensors' },
    ]);
    await expect(planSweep(recipe, { axes: [parseSweepArg('strength=1,2')] }, { registry, name: 'merge', cwd: tmp.dir })).rejects.toThrow(/"strength" is not exposed by the recipe \(it exposes: a, b, method, output, rank, weights\)/);
    await expect(planSweep(recipe, { axes: [parseSweepArg('a=nothing/*.safetensors')] }, { registry, name: 'merge', cwd: tmp.dir })).rejects.toThrow(/no file matches under the loras root/);
  });
});

describe('loraflow run --sweep', () => {
  it('runs every point with its own output (ΔW by value per point); a failing point is reported and the others finish', async () => {
    const r = await cli(
      'run', 'merge.json',
      '--set', 'b=fixed/b.safetensors',
      '--sweep', 'a=loras/*.safetensors',
      '--sweep', 'weights=[1,0.5],[0.25,-2]',
      '--template', 'output=out/{name}-{a}-{weights}.safetensors',
    );
    expect(r.code, r.stderr).toBe(1);
    const rows = tableRows(r.stdout);
    expect(r.stdout.split('\n')[0]).toMatch(/^point +values +status +outputs +seconds +error$/);
    expect(rows.map((c) => [c[0], c[1], c[2]])).toEqual([
      ['1', 'a=loras/broken.safetensors weights=[1,0.5]', 'error'],
      ['2', 'a=loras/broken.safetensors weights=[0.25,-2]', 'error'],
      ['3', 'a=loras/x.safetensors weights=[1,0.5]', 'success'],
      ['4', 'a=loras/x.safetensors weights=[0.25,-2]', 'success'],
      ['5', 'a=loras/y.safetensors weights=[1,0.5]', 'success'],
      ['6', 'a=loras/y.safetensors weights=[0.25,-2]', 'success'],
    ]);
    // The error names the node and the file; the seconds column is a number.
    expect(rows[0]![5]).toMatch(/node "aitoolkit" \(load-lora\): .*broken/);
    for (const row of rows) expect(Number(row[4])).toBeGreaterThanOrEqual(0);
    expect(rows[2]![3]).toBe('out/merge-x-1_0.5.safetensors');
    expect(r.stderr).toMatch(/point 6\/6: a=loras\/y.safetensors weights=\[0.25,-2\]/);
    expect(r.stderr).toMatch(/6 point\(s\) in [\d.]+ s; 2 failed/);

    await expectMerge('out/merge-x-1_0.5.safetensors', 'loras/x.safetensors', [1, 0.5]);
    await expectMerge('out/merge-x-0.25_-2.safetensors', 'loras/x.safetensors', [0.25, -2]);
    await expectMerge('out/merge-y-1_0.5.safetensors', 'loras/y.safetensors', [1, 0.5]);
    await expectMerge('out/merge-y-0.25_-2.safetensors', 'loras/y.safetensors', [0.25, -2]);
    // Failed points wrote nothing, not even under a staging name.
    expect((await readdir(tmp.path('out'))).filter((f) => f.includes('broken') || f.startsWith('.'))).toEqual([]);
  });

  it('runs a YAML sweep file; an exposed output without a template gets the values every point sets in its name', async () => {
    await writeFile(tmp.path('points.yaml'), '- weights: [1, 1]\n- weights: [2, 0]\n  method: concat\n');
    const r = await cli('run', 'merge.json', '--set', 'a=loras/y.safetensors', '--set', 'b=fixed/b.safetensors', '--sweep-file', 'points.yaml');
    expect(r.code, r.stderr).toBe(0);
    expect(tableRows(r.stdout).map((c) => [c[1], c[2], c[3]])).toEqual([
      ['weights=[1,1]', 'success', 'out/flux-merged-1_1.safetensors'],
      ['weights=[2,0] method=concat', 'success', 'out/flux-merged-2_0.safetensors'],
    ]);
    await expectMerge('out/flux-merged-1_1.safetensors', 'loras/y.safetensors', [1, 1]);
    await expectMerge('out/flux-merged-2_0.safetensors', 'loras/y.safetensors', [2, 0]);
  });

  it('refuses, before running anything, a sweep whose points would write one file (exit 2)', async () => {
    const r = await cli('run', 'merge.json', '--set', 'a=loras/x.safetensors', '--set', 'b=fixed/b.safetensors', '--sweep', 'weights=[1,1],[1,2]', '--template', 'output=out/same.safetensors');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/points 1 and 2 both write .*out\/same\.safetensors/);
    expect(await exists(tmp.path('out/same.safetensors'))).toBe(false);
    const t = await cli('run', 'merge.json', '--template', 'output=out/x.safetensors');
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/--template names the outputs of a sweep/);
  });

  it('computes upstream results shared by points once (the loads before a merge swept over weights)', async () => {
    const recipe = await readRecipeFile('merge.json');
    const plan = await planSweep(
      recipe,
      { base: { a: 'loras/x.safetensors', b: 'fixed/b.safetensors' }, axes: [parseSweepArg('weights=[1,0],[0,1],[3,3]')], templates: { output: 'out/shared-{index}.safetensors' } },
      { registry, name: 'merge', cwd: tmp.dir },
    );
    const started: string[] = [];
    const result = await runSweep(recipe, plan.points, { registry, onEvent: (e: RunEvent, p) => void (e.type === 'node.start' && started.push(`${p.index}:${e.nodeId}`)) });
    expect(result.failed).toBe(0);
    expect(started).toEqual(['1:aitoolkit', '1:kohya', '1:merge', '1:save', '2:merge', '2:save', '3:merge', '3:save']);
    expect(result.points.map((p) => p.cached)).toEqual([[], ['aitoolkit', 'kohya'], ['aitoolkit', 'kohya']]);
    await expectMerge('out/shared-1.safetensors', 'loras/x.safetensors', [1, 0]);
    await expectMerge('out/shared-3.safetensors', 'loras/x.safetensors', [3, 3]);
  });
});

describe('POST /api/sweeps on a server without a queue', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    await writeFile(join(server.loras, 'three.txt'), '3');
  });
  afterAll(async () => {
    await server?.close();
  });

  /** read(3) → add(·k) → write: 3·k per point. */
  const recipe = testRecipe(
    {
      read: { type: 'test.read', v: '1.0.0', params: { path: 'three.txt' } },
      add: { type: 'test.add', v: '2.1.0', in: { a: 'read.value' }, params: { scale: 1 } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'add.sum' }, params: { path: 'p.json' } },
    },
    { expose: { k: 'add.params.scale', out: 'save.params.path' } },
  );

  it('queues one run per point, run in order through the engine cache (shared upstream once); outputs by value', async () => {
    const r = await server.post('/api/sweeps', { recipe, axes: { k: '2,5' } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.templates).toEqual({ out: 'p-{k}.json' });
    expect(r.body.runs.map((x: { overrides: unknown }) => x.overrides)).toEqual([{ k: '2', out: 'p-2.json' }, { k: '5', out: 'p-5.json' }]);
    const [first, second] = await Promise.all(r.body.runs.map((x: { runId: string }) => server.waitForRun(x.runId)));
    expect([first.status, second.status]).toEqual(['success', 'success']);
    expect([first.worker, second.sweep]).toEqual(['in-process', { id: r.body.sweepId, index: 2, total: 2, label: 'k=5' }]);
    expect(second.result.cached).toEqual(['read']);
    const value = async (f: string) => (JSON.parse(await readFile(join(server.output, f), 'utf8')) as { value: number }).value;
    expect([await value('p-2.json'), await value('p-5.json')]).toEqual([6, 15]);
    const status = await server.get(`/api/sweeps/${r.body.sweepId}`);
    expect(status.body).toMatchObject({ total: 2, done: 2, failed: 0 });
  });

  it('refuses, with nothing queued, a name the recipe does not expose, an invalid point, and points writing one file', async () => {
    const before = (await server.get('/api/runs')).body.total;
    const unknown = await server.post('/api/sweeps', { recipe, axes: { nope: [1] } });
    expect([unknown.status, unknown.body.error.code]).toEqual([400, 'invalid_sweep']);
    expect(unknown.body.error.message).toMatch(/"nope" is not exposed by the recipe \(it exposes: k, out\)/);
    const invalid = await server.post('/api/sweeps', { recipe, axes: { k: [1, 'x'] } });
    expect([invalid.status, invalid.body.error.code, invalid.body.error.details.point]).toEqual([400, 'invalid_recipe', 2]);
    const same = await server.post('/api/sweeps', { recipe, axes: { k: [1, 2] }, templates: { out: 'same.json' } });
    expect(same.status).toBe(400);
    expect(same.body.error.message).toMatch(/points 1 and 2 both write/);
    expect((await server.get('/api/runs')).body.total).toBe(before);
  });
});
