import { readFile, readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { GraphWorker, runRecipeInWorker, type RunEvent } from '../src/graph/index.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const NODES = new URL('./graph-test-nodes.ts', import.meta.url);
const tmp = useTempDir('loraflow-worker-');

const recipe = (steps: number, path: string) => ({
  format: 'loraflow.recipe',
  schemaVersion: 1,
  nodes: {
    one: { type: 'test.const', v: '1.0.0', params: { value: 6 } },
    slow: { type: 'test.slow', v: '1.0.0', in: { x: 'one.value' }, params: { steps } },
    save: { type: 'test.write', v: '1.0.0', in: { value: 'slow.y' }, params: { path } },
  },
});

describe('runRecipeInWorker', () => {
  it('runs off the main thread and posts every event back', async () => {
    const events: RunEvent[] = [];
    const handle = runRecipeInWorker(recipe(3, 'w.json'), { nodesModule: NODES, cwd: tmp.dir, runId: 'w1', progressIntervalMs: 0, onEvent: (e) => events.push(e) });
    const result = await handle.result;
    expect(result).toMatchObject({ runId: 'w1', status: 'success', executed: ['one', 'slow', 'save'], written: [tmp.path('w.json')] });
    expect(JSON.parse(await readFile(tmp.path('w.json'), 'utf8')).value).toBe(6);
    expect(events[0]!.type).toBe('run.start');
    expect(events.at(-1)!.type).toBe('run.success');
    expect(events.filter((e) => e.type === 'node.progress')).toHaveLength(4);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  });

  it('cancels by message inside a long node, leaving no output', async () => {
    const events: RunEvent[] = [];
    // Events arrive from the worker asynchronously, after `handle` is assigned.
    const handle: ReturnType<typeof runRecipeInWorker> = runRecipeInWorker(recipe(10_000, 'cancelled.json'), {
      nodesModule: NODES,
      cwd: tmp.dir,
      progressIntervalMs: 0,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'node.progress' && e.value === 3) handle.cancel();
      },
    });
    const result = await handle.result;
    expect(result.status).toBe('cancelled');
    expect(events.at(-1)).toMatchObject({ type: 'run.cancelled', nodeId: 'slow', executed: ['one'] });
    expect(await readdir(tmp.dir)).not.toContain('cancelled.json');
  });

  it('a GraphWorker keeps its cache between runs, and reports invalid recipes', async () => {
    const worker = new GraphWorker({ nodesModule: NODES });
    try {
      const first = await worker.run(recipe(2, 'c.json'), { cwd: tmp.dir }).result;
      const second = await worker.run(recipe(2, 'c.json'), { cwd: tmp.dir }).result;
      expect(first.executed).toEqual(['one', 'slow', 'save']);
      expect(second.cached).toEqual(['one', 'slow', 'save']);
      expect(second.executed).toEqual([]);
      const bad = await worker.run({ format: 'loraflow.recipe', schemaVersion: 1, nodes: { x: { type: 'nope', v: '1.0.0' } } }, { cwd: tmp.dir }).result;
      expect(bad.status).toBe('invalid');
      expect(bad.problems).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'unknown_node_type', nodeId: 'x' })]));
    } finally {
      await worker.close();
    }
  });

  it('fails every run clearly when the nodes module cannot be loaded', async () => {
    const result = await runRecipeInWorker(recipe(1, 'x.json'), { nodesModule: new URL('./no-such-module.ts', import.meta.url) }).result;
    expect(result.status).toBe('error');
    expect(result.error!.message).toContain('cannot load nodes from');
  });
});
