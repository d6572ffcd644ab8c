/**
 * The math behind the pictures, by value against dense float64 references (src/samples/reference-delta.ts,
 * test/linalg-reference.ts): ‖ΔW‖_F and ⟨ΔW₁, ΔW₂⟩ of low-rank patches without forming ΔW (with row
 * slices of a fused weight, LoHa and full diffs among them), strength and cosine per FLUX block of
 * the sample LoRAs, relative to the sample base, the energy-kept-against-rank curves of merges and
 * extractions, and the per-tensor change norms an apply now collects while streaming.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Adapter, AdapterSet, Patch } from '../src/adapter/model.ts';
import { blockOf as fluxBlockOf } from '../src/formats/flux/blocks.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { analyzeStrength, innerProducts, lowRankNorm2, termOf } from '../src/lora/block-strength.ts';
import { openBaseNorms } from '../src/lora/base-norms.ts';
import { stackedCurve, truncatedCurve } from '../src/lora/spectrum.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { extractLora } from '../src/lora/extract.ts';
import { mergeData } from '../src/report/merge-data.ts';
import { extractData } from '../src/report/extract-data.ts';
import { applyData } from '../src/report/apply-plot.ts';
import { referenceAdapterDelta, referenceDeltas, type TargetDelta } from '../src/samples/reference-delta.ts';
import { randomF32, refSingularValues } from './linalg-reference.ts';
import { useSampleLoras } from './helpers/sample-loras.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-report-math-');
const samples = useSampleLoras(tmp);

const t = (data: Float32Array, shape: number[], name: string) => memoryTensor(data, shape, 'F32', name);

function patch(adapter: Adapter, rows?: [number, number], name = 'm'): Patch {
  return { component: 'transformer', target: 'w.weight', ...(rows ? { rows } : {}), adapter, source: { module: name, keys: [] } };
}

function lora(rows: number, rank: number, cols: number, seed: number, scale: number): Adapter {
  return { kind: 'lora', up: t(randomF32(rows * rank, seed), [rows, rank], 'up'), down: t(randomF32(rank * cols, seed + 1), [rank, cols], 'down'), alpha: scale * rank, scale };
}

/** A patch's dense f64 ΔW placed at its rows of a [height, cols] weight. */
async function placed(p: Patch, height: number, weight = 1): Promise<Float64Array> {
  const d = await referenceAdapterDelta(p.adapter);
  const out = new Float64Array(height * d.cols);
  const r0 = p.rows?.[0] ?? 0;
  for (let i = 0; i < d.data.length; i++) out[r0 * d.cols + i] = weight * d.data[i]!;
  return out;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);
const relClose = (actual: number, expected: number, tol: number) => expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tol * Math.max(1e-30, Math.abs(expected)));

