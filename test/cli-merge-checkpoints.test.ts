/**
 * `loraflow merge-checkpoints` and the merge-checkpoints node: the command is a recipe run by the
 * graph engine (the same bytes as the library call, the recipe in the output's metadata, --dry-run
 * writes nothing, bad input exits 2 naming what is wrong), the node is in the registry the editor's
 * palette comes from, and the graphs/checkpoint-* examples run on the sample data, checked by value.
 */
import { readdir } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeSamples } from '../src/samples/write-samples.ts';
import { mergeCheckpointsRecipe } from '../src/cli/recipes/merge-checkpoints.ts';
import { nodeDefinitionsJson, validateRecipe } from '../src/graph/index.ts';
import { mergeCheckpoints } from '../src/lora/checkpoint-merge.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { registry } from '../nodes/index.ts';
import { cli } from './helpers/cli.ts';
import { exists, sha256 } from './helpers/files.ts';
import { graph, runOk } from './helpers/recipes.ts';
import { sameBytes, tensorsOf } from './helpers/tensors.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-cli-ckpt-');
const FLUX = { scale: 32, doubleBlocks: 2, singleBlocks: 2, dtype: 'BF16' as const };

async function sameFileTensors(a: string, b: string): Promise<void> {
  const x = await tensorsOf(a);
  const y = await tensorsOf(b);
  expect([...x.keys()]).toEqual([...y.keys()]);
  for (const [name, t] of x) expect(sameBytes(t.bytes, y.get(name)!.bytes), name).toBe(true);
}

