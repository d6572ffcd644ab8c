/** Node types the example graphs do not cover, each run through the engine and checked by value. */
import { beforeAll, describe, expect, it } from 'vitest';
import { RunCache, runRecipe, runRecipeInWorker } from '../src/graph/index.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { roundTo } from '../src/tensor/dtype.ts';
import { compareDeltas } from '../src/samples/reference-delta.ts';
import { writeSamples } from '../src/samples/write-samples.ts';
import { NODES_MODULE, registry } from '../nodes/index.ts';
import type { AdapterSet } from '../src/adapter/model.ts';
import { deltasOf } from './helpers/lora.ts';
import { runOk } from './helpers/recipes.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-nodes-');
beforeAll(async () => {
  await writeSamples(tmp.path('samples'));
});

const AITOOLKIT = 'samples/flux-aitoolkit-lora.safetensors';
const KOHYA = 'samples/flux-kohya-lora.safetensors';
const doc = (nodes: Record<string, unknown>, outputs?: string[]) => ({ format: 'loraflow.recipe', schemaVersion: 1, nodes, ...(outputs ? { outputs } : {}) });
const load = (path: string) => ({ type: 'load-lora', v: '1.0.0', params: { path } });

const run = async (recipe: unknown, cache?: RunCache) => (await runOk(recipe, { cwd: tmp.dir, cache })).result;
/** ΔW of a LoRA file given relative to the temp dir. */
const deltas = (path: string, transform?: (s: AdapterSet) => AdapterSet) => deltasOf(tmp.path(path), transform);