describe('Frobenius norms and inner products of low-rank ΔW without forming it', () => {
  it('‖U D‖² = trace((UᵀU)(DDᵀ)) matches the dense product', async () => {
    const p = patch(lora(13, 3, 9, 11, 0.75));
    const ref = await placed(p, 13);
    const a = p.adapter as Extract<Adapter, { kind: 'lora' }>;
    relClose(lowRankNorm2(await a.up.f32(), await a.down.f32(), 13, 3, 9, a.scale), dot(ref, ref), 1e-12);
  });

  it('every pairwise ⟨ΔWᵢ, ΔWⱼ⟩ on one weight: whole, row slices (fused q/k/v), overlapping slices, LoHa and a full diff', async () => {
    const H = 12;
    const C = 7;
    const loha: Adapter = { kind: 'loha', w1a: t(randomF32(H * 2, 31), [H, 2], 'w1a'), w1b: t(randomF32(2 * C, 32), [2, C], 'w1b'), w2a: t(randomF32(H * 2, 33), [H, 2], 'w2a'), w2b: t(randomF32(2 * C, 34), [2, C], 'w2b'), alpha: 1, scale: 0.5 };
    const patches: { p: Patch; w: number }[] = [
      { p: patch(lora(H, 3, C, 1, 0.5)), w: 1 },
      { p: patch(lora(4, 2, C, 3, 1), [0, 4], 'to_q'), w: 0.7 },
      { p: patch(lora(4, 2, C, 5, 1), [4, 4], 'to_k'), w: -1.3 },
      { p: patch(lora(6, 1, C, 7, 2), [3, 6], 'overlapping'), w: 1 },
      { p: patch({ kind: 'full', diff: t(randomF32(8 * C, 9), [8, C], 'diff') }, [2, 8], 'full'), w: 0.4 },
      { p: patch(loha), w: 1 },
    ];
    const terms = await Promise.all(patches.map(({ p, w }) => termOf(p, w)));
    const m = innerProducts(terms.map((x) => x!));
    const dense = await Promise.all(patches.map(({ p, w }) => placed(p, H, w)));
    const n = patches.length;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) relClose(m[i * n + j]!, dot(dense[i]!, dense[j]!), 1e-5);
    // the norm of their sum: √(Σᵢⱼ Mᵢⱼ)
    const sum = dense.reduce((acc, d) => acc.map((v, k) => v + d[k]!), new Float64Array(H * C));
    relClose(m.reduce((s, v) => s + v, 0), dot(sum, sum), 1e-5);
  });

  it('replacements have no ΔW; weights of different widths are refused', async () => {
    expect(await termOf(patch({ kind: 'set', value: t(new Float32Array(4), [4], 'v') }))).toBeUndefined();
    const a = await termOf(patch(lora(3, 1, 4, 1, 1)));
    const b = await termOf(patch(lora(3, 1, 5, 2, 1)));
    expect(() => innerProducts([a!, b!])).toThrow(/disagree on its width/);
  });
});

/** Dense reference per FLUX block: Σ‖ΔW_t‖² per block, and per block Σ⟨ΔW_a,t, ΔW_b,t⟩ (weights aligned by rows). */
async function referenceBlocks(sets: readonly AdapterSet[], weights: readonly number[]) {
  const deltas = await Promise.all(sets.map((s) => referenceDeltas(s)));
  const norm2 = sets.map(() => new Map<string, number>());
  const cross = new Map<string, number>();
  const value = (d: TargetDelta | undefined, i: number) => (d && i < d.data.length ? d.data[i]! : 0);
  const keys = new Set(deltas.flatMap((d) => [...d.keys()]));
  for (const key of keys) {
    const [component, target] = key.split(/:(.*)/s) as [Patch['component'], string];
    const block = fluxBlockOf({ component, target }) ?? 'none';
    const ds = deltas.map((d) => d.get(key));
    const size = Math.max(...ds.map((d) => d?.data.length ?? 0));
    ds.forEach((d, s) => {
      let a = 0;
      for (let i = 0; i < size; i++) a += (weights[s]! * value(d, i)) ** 2;
      norm2[s]!.set(block, (norm2[s]!.get(block) ?? 0) + a);
    });
    if (ds.length === 2) {
      let c = 0;
      for (let i = 0; i < size; i++) c += weights[0]! * value(ds[0], i) * weights[1]! * value(ds[1], i);
      cross.set(block, (cross.get(block) ?? 0) + c);
    }
  }
  return { norm2, cross };
}

