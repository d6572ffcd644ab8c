import { mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunCache, runRecipe, type RunEvent, type RunOptions } from '../src/graph/index.ts';
import { disposed, registry, runCounts } from './graph-test-nodes.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loraflow-graph-'));
  runCounts.clear();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const recipe = (nodes: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ format: 'loraflow.recipe', schemaVersion: 1, nodes, ...extra });

/** const(2) and const(5) → add(a·3 + b) → write; the file should hold 11. */
const arithmetic = () =>
  recipe(
    {
      two: { type: 'test.const', v: '1.0.0', params: { value: 2 } },
      five: { type: 'test.const', v: '1.0.0', params: { value: 5 } },
      add: { type: 'test.add', v: '2.1.0', in: { a: 'two.value', b: 'five.value' }, params: { scale: 3 } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'add.sum' }, params: { path: 'out/result.json' } },
    },
    { expose: { a: 'two.params.value', scale: { path: 'add.params.scale', description: 'multiplier of a' }, where: 'save.params.path' }, ui: { nodes: { add: { pos: [1, 2] } } } },
  );

async function run(doc: unknown, opts: Partial<RunOptions> = {}) {
  const events: RunEvent[] = [];
  const result = await runRecipe(doc, { registry, cwd: dir, onEvent: (e) => events.push(e), progressIntervalMs: 0, ...opts });
  return { result, events };
}

const written = async (rel: string) => JSON.parse(await readFile(join(dir, rel), 'utf8')) as { value: number; provenance: { overrides: Record<string, unknown>; recipe: Record<string, unknown> } };

describe('running a recipe', () => {
  it('computes values through links and writes the output only at the end', async () => {
    const { result, events } = await run(arithmetic());
    expect(result.status).toBe('success');
    expect((await written('out/result.json')).value).toBe(2 * 3 + 5);
    expect(result.written).toEqual([join(dir, 'out/result.json')]);
    expect(result.outputs).toEqual({ save: { path: 'out/result.json', value: 11 } });
    expect(result.executed).toEqual(['five', 'two', 'add', 'save']);
    expect(events.map((e) => e.type)).toEqual([
      'run.start',
      ...['five', 'two', 'add', 'save'].flatMap(() => ['node.start', 'node.done']),
      'run.success',
    ]);
    // No staging files left beside the output.
    expect(await readdir(join(dir, 'out'))).toEqual(['result.json']);
  });

  it('stamps every event with run id, increasing seq and node id', async () => {
    const doc = recipe({
      one: { type: 'test.const', v: '1.0.0' },
      slow: { type: 'test.slow', v: '1.0.0', in: { x: 'one.value' }, params: { steps: 3 } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'slow.y' }, params: { path: 'x.json' } },
    });
    const { result, events } = await run(doc, { runId: 'run-42' });
    expect(result.status).toBe('success');
    expect(events.every((e) => e.runId === 'run-42')).toBe(true);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    for (const e of events) if (e.type.startsWith('node.')) expect(e).toHaveProperty('nodeId');
    const progress = events.filter((e) => e.type === 'node.progress');
    expect(progress.map((e) => (e.type === 'node.progress' ? [e.nodeId, e.value, e.max, e.label] : []))).toEqual([
      ['slow', 0, 3, 'step 0'], ['slow', 1, 3, 'step 1'], ['slow', 2, 3, 'step 2'], ['slow', 3, 3, 'step 3'],
    ]);
    const done = events.find((e) => e.type === 'node.done' && e.nodeId === 'save');
    expect(done).toMatchObject({ nodeType: 'test.write', summary: { path: 'x.json', value: 1 } });
    expect(typeof (done as { ms: number }).ms).toBe('number');
    expect(events.find((e) => e.type === 'node.log')).toMatchObject({ nodeId: 'slow', message: 'slow is done' });
    const start = events[0]!;
    expect(start).toMatchObject({ type: 'run.start', plan: { order: ['one', 'slow', 'save'], targets: ['save'], run: ['one', 'slow', 'save'], cached: [] } });
  });

  it('passes list inputs in link order', async () => {
    const doc = recipe({
      a: { type: 'test.const', v: '1.0.0', params: { value: 1 } },
      b: { type: 'test.const', v: '1.0.0', params: { value: 10 } },
      s: { type: 'test.sum', v: '1.0.0', in: { values: ['a.value', 'b.value', 'a.value'] }, params: { weights: [1, 2, 100] } },
    }, { outputs: ['s'] });
    const { result } = await run(doc);
    expect(result.status).toBe('success');
    expect(result.values.s!.total).toBe(1 + 20 + 100);
  });

  it('runs only what the outputs need', async () => {
    const doc = recipe({
      one: { type: 'test.const', v: '1.0.0' },
      unused: { type: 'test.slow', v: '1.0.0', in: { x: 'one.value' } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'one.value' }, params: { path: 'x.json' } },
    });
    const { result } = await run(doc);
    expect(result.executed).toEqual(['one', 'save']);
    expect(runCounts.get('test.slow')).toBeUndefined();
  });

  it('embeds the recipe without ui, the overrides and the version as provenance', async () => {
    const { result } = await run(arithmetic(), { overrides: { a: '4' } });
    expect(result.status).toBe('success');
    const file = await written('out/result.json');
    expect(file.value).toBe(4 * 3 + 5);
    expect(file.provenance.overrides).toEqual({ a: 4 });
    expect(file.provenance.recipe).not.toHaveProperty('ui');
    expect(file.provenance.recipe).toMatchObject({ format: 'loraflow.recipe', nodes: { two: { params: { value: 2 } } } });
    expect(file.provenance).toMatchObject({ nodeId: 'save', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });
});

