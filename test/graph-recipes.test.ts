/**
 * Every recipe in graphs/ runs headless on the built-in samples, and its outputs are checked by
 * value: the ΔW each output applies (dense, float64) against the intended combination of inputs.
 */
import { basePlusDeltaErrors } from './helpers/base-plus-delta.ts';
import { readdir } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { RunCache, runRecipe, type RunEvent, type RunOptions } from '../src/graph/index.ts';
import { applyBlockWeights } from '../src/lora/blocks.ts';
import { scaleSet } from '../src/lora/scale.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { compareDeltas } from '../src/samples/reference-delta.ts';
import { writeSamples } from '../src/samples/write-samples.ts';
import { FINETUNE_RANK } from '../src/formats/flux/samples.ts';
import { registry } from '../nodes/index.ts';
import { deltasOf, withLora } from './helpers/lora.ts';
import { graph, runOk } from './helpers/recipes.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { bestRankK, relFrobenius, weightedSum } from './ops-fixtures.ts';
import { referenceMerge } from './helpers/merge-reference.ts';

const tmp = useTempDir('loraflow-recipes-');
const sample = (name: string) => tmp.path('samples', name);
const AITOOLKIT = 'flux-aitoolkit-lora.safetensors';
const KOHYA = 'flux-kohya-lora.safetensors';

beforeAll(async () => {
  await writeSamples(tmp.path('samples'));
});

const run = (doc: unknown, opts: Partial<RunOptions> = {}) => runOk(doc, { cwd: tmp.dir, ...opts });
const sum = (...parts: Parameters<typeof weightedSum>[0]) => weightedSum(parts, parts.map(() => 1));

