import { describe, expect, it } from 'vitest';
import { ADAPTER_KINDS, adapterRank, adapterRows, adapterTensors, loraDims, rankFromShapes, withoutTucker } from '../src/adapter/kinds.ts';
import type { Adapter, AdapterSet, LokrAdapter, LoraAdapter } from '../src/adapter/model.ts';
import { scaleSet } from '../src/lora/scale.ts';
import { memoryTensor, type LazyTensor } from '../src/tensor/lazy.ts';

const t = (...shape: number[]): LazyTensor => memoryTensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => ((i * 7) % 5) - 2), shape, 'F32', `t[${shape}]`);

const lora: LoraAdapter = { kind: 'lora', down: t(4, 6), up: t(10, 4), alpha: 2, scale: 0.5 };
/** LoKr with both Kronecker factors decomposed at different ranks: w1 = w1a [2,3] @ w1b [3,2], w2 = w2a [5,4] @ w2b [4,7]. */
const lokr: LokrAdapter = { kind: 'lokr', w1a: t(2, 3), w1b: t(3, 2), w2a: t(5, 4), w2b: t(4, 7), alpha: 8, scale: 2 };
const kinds: Adapter[] = [
  lora,
  { kind: 'loha', w1a: t(10, 3), w1b: t(3, 6), w2a: t(10, 3), w2b: t(3, 6), scale: 1 },
  lokr,
  { kind: 'lokr', w1: t(2, 2), w2: t(5, 3), scale: 1 },
  { kind: 'full', diff: t(9, 6) },
  { kind: 'set', value: t(12) },
];

describe('the adapter kind table', () => {
  it('has one row per adapter kind', () => {
    expect(Object.keys(ADAPTER_KINDS).sort()).toEqual(['full', 'loha', 'lokr', 'lora', 'set']);
  });

  it('rank: the rows of the factor alpha is divided by, none for whole factors, diffs and replacements', () => {
    expect(kinds.map(adapterRank)).toEqual([4, 3, 4, undefined, undefined, undefined]);
  });

  it('LoKr rank is lokr_w2_b before lokr_w1_b, from tensors and from key shapes alike', () => {
    expect(rankFromShapes('lokr', (f) => ({ w1b: [3, 2], w2b: [4, 7] })[f])).toBe(4);
    expect(rankFromShapes('lokr', (f) => ({ w1b: [3, 2] })[f])).toBe(3);
    expect(rankFromShapes('lora', () => undefined)).toBeUndefined();
  });

  it('rows of ΔW per kind (LoKr: the product of its factors rows)', () => {
    expect(kinds.map(adapterRows)).toEqual([10, 10, 10, 10, 9, 12]);
  });

  it('lists the tensors each adapter holds, in file order', () => {
    expect(adapterTensors(lora).map((x) => x.origin)).toEqual(['t[4,6]', 't[10,4]']);
    expect(adapterTensors(lokr).map((x) => x.origin)).toEqual(['t[2,3]', 't[3,2]', 't[5,4]', 't[4,7]']);
  });

  it('leaves adapters without Tucker cores as they are; folds a LoCon core into the down', async () => {
    for (const a of kinds) expect(withoutTucker(a)).toBe(a);
    const locon: LoraAdapter = { kind: 'lora', down: t(2, 3, 1, 1), mid: t(2, 2, 3, 3), up: t(4, 2, 1, 1), scale: 1 };
    const folded = withoutTucker(locon, 'conv') as LoraAdapter;
    expect(folded.mid).toBeUndefined();
    expect(folded.down.shape).toEqual([2, 3, 3, 3]);
    expect(loraDims(locon, 'conv')).toEqual({ rows: 4, rank: 2, cols: 27 });
  });

  it('loraDims refuses an up that does not match the rank', () => {
    expect(() => loraDims({ kind: 'lora', down: t(4, 6), up: t(10, 3), scale: 1 }, 'm')).toThrow(/m: up \[10,3\] does not match the rank 4/);
  });
});

describe('weighting keeps alpha / rank consistent with how the reader divides it', () => {
  it('a LoKr with both factors decomposed stores alpha = scale · rank(lokr_w2_b)', () => {
    const set: AdapterSet = { architecture: 'flux', format: 'lycoris', patches: [{ component: 'transformer', target: 'x.weight', adapter: lokr, source: { module: 'x', keys: [] } }], metadata: {}, unknownKeys: [], notes: [] };
    const out = scaleSet(set, 0.5).set.patches[0]!.adapter as LokrAdapter;
    expect(out.scale).toBe(1);
    expect(out.alpha).toBe(4);
  });
});