describe('run context', () => {
  it('gives each run a temporary directory, removed when the run ends', async () => {
    const { result } = await run(recipe({ t: { type: 'test.temp', v: '1.0.0' } }, { outputs: ['t'] }), { tempRoot: dir });
    const tempDir = result.values.t!.dir as string;
    expect(tempDir.startsWith(join(dir, 'loraflow-run-'))).toBe(true);
    await expect(stat(tempDir)).rejects.toThrow();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('--set overrides', () => {
  it('coerce by the param type and reach the right node', async () => {
    const { result } = await run(arithmetic(), { overrides: { a: '7', scale: '0.5', where: 'out/other.json' } });
    expect(result.status).toBe('success');
    expect((await written('out/other.json')).value).toBe(7 * 0.5 + 5);
  });

  it('keeps a numeric-looking value a string for a string param', async () => {
    const { result } = await run(arithmetic(), { overrides: { where: '123' } });
    expect(result.status).toBe('success');
    expect((await written('123')).value).toBe(11);
  });

  it('sets a value inside an array param', async () => {
    const doc = recipe({
      a: { type: 'test.const', v: '1.0.0', params: { value: 1 } },
      b: { type: 'test.const', v: '1.0.0', params: { value: 10 } },
      s: { type: 'test.sum', v: '1.0.0', in: { values: ['a.value', 'b.value'] }, params: { weights: [1, 1] } },
    }, { outputs: ['s'], expose: { wb: 's.params.weights.1', weights: 's.params.weights' } });
    expect((await run(doc, { overrides: { wb: '3' } })).result.values.s!.total).toBe(31);
    expect((await run(doc, { overrides: { weights: '[2, 0]' } })).result.values.s!.total).toBe(2);
  });

  it('reports unknown names and values the param refuses', async () => {
    const { result } = await run(arithmetic(), { overrides: { nope: '1', a: 'abc', scale: 'x' } });
    expect(result.status).toBe('invalid');
    const msgs = result.problems!.map((p) => [p.code, p.expose ?? p.nodeId, p.param]);
    expect(msgs).toEqual(
      expect.arrayContaining([
        ['unknown_override', 'nope', undefined],
        ['bad_param', 'two', 'value'],
        ['bad_param', 'add', 'scale'],
      ]),
    );
    expect(result.problems!.find((p) => p.code === 'unknown_override')!.message).toContain('exposed: a, scale, where');
    expect(result.problems!.find((p) => p.nodeId === 'two')!.message).toContain('--set a');
  });
});

describe('validation', () => {
  it('reports every problem at once, each naming node, type and input/param', async () => {
    const doc = recipe(
      {
        one: { type: 'test.const', v: '1.0.0', params: { value: 5000, colour: 'red' } },
        ghost: { type: 'test.nope', v: '1.0.0' },
        add: { type: 'test.add', v: '2.0.0', in: { a: 'missing.value', b: 'one.nothing', c: 'one.value' } },
        add2: { type: 'test.add', v: '2.0.0', params: { scale: 'big' } },
        float: { type: 'test.float-only', v: '1.0.0', in: { x: 'one.value' } },
        loop1: { type: 'test.add', v: '2.0.0', in: { a: 'loop2.sum' } },
        loop2: { type: 'test.add', v: '2.0.0', in: { a: 'loop1.sum' } },
        sum: { type: 'test.sum', v: '1.0.0', in: { values: ['one.value'] }, params: { weights: [1, 2] } },
        future: { type: 'test.const', v: '2.0.0' },
        escape: { type: 'test.write', v: '1.0.0', in: { value: 'one.value' }, params: { path: '../outside.json' } },
        reader: { type: 'test.read', v: '1.0.0', params: { path: 'absent.txt' } },
        save: { type: 'test.write', v: '1.0.0', in: { value: 'reader.value' }, params: { path: 'ok.json' } },
        'bad.id': { type: 'test.const', v: '1.0.0' },
      },
      { expose: { x: 'nowhere.params.value', y: 'one.params.colour', z: 'one.value' }, outputs: ['save', 'escape', 'add', 'add2', 'float', 'loop1', 'sum', 'ghost', 'nonexistent'] },
    );
    const { result, events } = await run(doc);
    expect(result.status).toBe('invalid');
    expect(events.map((e) => e.type)).toEqual(['run.invalid']);
    const got = result.problems!.map((p) => `${p.code} ${p.expose ?? p.nodeId ?? p.path?.join('.')} ${p.nodeType ?? ''} ${p.input ?? p.param ?? ''}`.trim());
    expect(got).toEqual(
      expect.arrayContaining([
        'bad_param one test.const value',
        'bad_param one test.const colour',
        'unknown_node_type ghost test.nope',
        'link_to_missing_node add test.add a',
        'link_to_missing_output add test.add b',
        'unknown_input add test.add c',
        'missing_input add2 test.add a',
        'bad_param add2 test.add scale',
        'type_mismatch float test.float-only x',
        'cycle loop1 test.add',
        'node_check sum test.sum weights',
        'node_version future test.const',
        'bad_path escape test.write path',
        'file_not_found reader test.read path',
        'bad_node bad.id',
        'bad_expose x',
        'bad_expose y test.const colour',
        'bad_expose z',
        'bad_output_target outputs',
      ]),
    );
    expect(result.problems!.find((p) => p.code === 'cycle')!.message).toBe('nodes form a cycle: loop1 → loop2 → loop1');
    expect(result.problems!.find((p) => p.code === 'type_mismatch')!.message).toContain('carries NUM<int>, but the input accepts NUM<float>');
    expect(result.problems!.find((p) => p.code === 'unknown_node_type')!.message).toContain('test.const');
    // Nothing ran, nothing was written.
    expect(runCounts.size).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses what is not a recipe, naming the reason', async () => {
    expect((await run([])).result.problems![0]!.code).toBe('bad_recipe');
    const comfy = await run({ nodes: [], links: [] });
    expect(comfy.result.problems![0]!.message).toContain('ComfyUI/litegraph workflow');
    const newer = await run(recipe({}, { schemaVersion: 9 }));
    expect(newer.result.problems).toEqual([expect.objectContaining({ code: 'unsupported_schema_version', message: expect.stringContaining('newer') })]);
    const empty = await run(recipe({}));
    expect(empty.result.problems).toEqual([expect.objectContaining({ code: 'no_outputs' })]);
  });

  it('refuses writing one file twice or over an input', async () => {
    await writeFile(join(dir, 'n.txt'), '3');
    const doc = recipe({
      r: { type: 'test.read', v: '1.0.0', params: { path: 'n.txt' } },
      w1: { type: 'test.write', v: '1.0.0', in: { value: 'r.value' }, params: { path: 'same.json' } },
      w2: { type: 'test.write', v: '1.0.0', in: { value: 'r.value' }, params: { path: 'same.json' } },
      w3: { type: 'test.write', v: '1.0.0', in: { value: 'r.value' }, params: { path: 'n.txt' } },
    });
    const { result } = await run(doc);
    expect(result.problems!.map((p) => `${p.code} ${p.nodeId}`).sort()).toEqual(['output_conflict w2', 'output_conflict w3']);
    expect(await readFile(join(dir, 'n.txt'), 'utf8')).toBe('3');
  });

  it('migrates old node versions through the node migration table', async () => {
    const doc = recipe({
      one: { type: 'test.const', v: '1.0.0', params: { value: 4 } },
      add: { type: 'test.add', v: '1.3.0', in: { a: 'one.value' }, params: { factor: 10 } },
    }, { outputs: ['add'] });
    const { result, events } = await run(doc);
    expect(result.status).toBe('success');
    expect(result.values.add!.sum).toBe(40);
    expect(events[0]).toMatchObject({ plan: { migrations: ['node "add": test.add v1.x → v2.x'] } });
  });

  it('resolves paths against the configured roots and refuses links out of them', async () => {
    const models = join(dir, 'models');
    const { mkdir, symlink } = await import('node:fs/promises');
    await mkdir(models);
    await writeFile(join(models, 'n.txt'), '9');
    await writeFile(join(dir, 'secret.txt'), '1');
    await symlink(join(dir, 'secret.txt'), join(models, 'link.txt'));
    const doc = (path: string) => recipe({
      r: { type: 'test.read', v: '1.0.0', params: { path } },
      w: { type: 'test.write', v: '1.0.0', in: { value: 'r.value' }, params: { path: 'res.json' } },
    });
    const roots = { loras: 'models', output: 'outdir' };
    const ok = await run(doc('n.txt'), { roots });
    expect(ok.result.status).toBe('success');
    expect(JSON.parse(await readFile(join(dir, 'outdir', 'res.json'), 'utf8')).value).toBe(9);
    const viaLink = await run(doc('link.txt'), { roots });
    expect(viaLink.result.problems).toEqual([expect.objectContaining({ code: 'bad_path', nodeId: 'r', param: 'path' })]);
    const absolute = await run(doc(join(dir, 'secret.txt')), { roots });
    expect(absolute.result.problems![0]!.message).toContain('outside the loras root');
  });
});

describe('cache', () => {
  it('reports every node of an unchanged recipe as cached on the second run', async () => {
    const cache = new RunCache();
    const first = await run(arithmetic(), { cache });
    expect(first.result.cached).toEqual([]);
    const second = await run({ ...arithmetic(), ui: { nodes: { add: { pos: [500, 500] } } } }, { cache });
    expect(second.result.status).toBe('success');
    expect(second.result.cached).toEqual(['five', 'two', 'add', 'save']);
    expect(second.result.executed).toEqual([]);
    expect(second.events.filter((e) => e.type === 'node.cached').map((e) => (e as { nodeId: string }).nodeId)).toEqual(['five', 'two', 'add', 'save']);
    expect(second.events.some((e) => e.type === 'node.start')).toBe(false);
    expect(runCounts.get('test.add')).toBe(1);
    expect(runCounts.get('test.write')).toBe(1);
  });

  it('re-runs what a param change reaches, and an output whose file is gone', async () => {
    const cache = new RunCache();
    await run(arithmetic(), { cache });
    const changed = await run(arithmetic(), { cache, overrides: { scale: '4' } });
    expect(changed.result.executed).toEqual(['add', 'save']);
    expect(changed.result.cached).toEqual(['five', 'two']);
    expect((await written('out/result.json')).value).toBe(13);
    await rm(join(dir, 'out/result.json'));
    const again = await run(arithmetic(), { cache, overrides: { scale: '4' } });
    expect(again.result.executed).toEqual(['save']);
    expect((await written('out/result.json')).value).toBe(13);
  });

  it('notices a changed input file (size + mtime)', async () => {
    const cache = new RunCache();
    await writeFile(join(dir, 'n.txt'), '3');
    const doc = recipe({
      r: { type: 'test.read', v: '1.0.0', params: { path: 'n.txt' } },
      w: { type: 'test.write', v: '1.0.0', in: { value: 'r.value' }, params: { path: 'res.json' } },
    });
    await run(doc, { cache });
    await writeFile(join(dir, 'n.txt'), '4');
    await utimes(join(dir, 'n.txt'), new Date(), new Date(Date.now() + 5000));
    const second = await run(doc, { cache });
    expect(second.result.executed).toEqual(['r', 'w']);
    expect((await written('res.json')).value).toBe(4);
  });

  it('never reuses a non-cacheable node, nor anything downstream of it', async () => {
    const cache = new RunCache();
    const doc = recipe({
      rnd: { type: 'test.random', v: '1.0.0' },
      add: { type: 'test.add', v: '2.1.0', in: { a: 'rnd.value' } },
    }, { outputs: ['add'] });
    const a = await run(doc, { cache });
    const b = await run(doc, { cache });
    expect(b.result.executed).toEqual(['add', 'rnd'].sort().reverse());
    expect(a.result.values.add!.sum).not.toBe(b.result.values.add!.sum);
  });

  it('frees results that leave the cache', async () => {
    const cache = new RunCache();
    disposed.length = 0;
    const doc = (value: number) => recipe({ h: { type: 'test.handle', v: '1.0.0', params: { value } } }, { outputs: ['h'] });
    await run(doc(1), { cache });
    expect(disposed).toEqual([]);
    await run(doc(2), { cache });
    expect(disposed).toEqual(['1']);
    await cache.clear();
    expect(disposed).toEqual(['1', '2']);
    // Without a cache, results are freed when the run ends.
    await run(doc(3));
    expect(disposed).toEqual(['1', '2', '3']);
  });
});

describe('failure and cancellation', () => {
  it('an error event names node, type, inputs and what had run; nothing is written', async () => {
    const doc = recipe({
      one: { type: 'test.const', v: '1.0.0', params: { value: 3 } },
      early: { type: 'test.write', v: '1.0.0', in: { value: 'one.value' }, params: { path: 'early.json' } },
      then_fail: { type: 'test.fail', v: '1.0.0', in: { x: 'one.value' }, params: { message: 'disk on fire' } },
      late: { type: 'test.write', v: '1.0.0', in: { value: 'then_fail.y' }, params: { path: 'sub/late.json' } },
    });
    const { result, events } = await run(doc);
    expect(result.status).toBe('error');
    const err = events.at(-1)!;
    expect(err).toMatchObject({
      type: 'run.error',
      nodeId: 'then_fail',
      nodeType: 'test.fail',
      title: 'Fail',
      message: 'disk on fire',
      inputs: { x: 3 },
      params: { message: 'disk on fire' },
      executed: ['one', 'early'],
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a run cancelled mid-way leaves no output file, even from nodes that finished', async () => {
    const controller = new AbortController();
    const doc = recipe({
      one: { type: 'test.const', v: '1.0.0' },
      first: { type: 'test.write', v: '1.0.0', in: { value: 'one.value' }, params: { path: 'a/first.json' } },
      slow: { type: 'test.slow', v: '1.0.0', in: { x: 'one.value' }, params: { steps: 1000 } },
      second: { type: 'test.write', v: '1.0.0', in: { value: 'slow.y' }, params: { path: 'a/b/second.json' } },
    });
    await writeFile(join(dir, 'keep.txt'), 'untouched');
    const events2: RunEvent[] = [];
    const { result } = await run(doc, {
      signal: controller.signal,
      onEvent: (e) => {
        events2.push(e);
        if (e.type === 'node.progress' && e.value === 5) controller.abort();
      },
    });
    expect(result.status).toBe('cancelled');
    expect(runCounts.get('test.write')).toBe(1);
    expect(await readdir(dir)).toEqual(['keep.txt']);
    expect(events2.at(-1)).toMatchObject({ type: 'run.cancelled', nodeId: 'slow', nodeType: 'test.slow', executed: ['one', 'first'] });
    const st = await stat(join(dir, 'keep.txt'));
    expect(st.isFile()).toBe(true);
  });

  it('a dry run plans without running or writing', async () => {
    const { result, events } = await run(arithmetic(), { dryRun: true });
    expect(result.status).toBe('planned');
    expect(events).toEqual([expect.objectContaining({ type: 'run.plan', plan: expect.objectContaining({ run: ['five', 'two', 'add', 'save'], writes: [join(dir, 'out/result.json')] }) })]);
    expect(runCounts.size).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });
});
