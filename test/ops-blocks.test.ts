import { describe, expect, it } from 'vitest';
import type { LoraAdapter, Patch } from '../src/adapter/model.ts';
import { FLUX_BLOCK_IDS, blockOf, parseBlockWeights } from '../src/formats/flux/blocks.ts';
import { applyBlockWeights } from '../src/lora/blocks.ts';
import { filterPatches } from '../src/lora/filter.ts';
import { scalePatch, scaleSet } from '../src/lora/scale.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { compareDeltas, referenceDeltas } from '../src/samples/reference-delta.ts';
import { adapterSet, diffusersLike, fluxShapes, kohyaLike, loraPatch, randomTensor, weightedSum } from './ops-fixtures.ts';

const shapes = fluxShapes();

describe('FLUX block ids', () => {
  it('has the 61 LoRA Block Weight slots in order', () => {
    expect(FLUX_BLOCK_IDS).toHaveLength(61);
    expect(FLUX_BLOCK_IDS.slice(0, 4)).toEqual(['CLIP', 'T5', 'IN', 'D00']);
    expect(FLUX_BLOCK_IDS[21]).toBe('D18');
    expect(FLUX_BLOCK_IDS[22]).toBe('S00');
    expect(FLUX_BLOCK_IDS[59]).toBe('S37');
    expect(FLUX_BLOCK_IDS[60]).toBe('OUT');
  });

  it.each([
    ['transformer', 'double_blocks.0.img_attn.qkv.weight', 'D00'],
    ['transformer', 'double_blocks.18.txt_mlp.2.bias', 'D18'],
    ['transformer', 'single_blocks.7.linear1.weight', 'S07'],
    ['transformer', 'single_blocks.37.modulation.lin.weight', 'S37'],
    ['transformer', 'img_in.weight', 'IN'],
    ['transformer', 'txt_in.bias', 'IN'],
    ['transformer', 'time_in.in_layer.weight', 'IN'],
    ['transformer', 'vector_in.out_layer.weight', 'IN'],
    ['transformer', 'guidance_in.in_layer.weight', 'IN'],
    ['transformer', 'final_layer.adaLN_modulation.1.weight', 'OUT'],
    ['transformer', 'final_layer.linear.weight', 'OUT'],
    ['clip_l', 'text_model.encoder.layers.0.self_attn.q_proj.weight', 'CLIP'],
    ['t5', 'encoder.block.3.layer.0.SelfAttention.q.weight', 'T5'],
    ['transformer', 'double_blocks.19.img_attn.qkv.weight', undefined],
    ['transformer', 'something_else.weight', undefined],
  ] as const)('%s %s → %s', (component, target, block) => {
    expect(blockOf({ component, target })).toBe(block);
  });

  it('parses a 61-value list, ID=value pairs with ranges, and objects', () => {
    const list = FLUX_BLOCK_IDS.map((_, i) => i / 100);
    const fromList = parseBlockWeights(list);
    expect(fromList.get('D05')).toBe(0.08);
    expect(parseBlockWeights(list.join(',')).get('S37')).toBe(0.59);
    const pairs = parseBlockWeights('D00-D02=0.5, s10=0 OUT=-1');
    expect([pairs.get('D00'), pairs.get('D01'), pairs.get('D02'), pairs.get('D03')]).toEqual([0.5, 0.5, 0.5, 1]);
    expect([pairs.get('S10'), pairs.get('OUT'), pairs.get('CLIP')]).toEqual([0, -1, 1]);
    expect(parseBlockWeights({ IN: 2, 'S00-S01': 3 }).get('S01')).toBe(3);
  });

  it.each([
    [[1, 2, 3], /needs 61 values.*got 3/],
    ['D19=1', /unknown block id "D19"/],
    ['D10-D20=1', /past the last block \(D19/],
    ['IN=abc', /IN: "abc" is not a number/],
    ['1,2,IN=3', /not an ID=value pair/],
    ['', /empty/],
  ] as const)('rejects %j', (spec, message) => {
    expect(() => parseBlockWeights(spec as never)).toThrow(message);
  });
});

describe('scaling', () => {
  it('weights LoRAs through scale and alpha without touching tensors; negative subtracts', async () => {
    const set = kohyaLike(4, 2, 1);
    const { set: out, report } = scaleSet(set, -0.5);
    expect(report.scaled).toBe(set.patches.length);
    const a = set.patches[0]!.adapter as LoraAdapter;
    const b = out.patches[0]!.adapter as LoraAdapter;
    expect(b.up).toBe(a.up);
    expect(b.down).toBe(a.down);
    expect([b.scale, b.alpha]).toEqual([-0.25, -1]);
    const expected = weightedSum([await referenceDeltas(set)], [-0.5]);
    expect(compareDeltas(expected, await referenceDeltas(out)).maxRelError).toBeLessThan(1e-12);
  });

  it('multiplies full diffs and whole-factor LoKr values, keeps replacements, drops weight 0', async () => {
    const full: Patch = { component: 'transformer', target: 'img_in.bias', adapter: { kind: 'full', diff: randomTensor([48], 3) }, source: { module: 'full', keys: [] } };
    const lokr: Patch = {
      component: 'transformer', target: 'double_blocks.0.img_attn.proj.weight',
      adapter: { kind: 'lokr', w1: randomTensor([4, 4], 4), w2: randomTensor([12, 12], 5), scale: 1 }, source: { module: 'lokr', keys: [] },
    };
    const set: Patch = { component: 'transformer', target: 'txt_in.bias', adapter: { kind: 'set', value: randomTensor([48], 6) }, source: { module: 'setter', keys: [] } };
    for (const p of [full, lokr]) {
      const { patch } = scalePatch(p, 3);
      const expected = weightedSum([await referenceDeltas(adapterSet([p]))], [3]);
      expect(compareDeltas(expected, await referenceDeltas(adapterSet([patch!]))).maxRelError).toBeLessThan(1e-6);
    }
    const kept = scalePatch(set, 0.5);
    expect(kept.patch).toBe(set);
    expect(kept.note).toMatch(/setter: replacement values are not scaled/);
    expect(scalePatch(full, 0).patch).toBeNull();
    const { set: dropped, report } = scaleSet(adapterSet([full, lokr]), 0);
    expect(dropped.patches).toEqual([]);
    expect(report.dropped).toEqual(['full', 'lokr']);
  });

  it('refuses to weight a DoRA patch by anything but 0 or 1', () => {
    const p = loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2 }, 7, shapes);
    const dora: Patch = { ...p, dora: { magnitude: memoryTensor(new Float32Array(48), [48]), axis: 'out' } };
    expect(scalePatch(dora, 1).patch).toBe(dora);
    expect(() => scalePatch(dora, 0.5)).toThrow(/DoRA patch cannot be weighted/);
  });
});

