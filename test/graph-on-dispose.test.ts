import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { NodeRegistry, RunCache, defineNode, runRecipe } from '../src/graph/index.ts';
import { addNode, constNode } from './graph-test-nodes.ts';

// What the resources registered with ctx.onDispose went through, in order.
const freed: string[] = [];

const holdNode = defineNode({
  type: 'test.hold',
  v: '1.0.0',
  title: 'Hold',
  category: 'test',
  description: 'An output whose run registers the freeing of a resource with the run context.',
  inputs: {},
  outputs: { value: { type: 'NUM' } },
  params: z.object({ value: z.number().default(1), fail: z.boolean().default(false) }),
  async run(ctx, _in, p) {
    ctx.onDispose(() => void freed.push(`free ${p.value}`));
    ctx.onDispose(async () => void freed.push(`free ${p.value} again`));
    if (p.fail) throw new Error(`hold ${p.value} failed after opening`);
    return { value: p.value };
  },
});

const registry = new NodeRegistry([constNode, addNode, holdNode]);
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loraflow-dispose-'));
  freed.length = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const doc = (value: number, fail = false) => ({
  format: 'loraflow.recipe',
  schemaVersion: 1,
  nodes: {
    h: { type: 'test.hold', v: '1.0.0', params: { value, fail } },
    add: { type: 'test.add', v: '2.1.0', in: { a: 'h.value' }, params: { scale: 2 } },
  },
  outputs: ['add'],
});

describe('RunContext.onDispose', () => {
  it('frees with the outputs: kept while cached, in registration order when they leave the cache', async () => {
    const cache = new RunCache();
    const first = await runRecipe(doc(3), { registry, cwd: dir, cache });
    expect(first.status).toBe('success');
    expect(first.values.add!.sum).toBe(6);
    expect(freed).toEqual([]);
    // a cache hit reuses the value: the resource must still be held
    const again = await runRecipe(doc(3), { registry, cwd: dir, cache });
    expect(again.executed).toEqual([]);
    expect(freed).toEqual([]);
    await runRecipe(doc(4), { registry, cwd: dir, cache });
    expect(freed).toEqual(['free 3', 'free 3 again']);
    await cache.clear();
    expect(freed).toEqual(['free 3', 'free 3 again', 'free 4', 'free 4 again']);
  });

  it('frees at the end of a run without a cache', async () => {
    const outcome = await runRecipe(doc(5), { registry, cwd: dir });
    expect(outcome.status).toBe('success');
    expect(freed).toEqual(['free 5', 'free 5 again']);
  });

  it('frees what a failing node registered before it threw', async () => {
    const outcome = await runRecipe(doc(6, true), { registry, cwd: dir, cache: new RunCache() });
    expect(outcome.status).toBe('error');
    expect(outcome.error?.nodeId).toBe('h');
    expect(freed).toEqual(['free 6', 'free 6 again']);
  });
});