describe('strength by block and cosine similarity of the sample FLUX LoRAs', () => {
  it('‖ΔW‖_F per block and cosine per block match dense float64 references (weights 1 and 0.8)', async () => {
    const weights = [1, 0.8];
    const a = await analyzeStrength([samples.aitoolkit, samples.kohya], { weights });
    const ref = await referenceBlocks([samples.aitoolkit, samples.kohya], weights);
    expect(a.ids).toHaveLength(61);
    expect(a.sets.map((s) => s.blocks.map((b) => b.id))).toEqual([a.ids, a.ids]);
    for (const [s, set] of a.sets.entries()) {
      for (const b of set.blocks) relClose(b.norm ** 2, ref.norm2[s]!.get(b.id) ?? 0, 1e-5);
      expect(set.blocks.find((b) => b.id === 'D07')!.modules).toBeGreaterThan(0);
      expect(set.blocks.find((b) => b.id === 'CLIP')).toMatchObject({ norm: 0, modules: 0 });
    }
    const pair = a.cosines[0]!;
    expect([pair.a, pair.b]).toEqual([0, 1]);
    for (const b of pair.blocks) {
      const na = ref.norm2[0]!.get(b.id) ?? 0;
      const nb = ref.norm2[1]!.get(b.id) ?? 0;
      if (na === 0 || nb === 0) expect(b.cosine).toBeNull();
      else expect(b.cosine!).toBeCloseTo(ref.cross.get(b.id)! / Math.sqrt(na * nb), 6);
    }
    // a LoRA against itself (scaled): cosine 1 in every patched block
    const self = await analyzeStrength([samples.kohya, samples.kohya], { weights: [1, 0.5] });
    for (const b of self.cosines[0]!.blocks) if (b.cosine !== null) expect(b.cosine).toBeCloseTo(1, 9);
    // against its negative: −1
    const neg = await analyzeStrength([samples.kohya, samples.kohya], { weights: [1, -2] });
    expect(neg.cosines[0]!.total).toBeCloseTo(-1, 9);
  });

  it('rank, alpha and ‖ΔW‖ of every module (what the hover shows)', async () => {
    const a = await analyzeStrength([samples.kohya]);
    const deltas = await referenceDeltas(samples.kohya);
    const m = a.sets[0]!.modules.find((x) => x.target === 'double_blocks.3.img_attn.qkv.weight')!;
    expect(m).toMatchObject({ block: 'D03', kind: 'lora', rank: 8, alpha: 4, scale: 0.5 });
    const d = deltas.get('transformer:double_blocks.3.img_attn.qkv.weight')!;
    relClose(m.norm ** 2, dot(d.data, d.data), 1e-5);
  });

  it('relative to the base: ‖ΔW‖ / ‖W‖ over the base rows each LoRA changes', async () => {
    const base = path.join(samples.dir, 'flux-base.safetensors');
    const norms = await openBaseNorms(base, [samples.aitoolkit]);
    let a;
    try {
      a = await analyzeStrength([samples.aitoolkit], { baseNorm2: norms.norm2 });
    } finally {
      await norms.close();
    }
    // reference: the base weight's rows covered by the LoRA's patches (ai-toolkit: q, k, v slices of qkv)
    const file = await SafetensorsFile.open(base);
    try {
      const byBlock = new Map<string, number>();
      const covered = new Map<string, Set<number>>();
      for (const p of samples.aitoolkit.patches) {
        const rows = p.rows ?? [0, file.info(p.target).shape[0]!];
        const set = covered.get(p.target) ?? new Set<number>();
        for (let r = rows[0]; r < rows[0] + rows[1]; r++) set.add(r);
        covered.set(p.target, set);
      }
      for (const [target, rows] of covered) {
        const w = await file.readF32(target);
        const cols = w.length / file.info(target).shape[0]!;
        let s = 0;
        for (const r of rows) for (let j = 0; j < cols; j++) s += w[r * cols + j]! ** 2;
        const block = fluxBlockOf({ component: 'transformer', target })!;
        byBlock.set(block, (byBlock.get(block) ?? 0) + s);
      }
      for (const b of a.sets[0]!.blocks) {
        if (b.modules === 0) continue;
        relClose(b.baseNorm! ** 2, byBlock.get(b.id)!, 1e-9);
        relClose(b.relative!, b.norm / b.baseNorm!, 1e-12);
      }
      expect(a.sets[0]!.total.relative).toBeGreaterThan(0);
    } finally {
      await file.close();
    }
  });

  it('a base for another model is refused, naming the problem', async () => {
    await expect(openBaseNorms(path.join(samples.dir, 'sdxl-base.safetensors'), [samples.kohya])).rejects.toThrow(/^strength relative to .*sdxl-base\.safetensors: .*(flux|FLUX)/);
  });
});