describe('applyBlockWeights', () => {
  it('weights each patch by its block, drops zero blocks by name, leaves unassigned ones at 1', async () => {
    const set = adapterSet([...kohyaLike(3, 3, 10).patches, loraPatch({ target: 'txt_in.weight', rank: 2 }, 11, shapes)]);
    const stray = loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2 }, 12, shapes);
    set.patches.push({ ...stray, target: 'extra_block.weight', source: { module: 'extra', keys: [] } });
    const { set: out, report } = applyBlockWeights(set, 'D00=0.5, D01=0, S00=-2, IN=3');
    const weightOf: Record<string, number> = {
      'double_blocks.0.img_attn.qkv.weight': 0.5, 'double_blocks.1.txt_mlp.0.weight': 0, 'single_blocks.0.linear1.weight': -2,
      'single_blocks.1.linear2.weight': 1, 'final_layer.adaLN_modulation.1.weight': 1, 'txt_in.weight': 3, 'extra_block.weight': 1,
    };
    const input = await referenceDeltas(set);
    const got = await referenceDeltas(out);
    for (const [key, d] of input) {
      const w = weightOf[d.target]!;
      if (w === 0) {
        expect(got.has(key), key).toBe(false);
        continue;
      }
      const o = got.get(key)!;
      for (let i = 0; i < d.data.length; i += 7) expect(o.data[i]).toBeCloseTo(w * d.data[i]!, 12);
    }
    expect(report.dropped).toEqual(['double_blocks.1.txt_mlp.0']);
    expect(report.unassigned).toEqual(['extra']);
    expect(report.weights).toEqual({ D00: 0.5, D01: 0, S00: -2, IN: 3 });
    expect(report.scaled).toBe(3);
  });

  it('refuses sets of models without block ids, and FLUX ids on an SDXL LoRA', () => {
    expect(() => applyBlockWeights({ ...adapterSet([]), architecture: 'unknown' }, 'IN=0')).toThrow(/not to an unrecognised model LoRA/);
    expect(() => applyBlockWeights({ ...adapterSet([]), architecture: 'sdxl' }, 'IN=0')).toThrow(/unknown block id "IN"/);
  });
});

describe('filterPatches', () => {
  it('keeps or drops by block id and by target regex, reporting every removed module', () => {
    const set = adapterSet([...kohyaLike(2, 2, 20).patches, ...diffusersLike(2, 21).patches]);
    const byBlock = filterPatches(set, { keepBlocks: ['D00', 's00'] });
    expect(new Set(byBlock.set.patches.map((p) => blockOf(p)))).toEqual(new Set(['D00', 'S00']));
    expect(byBlock.report.kept + byBlock.report.dropped.length).toBe(set.patches.length);
    expect(byBlock.report.dropped.find((d) => d.target === 'final_layer.adaLN_modulation.1.weight')?.reason).toBe('block OUT not in keepBlocks');

    const dropped = filterPatches(set, { dropBlocks: ['OUT'], drop: /linear1/g });
    expect(dropped.set.patches.some((p) => p.target.includes('linear1') || p.target.startsWith('final_layer'))).toBe(false);
    expect(dropped.report.dropped.filter((d) => d.reason.startsWith('target matches drop'))).toHaveLength(5);

    const kept = filterPatches(set, { keep: '^double_blocks\\.0\\.img_attn\\.qkv' });
    expect(kept.set.patches).toHaveLength(4);
    expect(kept.set.patches.every((p) => p.target === 'double_blocks.0.img_attn.qkv.weight')).toBe(true);
  });

  it('names bad block ids and bad patterns', () => {
    const set = kohyaLike(2, 2, 22);
    expect(() => filterPatches(set, { keepBlocks: ['D99', 'XX'] })).toThrow(/unknown block ids D99, XX/);
    expect(() => filterPatches(set, { keep: '(' })).toThrow(/keep pattern "\(" is not a valid regular expression/);
    expect(() => filterPatches({ ...set, architecture: 'sdxl' }, { dropBlocks: ['IN'] })).toThrow(/unknown block id IN for an SDXL LoRA/);
  });
});