describe('nodes', () => {
  it('inspect reports the detected layout of a file and the modules of a computed LoRA', async () => {
    const cache = new RunCache();
    try {
      const r = await run(
        doc({ a: load(AITOOLKIT), k: load(KOHYA), ia: { type: 'inspect', v: '1.0.0', in: { lora: 'a.lora' } }, s: { type: 'scale', v: '1.0.0', in: { lora: 'k.lora' }, params: { weight: 2 } }, is: { type: 'inspect', v: '1.0.0', in: { lora: 's.lora' } } }, ['ia', 'is']),
        cache,
      );
      const fileReport = r.values.ia!.report as { source: string; detection: { format: string; architecture: string; splitQkv: boolean; unknownKeys: string[]; coverage: { doubleBlocks: number[]; singleBlocks: number[] } } };
      expect(fileReport.source).toBe('file');
      expect(fileReport.detection).toMatchObject({ format: 'diffusers', architecture: 'flux', splitQkv: false, unknownKeys: [] });
      expect(fileReport.detection.coverage.doubleBlocks).toHaveLength(19);
      expect(fileReport.detection.coverage.singleBlocks).toHaveLength(38);
      expect(r.outputs.ia).toMatchObject({ format: 'diffusers', architecture: 'flux' });
      const computed = r.values.is!.report as { source: string; modules: { target: string; rank?: number; scale?: number }[] };
      expect(computed.source).toBe('computed');
      expect(computed.modules).toHaveLength(304);
      expect(computed.modules.every((m) => m.rank === 8 && m.scale === 1)).toBe(true);
    } finally {
      await cache.clear();
    }
  });

  it('scale and filter: ΔW × w, and only the kept blocks', async () => {
    await run(
      doc({
        k: load(KOHYA),
        s: { type: 'scale', v: '1.0.0', in: { lora: 'k.lora' }, params: { weight: -0.25 } },
        f: { type: 'filter', v: '1.0.0', in: { lora: 's.lora' }, params: { keepBlocks: ['D00', 'D01'], drop: 'img_mod' } },
        save: { type: 'save-lora', v: '1.0.0', in: { lora: 'f.lora' }, params: { path: 'out/filtered.safetensors' } },
      }),
    );
    const expected = await deltas(KOHYA, (s) => ({
      ...s,
      patches: s.patches
        .filter((p) => /^double_blocks\.[01]\./.test(p.target) && !p.target.includes('img_mod'))
        .map((p) => (p.adapter.kind === 'lora' ? { ...p, adapter: { ...p.adapter, scale: -0.25 * p.adapter.scale } } : p)),
    }));
    // Two double blocks × 10 modules (img/txt: mod.lin, attn.qkv, attn.proj, mlp.0, mlp.2), minus img_mod.lin.
    expect(expected.size).toBe(2 * 9);
    expect(compareDeltas(expected, await deltas('out/filtered.safetensors')).maxRelError).toBeLessThan(1e-6);
  });

  it('filter refuses a bad pattern and needs a rule, at validation', async () => {
    const r = await runRecipe(
      doc({ k: load(KOHYA), f1: { type: 'filter', v: '1.0.0', in: { lora: 'k.lora' }, params: { keep: '([' } }, f2: { type: 'filter', v: '1.0.0', in: { lora: 'k.lora' } } }, ['f1', 'f2']),
      { registry, cwd: tmp.dir },
    );
    expect(r.problems!.map((p) => `${p.nodeId} ${p.param ?? ''}`)).toEqual(['f1 keep', 'f2 ']);
  });

  it('convert to diffusers at bf16, then save with format auto: the diffusers layout, same ΔW within bf16', async () => {
    await run(
      doc({
        k: load(KOHYA),
        c: { type: 'convert', v: '1.0.0', in: { lora: 'k.lora' }, params: { to: 'diffusers', dtype: 'bf16' } },
        save: { type: 'save-lora', v: '1.0.0', in: { lora: 'c.lora' }, params: { path: 'out/peft.safetensors' } },
      }),
    );
    const f = await SafetensorsFile.open(tmp.path('out/peft.safetensors'));
    expect(f.tensors.every((t) => t.dtype === 'BF16')).toBe(true);
    expect(f.tensors.some((t) => t.name === 'transformer.transformer_blocks.0.attn.to_q.lora_A.weight')).toBe(true);
    await f.close();
    const cmp = compareDeltas(await deltas(KOHYA), await deltas('out/peft.safetensors'));
    expect(cmp.maxRelError).toBeGreaterThan(0);
    expect(cmp.maxRelError).toBeLessThan(2 ** -7);
  });

  it('load-model reads only the header; save-model writes it in bf16 with provenance, order kept', async () => {
    const r = await run(
      doc({
        m: { type: 'load-model', v: '1.0.0', params: { path: 'samples/flux-base.safetensors' } },
        s: { type: 'save-model', v: '1.0.0', in: { model: 'm.model' }, params: { path: 'out/base-bf16.safetensors', dtype: 'bf16' } },
      }),
    );
    expect(r.values.m!.model).toMatchObject({ architecture: 'flux', tensors: 780, dtypes: { F32: 780 } });
    expect(r.outputs.s).toMatchObject({ tensors: 780, converted: 780, copied: 0 });
    const base = await SafetensorsFile.open(tmp.path('samples/flux-base.safetensors'));
    const out = await SafetensorsFile.open(tmp.path('out/base-bf16.safetensors'));
    try {
      expect(out.tensors.map((t) => t.name)).toEqual(base.tensors.map((t) => t.name));
      for (const name of ['double_blocks.0.img_attn.qkv.weight', 'final_layer.linear.bias']) {
        expect(out.info(name).dtype).toBe('BF16');
        expect(await out.readF32(name)).toEqual(roundTo(await base.readF32(name), 'BF16'));
      }
      expect(JSON.parse(out.metadata!['loraflow.recipe']!)).toMatchObject({ node: 's', recipe: { nodes: { s: { type: 'save-model' } } } });
    } finally {
      await base.close();
      await out.close();
    }
  });

  it('merge-into-base reports the final file names, not the staging ones', async () => {
    const r = await run(
      doc({
        m: { type: 'load-model', v: '1.0.0', params: { path: 'samples/flux-base.safetensors' } },
        k: load(KOHYA),
        a: { type: 'merge-into-base', v: '1.0.0', in: { base: 'm.model', loras: ['k.lora'] }, params: { path: 'out/applied.safetensors', dtype: 'bf16' } },
      }),
    );
    const report = r.values.a!.report as { files: { out: string }[] };
    expect(report.files.map((f) => f.out)).toEqual([tmp.path('out/applied.safetensors')]);
  });

  it('weights must match the number of linked LoRAs', async () => {
    const r = await runRecipe(
      doc({ a: load(AITOOLKIT), b: load(KOHYA), m: { type: 'merge-loras', v: '1.0.0', in: { loras: ['a.lora', 'b.lora'] }, params: { weights: [1] } } }, ['m']),
      { registry, cwd: tmp.dir },
    );
    expect(r.problems).toEqual([expect.objectContaining({ code: 'node_check', nodeId: 'm', param: 'weights', message: '1 weight for 2 linked LoRAs' })]);
  });

  it('runs in a worker with the real node package (what the server uses)', async () => {
    const handle = runRecipeInWorker(
      doc({ k: load(KOHYA), save: { type: 'save-lora', v: '1.0.0', in: { lora: 'k.lora' }, params: { path: 'out/worker.safetensors', format: 'comfyui' } } }),
      { nodesModule: NODES_MODULE, setup: { backend: 'wasm' }, cwd: tmp.dir },
    );
    const result = await handle.result;
    expect(result).toMatchObject({ status: 'success', written: [tmp.path('out/worker.safetensors')], outputs: { save: { format: 'comfyui' } } });
    expect(compareDeltas(await deltas(KOHYA), await deltas('out/worker.safetensors')).maxRelError).toBe(0);
  });
});