describe('loraflow merge-checkpoints', () => {
  let base: string, a: string, b: string, c: string;
  beforeAll(async () => {
    [base, a, b, c] = ['base', 'a', 'b', 'c'].map((n) => tmp.path(`${n}.safetensors`)) as [string, string, string, string];
    for (const [i, p] of [base, a, b, c].entries()) await writeFluxCheckpoint(p, { ...FLUX, seed: 30 + i });
  });

  it('add-difference: the same bytes as the library call, and the recipe in the metadata', async () => {
    const out = tmp.path('cli-add.safetensors');
    const r = await cli('merge-checkpoints', out, a, b, c, '--method', 'add-difference', '--alpha', '0.7');
    expect(r.code, r.stderr).toBe(0);
    const lib = tmp.path('lib-add.safetensors');
    await mergeCheckpoints({ method: 'add-difference', models: [a, b, c], alpha: 0.7, out: lib });
    await sameFileTensors(out, lib);
    const meta = await withSafetensors(out, async (f) => f.metadata!);
    expect(JSON.parse(meta['loraflow.recipe']!)).toMatchObject({ recipe: { nodes: { merge: { type: 'merge-checkpoints', params: { method: 'add-difference', alpha: 0.7 } } } } });
  });

  it('ties with --base, --weights, --density and --blocks; dare-ties with --drop and --seed', async () => {
    const out = tmp.path('cli-ties.safetensors');
    const r = await cli('merge-checkpoints', out, a, b, '--method', 'ties', '--base', base, '--weights', '1,0.5', '--density', '0.3', '--blocks', 'D00-D01=0.5,OUT=0', '--dtype', 'fp32');
    expect(r.code, r.stderr).toBe(0);
    const lib = tmp.path('lib-ties.safetensors');
    await mergeCheckpoints({ method: 'ties', models: [a, b], base, weights: [1, 0.5], density: 0.3, blocks: 'D00-D01=0.5,OUT=0', dtype: 'fp32', out: lib });
    await sameFileTensors(out, lib);
    // OUT = 0: the final layer is the base's (in fp32)
    const got = await tensorsOf(out);
    const baseT = await withSafetensors(base, async (f) => f.readF32('final_layer.linear.weight'));
    expect(Buffer.from(got.get('final_layer.linear.weight')!.bytes).equals(Buffer.from(baseT.buffer))).toBe(true);

    const dt = tmp.path('cli-dare-ties.safetensors');
    expect((await cli('merge-checkpoints', dt, a, b, c, '--method', 'dare-ties', '--base', base, '--drop', '0.3', '--seed', '4')).code).toBe(0);
    const libDt = tmp.path('lib-dare-ties.safetensors');
    await mergeCheckpoints({ method: 'dare-ties', models: [a, b, c], base, drop: 0.3, seed: 4, out: libDt });
    await sameFileTensors(dt, libDt);
  });

  it('--dry-run writes nothing; bad input exits 2 naming what is wrong, leaving nothing behind', async () => {
    const out = tmp.path('dry.safetensors');
    expect((await cli('merge-checkpoints', out, a, b, '--dry-run')).code).toBe(0);
    expect(await exists(out)).toBe(false);
    const before = await readdir(tmp.dir);
    const hashes = await Promise.all([a, b].map(sha256));
    const cases: [string[], RegExp][] = [
      [['--method', 'slerp'], /--method must be one of weighted, add-difference/],
      [['--method', 'ties'], /needs a base/],
      [['--method', 'add-difference'], /three models/],
      [['--weights', '1,x'], /weights/],
      [['--blocks', 'Q07=1'], /Q07/],
    ];
    for (const [args, message] of cases) {
      const r = await cli('merge-checkpoints', out, a, b, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    const other = tmp.path('other-width.safetensors');
    await writeFluxCheckpoint(other, { ...FLUX, scale: 16, seed: 1 });
    const r = await cli('merge-checkpoints', out, a, other);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/tensor double_blocks\.0\.img_attn\.qkv\.weight: shape \[288,96\] in .*a\.safetensors \(A\) but \[576,192\] in .*other-width\.safetensors \(B\)/);
    expect(await exists(out)).toBe(false);
    expect((await readdir(tmp.dir)).sort()).toEqual([...before, 'other-width.safetensors'].sort());
    expect(await Promise.all([a, b].map(sha256))).toEqual(hashes);
    expect((await cli('merge-checkpoints', out, a)).code).toBe(2);
  });
});

describe('the merge-checkpoints node', () => {
  it('is in the registry with its params (what the editor palette shows)', () => {
    const defs = nodeDefinitionsJson(registry.list());
    const def = defs['merge-checkpoints']!;
    expect(def).toBeDefined();
    expect(def.paramOrder).toEqual(['path', 'method', 'alpha', 'weights', 'density', 'drop', 'seed', 'blocks', 'dtype']);
    expect(Object.keys(def.inputs)).toEqual(['models', 'base']);
    expect(def.inputs.base!.optional).toBe(true);
  });

  it('refuses at validation what does not fit: link counts, params of other methods, a base where none belongs', () => {
    const problems = (args: Parameters<typeof mergeCheckpointsRecipe>[0]) => {
      const v = validateRecipe(mergeCheckpointsRecipe(args), registry);
      return v.problems.map((p) => `${p.param ?? p.input ?? ''}: ${p.message}`).join('\n');
    };
    const models = ['a.safetensors', 'b.safetensors'];
    expect(problems({ output: 'x.safetensors', models: ['a.safetensors'], method: 'weighted' })).toMatch(/models: link two or three checkpoints/);
    expect(problems({ output: 'x.safetensors', models, method: 'ties' })).toMatch(/base: .*needs a base/);
    expect(problems({ output: 'x.safetensors', models, method: 'weighted', base: 'c.safetensors' })).toMatch(/takes no base/);
    expect(problems({ output: 'x.safetensors', models, method: 'dare', base: 'c.safetensors', density: 0.5 })).toMatch(/density/);
    expect(problems({ output: 'x.safetensors', models, method: 'weighted', blocks: 'D00=0.5' })).toBe('');
  });
});

describe('graphs/checkpoint-* recipes on the sample data', () => {
  beforeAll(async () => {
    await writeSamples(tmp.path('samples'));
  });
  /** max over j of |got[j] − want(j)| / max(1, |want(j)|). */
  const worst = (got: Float32Array, want: (j: number) => number) => {
    let w = 0;
    for (let j = 0; j < got.length; j++) w = Math.max(w, Math.abs(got[j]! - want(j)) / Math.max(1, Math.abs(want(j))));
    return w;
  };
  const sample = (n: string) => tmp.path('samples', n);
  const read = (p: string) => withSafetensors(p, async (f) => new Map(await Promise.all(f.tensors.map(async (t) => [t.name, await f.readF32(t.name)] as const))));

  it('checkpoint-add-difference: base + 0.5·(fine-tune − base) per tensor', async () => {
    const { result } = await runOk(await graph('checkpoint-add-difference'), { cwd: tmp.dir });
    const out = tmp.path('out/flux-add-difference.safetensors');
    expect(result.written).toEqual([out]);
    const [got, base, tuned] = await Promise.all([read(out), read(sample('flux-base.safetensors')), read(sample('flux-finetune.safetensors'))]);
    let changed = 0;
    for (const [name, v] of got) {
      const b = base.get(name)!;
      const t = tuned.get(name)!;
      expect(worst(v, (j) => b[j]! + 0.5 * (t[j]! - b[j]!)), name).toBeLessThanOrEqual(1e-6);
      if (v.some((x, j) => x !== b[j])) changed++;
    }
    expect(changed).toBeGreaterThan(50);
  });

  it('checkpoint-ties: the fine-tune\'s 20% largest changes per tensor on the base, the rest the base\'s', async () => {
    const { result } = await runOk(await graph('checkpoint-ties'), { cwd: tmp.dir });
    const out = tmp.path('out/flux-ties-checkpoint.safetensors');
    expect(result.written).toEqual([out]);
    const [got, base, tuned] = await Promise.all([read(out), read(sample('flux-base.safetensors')), read(sample('flux-finetune.safetensors'))]);
    for (const [name, v] of got) {
      const b = base.get(name)!;
      const t = tuned.get(name)!;
      const tau = Float64Array.from(t, (x, j) => x - b[j]!);
      if (tau.every((x) => x === 0)) {
        expect(v.every((x, j) => x === b[j]), name).toBe(true);
        continue;
      }
      const k = Math.max(1, Math.round(0.2 * tau.length));
      const order = Array.from(tau.keys()).sort((x, y) => Math.abs(tau[y]!) - Math.abs(tau[x]!) || x - y);
      const kept = new Set(order.slice(0, k));
      expect(worst(v, (j) => (kept.has(j) ? b[j]! + tau[j]! : b[j]!)), name).toBeLessThanOrEqual(1e-6);
    }
  });

  it('checkpoint-blocks: double blocks from the fine-tune, single blocks from the base, the rest half and half', async () => {
    const { result } = await runOk(await graph('checkpoint-blocks'), { cwd: tmp.dir });
    const out = tmp.path('out/flux-block-merge.safetensors');
    expect(result.written).toEqual([out]);
    const [got, base, tuned] = await Promise.all([read(out), read(sample('flux-base.safetensors')), read(sample('flux-finetune.safetensors'))]);
    for (const [name, v] of got) {
      const alpha = name.startsWith('double_blocks.') ? 1 : name.startsWith('single_blocks.') ? 0 : 0.5;
      const b = base.get(name)!;
      const t = tuned.get(name)!;
      expect(worst(v, (j) => (1 - alpha) * b[j]! + alpha * t[j]!), name).toBeLessThanOrEqual(1e-6);
    }
  });
});
