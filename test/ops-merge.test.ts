import { beforeAll, describe, expect, it } from 'vitest';
import type { AdapterSet, LoraAdapter, Patch } from '../src/adapter/model.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { compareDeltas, referenceDeltas } from '../src/samples/reference-delta.ts';
import {
  BACKENDS, adapterSet, bestRankK, diffusersLike, fluxShapes, kohyaLike, loraPatch, randomTensor, relFrobenius, weightedSum,
} from './ops-fixtures.ts';

const shapes = fluxShapes();

describe.each(BACKENDS)('mergeLoras on %s', (backend) => {
  beforeAll(async () => {
    expect(await useBackend(backend)).toBe(backend);
  });

  it('concat is exact for a kohya + diffusers mix, fusing overlapping slices and keeping scale 1', async () => {
    const a = kohyaLike(4, 2, 1);
    const b = diffusersLike(3, 2);
    const weights = [0.7, -0.4];
    const { set, report } = await mergeLoras([{ set: a, weight: weights[0]! }, { set: b, weight: weights[1]! }], { method: 'concat' });
    const expected = weightedSum([await referenceDeltas(a), await referenceDeltas(b)], weights);
    const { maxRelError, worst } = compareDeltas(expected, await referenceDeltas(set));
    expect(maxRelError, worst).toBeLessThan(1e-6);
    // qkv and linear1 have a whole-weight kohya patch overlapping the diffusers slices: fused.
    expect(report.fused.sort()).toEqual(['transformer:double_blocks.0.img_attn.qkv.weight', 'transformer:single_blocks.0.linear1.weight']);
    const qkv = set.patches.find((p) => p.target === 'double_blocks.0.img_attn.qkv.weight')!;
    const lora = qkv.adapter as LoraAdapter;
    expect(qkv.rows).toBeUndefined();
    expect(lora.down.shape).toEqual([4 + 3 * 3, 48]);
    expect(lora.up.shape).toEqual([144, 13]);
    expect([lora.scale, lora.alpha]).toEqual([1, 13]);
    expect(report.relError).toBe(0);
  });

  it('concat keeps disjoint row slices as separate patches and their downs bit-identical', async () => {
    const a = diffusersLike(2, 3);
    const b = diffusersLike(3, 4);
    const { set, report } = await mergeLoras([{ set: a, weight: 1 }, { set: b, weight: 0.5 }], { method: 'concat' });
    expect(report.fused).toEqual([]);
    expect(set.patches.length).toBe(a.patches.length);
    const q = set.patches.find((p) => p.target === 'double_blocks.0.img_attn.qkv.weight' && p.rows?.[0] === 48)!;
    expect(q.rows).toEqual([48, 48]);
    const down = q.adapter as LoraAdapter;
    const srcA = a.patches.find((p) => p.target === q.target && p.rows?.[0] === 48)!.adapter as LoraAdapter;
    const srcB = b.patches.find((p) => p.target === q.target && p.rows?.[0] === 48)!.adapter as LoraAdapter;
    const bytes = await down.down.bytes();
    expect(Buffer.from(bytes).equals(Buffer.concat([await srcA.down.bytes(), await srcB.down.bytes()]))).toBe(true);
    const expected = weightedSum([await referenceDeltas(a), await referenceDeltas(b)], [1, 0.5]);
    expect(compareDeltas(expected, await referenceDeltas(set)).maxRelError).toBeLessThan(1e-6);
  });

  it('svd equals the truncated SVD of the dense weighted sum and reports its error', async () => {
    const a = kohyaLike(6, 3, 5);
    const b = kohyaLike(5, 5, 6);
    const weights = [1.2, 0.6];
    const rank = 4;
    const { set, report } = await mergeLoras([{ set: a, weight: weights[0]! }, { set: b, weight: weights[1]! }], { method: 'svd', rank });
    const sum = weightedSum([await referenceDeltas(a), await referenceDeltas(b)], weights);
    const got = await referenceDeltas(set);
    let discarded = 0;
    let total = 0;
    for (const [key, d] of sum) {
      const { approx, s } = bestRankK(d.data, d.rows, d.cols, rank);
      const out = got.get(key)!;
      expect(out.rows, key).toBe(d.rows);
      expect(relFrobenius(out.data, approx), key).toBeLessThan(1e-5);
      const lost = s.slice(rank).reduce((x, v) => x + v * v, 0);
      const all = s.reduce((x, v) => x + v * v, 0);
      const module = report.modules.find((m) => m.module === key)!;
      expect(module.rank).toBe(Math.min(rank, d.rows, d.cols));
      expect(module.relError).toBeCloseTo(Math.sqrt(lost / all), 5);
      discarded += lost;
      total += all;
    }
    expect(report.relError).toBeCloseTo(Math.sqrt(discarded / total), 5);
    expect(report.relError).toBeGreaterThan(0.01);
    for (const p of set.patches) expect((p.adapter as LoraAdapter).scale).toBe(1);
  });

  it('svd by energy keeps the smallest rank that holds the energy', async () => {
    const a = kohyaLike(8, 8, 7);
    const energy = 0.9;
    const { report } = await mergeLoras([{ set: a, weight: 1 }], { method: 'svd', energy });
    for (const [key, d] of await referenceDeltas(a)) {
      const { s } = bestRankK(d.data, d.rows, d.cols, 0);
      const total = s.reduce((x, v) => x + v * v, 0);
      let k = 0;
      for (let kept = 0; kept < energy * total; k++) kept += s[k]! ** 2;
      expect(report.modules.find((m) => m.module === key)!.rank, key).toBe(k);
    }
  });

  it('svd at a rank no smaller than the stacked rank is exact', async () => {
    const a = diffusersLike(2, 8);
    const b = kohyaLike(2, 1, 9);
    const { set, report } = await mergeLoras([{ set: a, weight: 0.3 }, { set: b, weight: 2 }], { method: 'svd', rank: 64 });
    const expected = weightedSum([await referenceDeltas(a), await referenceDeltas(b)], [0.3, 2]);
    expect(compareDeltas(expected, await referenceDeltas(set)).maxRelError).toBeLessThan(1e-5);
    expect(report.relError).toBeLessThan(1e-6);
  });

  it('svd handles rank-deficient stacks (a LoRA merged with itself, a zero module)', async () => {
    const a = kohyaLike(5, 5, 12);
    const zero: Patch = { ...loraPatch({ target: 'img_in.weight', rank: 2 }, 13, shapes) };
    zero.adapter = { ...(zero.adapter as LoraAdapter), up: memoryTensor(new Float32Array(48 * 2), [48, 2]) };
    const set = adapterSet([...a.patches, zero]);
    const { set: out, report } = await mergeLoras([{ set, weight: 0.5 }, { set, weight: 1.5 }], { method: 'svd', rank: 5 });
    const expected = weightedSum([await referenceDeltas(set)], [2]);
    expect(compareDeltas(expected, await referenceDeltas(out)).maxRelError).toBeLessThan(1e-5);
    expect(report.relError).toBeLessThan(1e-6);
    for (const m of report.modules) expect(m.rank, m.module).toBe(m.module.includes('img_in') ? 1 : 5);
  });

  it('refuses LoHa without refactor, naming the module; refactors it at full rank exactly', async () => {
    const loha: Patch = {
      component: 'transformer',
      target: 'double_blocks.0.img_attn.proj.weight',
      adapter: {
        kind: 'loha', w1a: randomTensor([48, 2], 11), w1b: randomTensor([2, 48], 12), w2a: randomTensor([48, 2], 13), w2b: randomTensor([2, 48], 14), scale: 0.5,
      },
      source: { module: 'lora_unet_double_blocks_0_img_attn_proj', keys: [] },
    };
    const lora = kohyaLike(2, 2, 10);
    const inputs = [{ set: adapterSet([loha]), weight: 0.8 }, { set: lora, weight: 1 }];
    await expect(mergeLoras(inputs, { method: 'concat' })).rejects.toThrow(/lora_unet_double_blocks_0_img_attn_proj \(loha, input 1\).*refactor: true/);
    // LoHa ΔW has rank ≤ 4; rank 48 is full rank for a 48×48 weight.
    const { set, report } = await mergeLoras(inputs, { method: 'concat', refactor: true, rank: 48 });
    expect(report.refactored).toHaveLength(1);
    expect(report.refactored[0]).toMatchObject({ module: 'lora_unet_double_blocks_0_img_attn_proj', kind: 'loha', input: 0 });
    expect(report.refactored[0]!.relError).toBeLessThan(1e-5);
    const expected = weightedSum([await referenceDeltas(adapterSet([loha])), await referenceDeltas(lora)], [0.8, 1]);
    expect(compareDeltas(expected, await referenceDeltas(set)).maxRelError).toBeLessThan(1e-5);
    // At rank 2 the LoHa (true rank 4) loses something, and the report says how much.
    const low = await mergeLoras(inputs, { method: 'concat', refactor: true, rank: 2 });
    expect(low.report.refactored[0]!.rank).toBe(2);
    expect(low.report.refactored[0]!.relError).toBeGreaterThan(0.01);
    expect(low.report.relError).toBeCloseTo(low.report.refactored[0]!.relError, 6);
  });

  it('sums 1-D full diffs exactly, carries replacements, and leaves out weight-0 inputs by name', async () => {
    const bias = (seed: number): Patch => ({
      component: 'transformer', target: 'double_blocks.0.img_attn.qkv.bias', adapter: { kind: 'full', diff: randomTensor([144], seed) }, source: { module: `bias${seed}`, keys: [] },
    });
    const norm: Patch = {
      component: 'transformer', target: 'double_blocks.0.img_attn.norm.query_norm.scale', adapter: { kind: 'set', value: randomTensor([2], 30) }, source: { module: 'norm', keys: [] },
    };
    const a = adapterSet([bias(21), norm, loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2 }, 40, shapes)]);
    const b = adapterSet([bias(22)]);
    const c = kohyaLike(2, 2, 41);
    const { set, report } = await mergeLoras([{ set: a, weight: 0.5 }, { set: b, weight: 2 }, { set: c, weight: 0 }], { method: 'concat' });
    expect(report.summedDiffs).toEqual(['transformer:double_blocks.0.img_attn.qkv.bias']);
    expect(report.passthrough).toEqual(['transformer:double_blocks.0.img_attn.norm.query_norm.scale']);
    expect(report.omitted).toHaveLength(c.patches.length);
    expect(report.omitted[0]).toContain(c.patches[0]!.source.module);
    const expected = weightedSum([await referenceDeltas(adapterSet([bias(21), a.patches[2]!])), await referenceDeltas(b)], [0.5, 2]);
    const got = await referenceDeltas({ patches: set.patches.filter((p) => p.adapter.kind !== 'set') });
    expect(compareDeltas(expected, got).maxRelError).toBeLessThan(1e-6);
    expect(set.patches.find((p) => p.adapter.kind === 'set')).toBe(norm);
    expect(report.notes.join('\n')).toMatch(/norm: replacement values are carried over/);
  });

  it('refuses DoRA patches and mixed architectures by name', async () => {
    const p = loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2 }, 50, shapes);
    const dora: Patch = { ...p, dora: { magnitude: memoryTensor(new Float32Array(48).fill(1), [48]), axis: 'out' }, source: { module: 'dora_module', keys: [] } };
    await expect(mergeLoras([{ set: adapterSet([dora]), weight: 1 }], { method: 'concat' })).rejects.toThrow(/DoRA.*dora_module \(input 1\)/);
    const sdxl: AdapterSet = { ...adapterSet([]), architecture: 'sdxl' };
    await expect(mergeLoras([{ set: adapterSet([p]), weight: 1 }, { set: sdxl, weight: 1 }], { method: 'concat' })).rejects.toMatchObject({ name: 'LoraflowError', fault: 'input', code: 'MERGE' });
    await expect(mergeLoras([{ set: adapterSet([p]), weight: 1 }], { method: 'svd' })).rejects.toThrow(/rank or an energy/);
  });

  it('stops when cancelled', async () => {
    const controller = new AbortController();
    let calls = 0;
    const ctx = { signal: controller.signal, onProgress: () => { if (++calls === 2) controller.abort(); } };
    await expect(mergeLoras([{ set: kohyaLike(4, 4, 60), weight: 1 }], { method: 'svd', rank: 2, ctx })).rejects.toThrow(/abort/i);
    expect(calls).toBe(2);
  });
});
