/**
 * Test-only node types for the engine tests (numbers instead of LoRAs, so the engine is tested
 * without any LoRA code). Also loaded by the worker test through `registry`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { NodeRegistry, defineNode, pathParam } from '../src/graph/index.ts';

/** How many times each node type's run() was called (the cache tests count re-runs). */
export const runCounts = new Map<string, number>();
const counted = (type: string) => runCounts.set(type, (runCounts.get(type) ?? 0) + 1);

export const constNode = defineNode({
  type: 'test.const',
  v: '1.0.0',
  title: 'Constant',
  category: 'test',
  description: 'A number.',
  inputs: {},
  outputs: { value: { type: 'NUM<int>' } },
  params: z.object({ value: z.number().int().min(-1000).max(1000).default(1).describe('the number') }),
  async run(_ctx, _in, p) {
    counted('test.const');
    return { value: p.value };
  },
});

export const addNode = defineNode({
  type: 'test.add',
  v: '2.1.0',
  title: 'Add',
  category: 'test',
  description: 'a·scale + b.',
  inputs: { a: { type: 'NUM' }, b: { type: 'NUM', optional: true } },
  outputs: { sum: { type: 'NUM' } },
  params: z.object({ scale: z.number().default(1) }),
  // v1 called the param "factor".
  migrate: { 1: ({ params, in: links }) => ({ params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k === 'factor' ? 'scale' : k, v])), in: links }) },
  async run(_ctx, inputs, p) {
    counted('test.add');
    return { sum: (inputs.a as number) * p.scale + ((inputs.b as number | undefined) ?? 0) };
  },
});

export const sumNode = defineNode({
  type: 'test.sum',
  v: '1.0.0',
  title: 'Weighted sum',
  category: 'test',
  description: 'Σ wᵢ·xᵢ over a list input.',
  inputs: { values: { type: 'NUM', list: true } },
  outputs: { total: { type: 'NUM' } },
  params: z.object({ weights: z.array(z.number()).optional(), label: z.string().default('sum') }),
  check(p, links) {
    return p.weights && p.weights.length !== links.values ? [{ param: 'weights', message: `${p.weights.length} weights for ${links.values} values` }] : [];
  },
  async run(_ctx, inputs, p) {
    counted('test.sum');
    const xs = inputs.values as number[];
    return { total: xs.reduce((acc, x, i) => acc + x * (p.weights?.[i] ?? 1), 0) };
  },
});

export const floatOnlyNode = defineNode({
  type: 'test.float-only',
  v: '1.0.0',
  title: 'Float only',
  category: 'test',
  description: 'Accepts NUM<float> only.',
  inputs: { x: { type: 'NUM<float>' } },
  outputs: { y: { type: 'NUM<float>' } },
  params: z.object({}),
  async run(_ctx, inputs) {
    return { y: inputs.x as number };
  },
});

export const readNode = defineNode({
  type: 'test.read',
  v: '1.0.0',
  title: 'Read number',
  category: 'test',
  description: 'Reads a number from a text file.',
  inputs: {},
  outputs: { value: { type: 'NUM' } },
  params: z.object({ path: pathParam('loras', 'read', 'text file holding a number') }),
  async run(ctx, _in, p) {
    counted('test.read');
    return { value: Number(await readFile(ctx.resolvePath(p.path, 'loras'), 'utf8')) };
  },
});

export const writeNode = defineNode({
  type: 'test.write',
  v: '1.0.0',
  title: 'Write number',
  category: 'test',
  description: 'Writes a number (and the provenance) to a text file.',
  output: true,
  inputs: { value: { type: 'NUM' } },
  outputs: { report: { type: 'REPORT' } },
  params: z.object({ path: pathParam('output', 'write', 'where to write'), delayMs: z.number().int().min(0).default(0) }),
  async run(ctx, inputs, p) {
    counted('test.write');
    const target = await ctx.outputPath(p.path);
    await writeFile(target, JSON.stringify({ value: inputs.value, provenance: ctx.provenance() }));
    for (let i = 0; i < p.delayMs / 10; i++) {
      ctx.progress(i, p.delayMs / 10);
      await sleep(10);
    }
    return { report: { path: p.path, value: inputs.value } };
  },
  summarize: (o) => o.report,
});

export const slowNode = defineNode({
  type: 'test.slow',
  v: '1.0.0',
  title: 'Slow',
  category: 'test',
  description: 'Counts to steps with progress, one step per 10 ms.',
  inputs: { x: { type: 'NUM' } },
  outputs: { y: { type: 'NUM' } },
  params: z.object({ steps: z.number().int().min(1).default(20) }),
  async run(ctx, inputs, p) {
    counted('test.slow');
    for (let i = 0; i <= p.steps; i++) {
      ctx.progress(i, p.steps, `step ${i}`);
      await sleep(10);
    }
    ctx.log('slow is done');
    return { y: inputs.x as number };
  },
});

export const failNode = defineNode({
  type: 'test.fail',
  v: '1.0.0',
  title: 'Fail',
  category: 'test',
  description: 'Throws.',
  inputs: { x: { type: 'NUM' } },
  outputs: { y: { type: 'NUM' } },
  params: z.object({ message: z.string().default('boom') }),
  async run(_ctx, _in, p) {
    throw new Error(p.message);
  },
});

export const randomNode = defineNode({
  type: 'test.random',
  v: '1.0.0',
  title: 'Random',
  category: 'test',
  description: 'Not cacheable.',
  cacheable: false,
  inputs: {},
  outputs: { value: { type: 'NUM' } },
  params: z.object({}),
  async run() {
    counted('test.random');
    return { value: Math.random() };
  },
});

export const disposed: string[] = [];
export const handleNode = defineNode({
  type: 'test.handle',
  v: '1.0.0',
  title: 'Handle',
  category: 'test',
  description: 'An output holding a resource, disposed when it leaves the cache.',
  inputs: {},
  outputs: { value: { type: 'NUM' } },
  params: z.object({ value: z.number().default(7) }),
  async run(_ctx, _in, p) {
    return { value: p.value };
  },
  dispose(o) {
    disposed.push(String(o.value));
  },
});

export const tempNode = defineNode({
  type: 'test.temp',
  v: '1.0.0',
  title: 'Temp',
  category: 'test',
  description: 'Writes a scratch file in the run\'s temporary directory and reports where.',
  inputs: {},
  outputs: { dir: { type: 'TEXT' } },
  params: z.object({}),
  async run(ctx) {
    const dir = await ctx.tempDir();
    await writeFile(`${dir}/scratch.bin`, 'x');
    return { dir };
  },
});

export const registry = new NodeRegistry([constNode, addNode, sumNode, floatOnlyNode, readNode, writeNode, slowNode, failNode, randomNode, handleNode, tempNode]);