describe('energy kept against rank', () => {
  it('of a sum of LoRAs on one weight (svd/concat merge): the exact spectrum of Σ wᵢΔWᵢ', async () => {
    const target = 'single_blocks.4.linear1.weight';
    const members = [...samples.aitoolkit.patches.filter((p) => p.target === target).map((p) => ({ patch: p, weight: 1 })), ...samples.kohya.patches.filter((p) => p.target === target).map((p) => ({ patch: p, weight: 0.8 }))];
    expect(members.length).toBeGreaterThan(1);
    const curve = await stackedCurve(members);
    const [da, dk] = [(await referenceDeltas(samples.aitoolkit)).get(`transformer:${target}`)!, (await referenceDeltas(samples.kohya)).get(`transformer:${target}`)!];
    const sum = Float64Array.from(dk.data, (v, i) => 0.8 * v + (da.data[i] ?? 0));
    const s = refSingularValues(sum, dk.rows, dk.cols);
    const total = s.reduce((acc, v) => acc + v * v, 0);
    relClose(curve.total, total, 1e-5);
    expect(curve.complete).toBe(true);
    let kept = 0;
    curve.energy.forEach((e, k) => {
      kept += s[k]! ** 2;
      expect(e).toBeCloseTo(kept / total, 5);
    });
    expect(curve.energy.at(-1)).toBeCloseTo(1, 6);
  });

  it('of a truncated factorisation: its output spectrum up to the kept rank, the whole from the reported error', async () => {
    const { set, report } = await mergeLoras([{ set: samples.aitoolkit, weight: 1 }, { set: samples.kohya, weight: 0.8 }], { method: 'svd', rank: 5 });
    const m = report.modules.find((x) => x.module === 'transformer:single_blocks.4.linear1.weight')!;
    const out = set.patches.find((p) => p.source.module === m.module)!;
    const curve = await truncatedCurve(out, m.relError);
    expect(curve.energy).toHaveLength(5);
    expect(curve.complete).toBe(false);
    expect(curve.energy[4]).toBeCloseTo(1 - m.relError ** 2, 6);
    const full = await stackedCurve([...samples.aitoolkit.patches, ...samples.kohya.patches].filter((p) => p.target === 'single_blocks.4.linear1.weight').map((p) => ({ patch: p, weight: samples.kohya.patches.includes(p) ? 0.8 : 1 })));
    for (let k = 0; k < 5; k++) expect(curve.energy[k]).toBeCloseTo(full.energy[k]!, 5);
  });

  it('what a merge did: per-module error from the report, the inputs of every module, a total curve through the chosen rank', async () => {
    const inputs = [{ set: samples.aitoolkit, weight: 1, label: 'a' }, { set: samples.kohya, weight: 0.8, label: 'k' }];
    const { set, report } = await mergeLoras(inputs, { method: 'svd', rank: 6 });
    const d = await mergeData({ report, inputs, output: set });
    expect(d.modules.map((m) => [m.module, m.rank, m.relError])).toEqual(report.modules.map((m) => [m.module, m.rank, m.relError]));
    expect(d.rank).toBe(6);
    // the total curve at the chosen rank is the merge's overall error
    expect(d.aggregate[5]).toBeCloseTo(1 - report.relError ** 2, 5);
    for (const m of d.modules) {
      const expected = inputs.flatMap((inp, i) => (inp.set.patches.some((p) => `${p.component}:${p.target}` === m.module.replace(/\[.*$/, '')) ? [i] : []));
      expect(m.inputs).toEqual(expected);
      expect(m.curve!.energy[5]).toBeCloseTo(1 - m.relError ** 2, 5);
    }
    expect(d.contributions.map((c) => c.modules.length)).toEqual([report.modules.length, report.modules.length]);
    // a dense method: curves from the written factors, up to the rank
    const ties = await mergeLoras(inputs, { method: 'ties', rank: 4, density: 0.5 });
    const dt = await mergeData({ report: ties.report, inputs, output: ties.set });
    expect(dt.aggregate).toHaveLength(4);
    expect(dt.aggregate[3]).toBeCloseTo(1 - ties.report.relError ** 2, 5);
  });

  it('of an extraction: per module up to its rank, ending at 1 − relError²', async () => {
    const { set, report } = await extractLora({ base: path.join(samples.dir, 'flux-base.safetensors'), tuned: path.join(samples.dir, 'flux-finetune.safetensors'), rank: 3 });
    const d = await extractData(report, set);
    expect(d.modules).toHaveLength(report.modules.length);
    for (const [i, m] of d.modules.entries()) {
      expect(m.curve!.energy).toHaveLength(report.modules[i]!.rank);
      expect(m.curve!.energy.at(-1)).toBeCloseTo(1 - report.modules[i]!.relError ** 2, 5);
    }
    expect(d.modules.some((m) => m.block === 'D00')).toBe(true);
  });
});

describe('what an apply changed, collected while streaming', () => {
  it('‖W‖ and ‖ΔW‖ per patched tensor match the base file, the written file and the dense reference; per block totals add up', async () => {
    const base = path.join(samples.dir, 'flux-base.safetensors');
    const out = tmp.path('applied.safetensors');
    const weights = [0.7, -0.5];
    const report = await applyToBase({ base, out, loras: [{ set: samples.kohya, weight: weights[0]! }, { set: samples.aitoolkit, weight: weights[1]! }] });
    const changes = report.files[0]!.changes;
    expect(changes.length).toBe(report.files[0]!.patched);
    const refs = await Promise.all([referenceDeltas(samples.kohya), referenceDeltas(samples.aitoolkit)]);
    const [b, o] = await Promise.all([SafetensorsFile.open(base), SafetensorsFile.open(out)]);
    try {
      for (const c of changes.filter((_, i) => i % 7 === 0)) {
        const w = await b.readF32(c.tensor);
        const w2 = await o.readF32(c.tensor);
        let base2 = 0;
        let diff2 = 0;
        let ref2 = 0;
        const parts = refs.map((r) => r.get(`${c.component}:${c.target}`));
        for (let i = 0; i < w.length; i++) {
          base2 += w[i]! ** 2;
          diff2 += (w2[i]! - w[i]!) ** 2;
          const d = parts.reduce((s, p, k) => s + weights[k]! * (p && i < p.data.length ? p.data[i]! : 0), 0);
          ref2 += d * d;
        }
        relClose(c.baseNorm, Math.sqrt(base2), 1e-9);
        relClose(c.changeNorm, Math.sqrt(ref2), 1e-5);
        // the written change: the same within the rounding of W + ΔW to f32
        relClose(c.changeNorm, Math.sqrt(diff2), 1e-3);
      }
    } finally {
      await Promise.all([b.close(), o.close()]);
    }
    const d = applyData(report, 'flux');
    const d05 = d.blocks.find((x) => x.id === 'D05')!;
    const mine = changes.filter((c) => fluxBlockOf({ component: 'transformer', target: c.target }) === 'D05');
    relClose(d05.changeNorm ** 2, mine.reduce((s, c) => s + c.changeNorm ** 2, 0), 1e-12);
    relClose(d05.relative, d05.changeNorm / d05.baseNorm, 1e-12);
    expect(d05.tensors.sort()).toEqual(mine.map((c) => c.tensor).sort());
  });
});