describe('graphs/ recipes on the sample data', () => {
  it('convert-aitoolkit-to-kohya: a kohya file applying exactly the same ΔW', async () => {
    const { result } = await run(await graph('convert-aitoolkit-to-kohya'));
    const out = tmp.path('out/flux-aitoolkit-as-kohya.safetensors');
    expect(result.written).toEqual([out]);
    const cmp = compareDeltas(await deltasOf(sample(AITOOLKIT)), await deltasOf(out));
    expect(cmp.maxRelError).toBe(0);
    await withLora(out, async (s) => expect(s.format).toBe('kohya'));
    const file = await SafetensorsFile.open(out);
    expect(file.tensors.some((t) => t.name === 'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight')).toBe(true);
    expect(file.tensors.some((t) => t.name.includes('to_k'))).toBe(false);
    await file.close();
  });

  it('merge-aitoolkit-kohya: ΔW = ΔW_aitoolkit + 0.8·ΔW_kohya, and a second run is all cached', async () => {
    const cache = new RunCache();
    try {
      const { result } = await run(await graph('merge-aitoolkit-kohya'), { cache });
      const out = tmp.path('out/flux-merged.safetensors');
      expect(result.written).toEqual([out]);
      const expected = sum(await deltasOf(sample(AITOOLKIT)), await deltasOf(sample(KOHYA), (s) => scaleSet(s, 0.8).set));
      expect(compareDeltas(expected, await deltasOf(out)).maxRelError).toBeLessThan(1e-6);
      const again = await run(await graph('merge-aitoolkit-kohya'), { cache });
      expect(again.result.cached).toEqual(['aitoolkit', 'kohya', 'merge', 'save']);
      expect(again.result.executed).toEqual([]);
      expect(again.events.filter((e) => e.type === 'node.cached')).toHaveLength(4);
    } finally {
      await cache.clear();
    }
  });

  it('merge-aitoolkit-kohya with --set weights: the overrides reach the merge', async () => {
    const { result } = await run(await graph('merge-aitoolkit-kohya'), { overrides: { weights: '[0, -1]', output: 'out/negated.safetensors' } });
    expect(result.written).toEqual([tmp.path('out/negated.safetensors')]);
    const expected = await deltasOf(sample(KOHYA), (s) => scaleSet(s, -1).set);
    expect(compareDeltas(expected, await deltasOf(tmp.path('out/negated.safetensors'))).maxRelError).toBeLessThan(1e-6);
  });

  it('merge-into-checkpoint: every weight is W + 0.8·ΔW_a + 0.6·ΔW_b, everything else copied', async () => {
    const { result } = await run(await graph('merge-into-checkpoint'));
    const out = tmp.path('out/flux-with-loras.safetensors');
    expect(result.written).toEqual([out]);
    const delta = sum(await deltasOf(sample(AITOOLKIT), (s) => scaleSet(s, 0.8).set), await deltasOf(sample(KOHYA), (s) => scaleSet(s, 0.6).set));
    const base = await SafetensorsFile.open(sample('flux-base.safetensors'));
    const merged = await SafetensorsFile.open(out);
    try {
      expect(merged.tensors.map((t) => t.name).sort()).toEqual(base.tensors.map((t) => t.name).sort());
      const errors = await basePlusDeltaErrors(base, merged, (name) => delta.get(`transformer:${name}`));
      expect(errors.size).toBe(delta.size);
      expect(Math.max(...errors.values())).toBeLessThan(1e-6);
      expect(JSON.parse(merged.metadata!['loraflow.recipe']!)).toMatchObject({ node: 'apply', recipe: { nodes: { apply: { type: 'merge-into-base' } } } });
    } finally {
      await base.close();
      await merged.close();
    }
  });

  it('extract-and-resize: the rank-8 extraction reproduces fine-tune − base, the rank-4 resize too', async () => {
    const { result } = await run(await graph('extract-and-resize'));
    expect(result.written.sort()).toEqual([tmp.path('out/flux-extracted-r4.safetensors'), tmp.path('out/flux-extracted-r8.safetensors')]);
    const base = await SafetensorsFile.open(sample('flux-base.safetensors'));
    const tuned = await SafetensorsFile.open(sample('flux-finetune.safetensors'));
    const diff = new Map<string, Float64Array>();
    try {
      for (const t of base.tensors) {
        const a = await base.readF32(t.name);
        const b = await tuned.readF32(t.name);
        if (a.some((v, i) => v !== b[i])) diff.set(`transformer:${t.name}`, Float64Array.from(b, (v, i) => v - a[i]!));
      }
    } finally {
      await base.close();
      await tuned.close();
    }
    expect(diff.size).toBeGreaterThan(100);
    expect(FINETUNE_RANK).toBeLessThanOrEqual(4);
    for (const [name, rank] of [['flux-extracted-r8.safetensors', 8], ['flux-extracted-r4.safetensors', 4]] as const) {
      const got = await deltasOf(tmp.path('out', name));
      expect([...got.keys()].sort()).toEqual([...diff.keys()].sort());
      let worst = 0;
      for (const [k, d] of diff) worst = Math.max(worst, relFrobenius(got.get(k)!.data, d));
      expect(worst).toBeLessThan(1e-4);
      await withLora(tmp.path('out', name), async (s) => {
        const ranks = new Set(s.patches.filter((p) => p.adapter.kind === 'lora').map((p) => (p.adapter.kind === 'lora' ? p.adapter.down.shape[0] : 0)));
        expect([...ranks]).toEqual([rank]);
      });
    }
  });

  it('block-weighted-merge: double blocks only from the ai-toolkit LoRA, single blocks the rank-8 SVD of 0.5·a + b', async () => {
    const { result } = await run(await graph('block-weighted-merge'));
    const out = tmp.path('out/flux-block-weighted.safetensors');
    expect(result.written).toEqual([out]);
    const expected = sum(
      await deltasOf(sample(AITOOLKIT), (s) => applyBlockWeights(s, 'S00-S37=0.5').set),
      await deltasOf(sample(KOHYA), (s) => applyBlockWeights(s, 'D00-D18=0').set),
    );
    const got = await deltasOf(out);
    expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
    const report = (result.values.merge!.report as { modules: { module: string; relError: number }[] }).modules;
    let doubles = 0;
    let singles = 0;
    for (const [k, e] of expected) {
      const err = relFrobenius(got.get(k)!.data, e.data);
      if (k.includes('double_blocks.')) {
        // rank 4 from one LoRA fits in rank 8: exact.
        expect(err).toBeLessThan(1e-5);
        doubles++;
      } else {
        // rank 4 + 8 truncated to 8: the error is what the report says it is, and not zero.
        const reported = report.find((m) => k.endsWith(m.module) || m.module.endsWith(k.split(':')[1]!));
        expect(err).toBeGreaterThan(1e-3);
        if (reported) expect(err).toBeCloseTo(reported.relError, 3);
        singles++;
      }
    }
    expect(doubles).toBeGreaterThan(0);
    expect(singles).toBeGreaterThan(0);
  });

  it('ties-merge: the rank-8 optimal truncation of the float64 TIES merge (density 0.5, weights 1 and 0.8)', async () => {
    const { result } = await run(await graph('ties-merge'));
    const out = tmp.path('out/flux-ties-merged.safetensors');
    expect(result.written).toEqual([out]);
    const expected = await withLora(sample(AITOOLKIT), (a) => withLora(sample(KOHYA), (b) => referenceMerge('ties', [{ set: a, weight: 1 }, { set: b, weight: 0.8 }], { density: 0.5 })));
    const got = await deltasOf(out);
    expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
    const report = (result.values.merge!.report as { modules: { module: string; relError: number }[] }).modules;
    // the error each module reports is its error; every 8th module (each kind of weight) against its optimum
    for (const [i, [k, e]] of [...expected].entries()) {
      const err = relFrobenius(got.get(k)!.data, e.data);
      expect(report.find((m) => m.module === k)!.relError, k).toBeCloseTo(err, 2);
      if (i % 8 !== 0) continue;
      const { s } = bestRankK(e.data, e.rows, e.cols, 0);
      const optimal = Math.sqrt(s.slice(8).reduce((x, v) => x + v * v, 0) / s.reduce((x, v) => x + v * v, 0));
      expect(err, k).toBeLessThanOrEqual(optimal * 1.05 + 1e-3);
    }
  });
});

describe('cancellation with real nodes', () => {
  it('cancelling merge-into-base mid-way leaves no output or temporary file', async () => {
    const controller = new AbortController();
    const events: RunEvent[] = [];
    const result = await runRecipe(await graph('merge-into-checkpoint'), {
      registry,
      cwd: tmp.dir,
      signal: controller.signal,
      overrides: { output: 'cancel/merged.safetensors' },
      progressIntervalMs: 0,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'node.progress' && e.nodeId === 'apply' && e.value >= 100) controller.abort();
      },
    });
    expect(result.status).toBe('cancelled');
    expect(events.at(-1)).toMatchObject({ type: 'run.cancelled', nodeId: 'apply', executed: ['a', 'b', 'base'] });
    expect(await readdir(tmp.dir)).not.toContain('cancel');
    expect((await readdir(tmp.path('out')).catch(() => [])).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});
