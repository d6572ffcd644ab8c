/**
 * The interference-aware merges (linear, ties, dare, dare-ties, magnitude-prune) checked by value
 * against a straightforward dense float64 reference written here from the published definitions
 * (TIES: Yadav et al. 2023 — trim to the top-k magnitudes, elect the sign of the summed trimmed
 * vectors, disjoint mean; DARE: Yu et al. 2023 — Bernoulli drop with probability p, rescale by
 * 1/(1−p)), with the weights inside the task vectors τᵢ = wᵢ·ΔWᵢ. The DARE mask is re-derived here
 * from its documented recipe (mulberry32 drawn in index order, seeded by FNV-1a of
 * "seed:input:module"), independently of src/. FLUX-shaped fixtures (small widths, kohya + diffusers
 * mix, so one module is built from a whole-weight patch and row slices) and SDXL ones (LoCon with 3×3
 * convs), on the wasm and webgpu backends; plus merging into a base with --method.
 */
import { basePlusDeltaErrors } from './helpers/base-plus-delta.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { readLora, type AdapterSet, type LoraAdapter, type Patch } from '../src/formats/index.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { mergeLoras, type MergeOptions } from '../src/lora/merge.ts';
import { DENSE_METHODS, type DenseMethod } from '../src/lora/merge-methods.ts';
import { keepTopK } from '../src/lora/sparsify.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { compareDeltas, referenceAdapterDelta, referenceDeltas, type TargetDelta } from '../src/samples/reference-delta.ts';
import { writeSdLora, type SdLoraOptions } from '../src/samples/sd-lora-fixtures.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { referenceMask, referenceMerge, type Params } from './helpers/merge-reference.ts';
import { BACKENDS, SMALL_FLUX, adapterSet, bestRankK, diffusersLike, kohyaLike, loraPatch, randomTensor, relFrobenius } from './ops-fixtures.ts';

const tmp = useTempDir('loraflow-merge-methods-');

/** Checks a rank-limited result module by module: its error against the reference is the reference's own optimal truncation error (and what the report says). */
async function expectOptimalTruncation(got: AdapterSet, reportModules: { module: string; rank: number; relError: number }[], expected: Map<string, TargetDelta>, rank: number): Promise<number> {
  const out = await referenceDeltas(got);
  let worstRatio = 0;
  for (const [key, e] of expected) {
    const g = out.get(key)!;
    expect(g, key).toBeDefined();
    expect([g.rows, g.cols], key).toEqual([e.rows, e.cols]);
    const err = relFrobenius(g.data, e.data);
    const { s } = bestRankK(e.data, e.rows, e.cols, 0);
    const all = s.reduce((x, v) => x + v * v, 0);
    const optimal = Math.sqrt(s.slice(rank).reduce((x, v) => x + v * v, 0) / all);
    expect(err, key).toBeGreaterThanOrEqual(optimal * (1 - 1e-4) - 1e-6);
    expect(err, key).toBeLessThanOrEqual(optimal * 1.02 + 1e-5);
    const reported = reportModules.find((m) => m.module === key)!;
    expect(reported.rank, key).toBe(Math.min(rank, e.rows, e.cols));
    expect(reported.relError, key).toBeCloseTo(err, 4);
    worstRatio = Math.max(worstRatio, optimal > 0 ? err / optimal : 1);
  }
  return worstRatio;
}

const PARAMS: Record<DenseMethod, Params> = {
  linear: {},
  'magnitude-prune': { density: 0.3 },
  ties: { density: 0.4 },
  dare: { drop: 0.6, seed: 7 },
  'dare-ties': { drop: 0.3, seed: 11 },
};

async function bytesOf(set: AdapterSet): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const p of set.patches) if (p.adapter.kind === 'full') parts.push(Buffer.from(await p.adapter.diff.bytes()));
  return Buffer.concat(parts);
}

// ---- FLUX-shaped, every method, both backends -----------------------------------------------

describe.each(BACKENDS)('dense merge methods on FLUX-shaped LoRAs (%s)', (backend) => {
  beforeAll(async () => {
    expect(await useBackend(backend)).toBe(backend);
  });
  // kohya whole-weight qkv/linear1 + diffusers q/k/v slices of the same weights: one module each
  const inputs = () => [{ set: kohyaLike(4, 2, 1), weight: 0.7 }, { set: diffusersLike(3, 2), weight: -0.4 }];

  it.each(DENSE_METHODS)('%s, output diff: equals the float64 reference module by module', async (method) => {
    const { set, report } = await mergeLoras(inputs(), { method, output: 'diff', ...PARAMS[method] });
    const expected = await referenceMerge(method, inputs(), PARAMS[method]);
    const cmp = compareDeltas(expected, await referenceDeltas(set));
    expect(cmp.maxRelError, cmp.worst).toBeLessThan(1e-5);
    expect(report.method).toBe(method);
    expect(report.params).toEqual({ ...PARAMS[method], output: 'diff' });
    // the kohya qkv and the diffusers q/k/v slices are one module: one whole-weight diff
    const qkv = set.patches.filter((p) => p.target === 'double_blocks.0.img_attn.qkv.weight');
    expect(qkv).toHaveLength(1);
    expect(qkv[0]!.rows).toBeUndefined();
    expect(qkv[0]!.adapter.kind).toBe('full');
    expect(report.fused).toContain('transformer:double_blocks.0.img_attn.qkv.weight');
  });

  it.each(DENSE_METHODS)('%s at rank 6: the optimal truncation of the reference, error as reported', async (method) => {
    const rank = 6;
    const { set, report } = await mergeLoras(inputs(), { method, rank, ...PARAMS[method] });
    const expected = await referenceMerge(method, inputs(), PARAMS[method]);
    await expectOptimalTruncation(set, report.modules, expected, rank);
    expect(report.relError).toBeGreaterThan(0);
    for (const p of set.patches) expect(p.adapter.kind).toBe('lora');
  });

  it('dare: the same seed gives identical bytes, another seed another mask', async () => {
    const one = await mergeLoras(inputs(), { method: 'dare', output: 'diff', drop: 0.5, seed: 3 });
    const two = await mergeLoras(inputs(), { method: 'dare', output: 'diff', drop: 0.5, seed: 3 });
    const other = await mergeLoras(inputs(), { method: 'dare', output: 'diff', drop: 0.5, seed: 4 });
    const [a, b, c] = await Promise.all([bytesOf(one.set), bytesOf(two.set), bytesOf(other.set)]);
    expect(a.length).toBeGreaterThan(1000);
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
    // and a second read of the same lazy diff recomputes the same bytes
    expect((await bytesOf(one.set)).equals(a)).toBe(true);
  });
});

// ---- DARE's mask does not depend on the backend ---------------------------------------------

describe('DARE masks across backends', () => {
  it('wasm and webgpu keep exactly the same entries (the reference mask) for one seed', async () => {
    const input = [{ set: kohyaLike(4, 4, 21), weight: 1 }];
    const zeros: Uint8Array[] = [];
    const values: Map<string, TargetDelta>[] = [];
    for (const backend of BACKENDS) {
      expect(await useBackend(backend)).toBe(backend);
      const { set } = await mergeLoras(input, { method: 'dare', output: 'diff', drop: 0.5, seed: 99 });
      const deltas = await referenceDeltas(set);
      values.push(deltas);
      zeros.push(Uint8Array.from([...deltas.values()].flatMap((d) => [...d.data].map((v) => (v === 0 ? 0 : 1)))));
    }
    expect(Buffer.from(zeros[0]!).equals(Buffer.from(zeros[1]!))).toBe(true);
    const want = [...(await referenceDeltas(input[0]!.set)).entries()].flatMap(([key, d]) => [...referenceMask(d.rows * d.cols, 0.5, 99, 0, key)]);
    expect(Buffer.from(zeros[0]!).equals(Buffer.from(want))).toBe(true);
    expect(compareDeltas(values[0]!, values[1]!).maxRelError).toBeLessThan(1e-5);
    await useBackend('wasm');
  });
});

// ---- SDXL ------------------------------------------------------------------------------------

describe('dense merge methods on SDXL LoRAs (LoCon 3×3 convs, kohya + diffusers)', () => {
  const SMALL = /^(?:input_blocks\.[1-5]|middle_block)\.(?!\d+\.transformer_blocks\.[1-9])/;
  let sets: (AdapterSet & { close(): Promise<void> })[] = [];
  const lora = async (name: string, opts: SdLoraOptions) => {
    await writeSdLora(tmp.path(name), opts);
    return readLora(tmp.path(name));
  };
  beforeAll(async () => {
    expect(await useBackend('wasm')).toBe('wasm');
    sets = [
      await lora('sdxl-a.safetensors', { arch: 'sdxl', layout: 'kohya', targets: 'locon', tucker: true, only: SMALL, teLayers: 1, seed: 1 }),
      await lora('sdxl-b.safetensors', { arch: 'sdxl', layout: 'diffusers', targets: 'locon', only: SMALL, teLayers: 1, seed: 2 }),
    ];
    return async () => {
      await Promise.all(sets.map((s) => s.close()));
    };
  });
  const inputs = () => [{ set: sets[0]!, weight: 0.8 }, { set: sets[1]!, weight: 1.3 }];

  it.each(DENSE_METHODS)('%s, output diff: equals the reference; conv diffs keep their kernel', async (method) => {
    const { set } = await mergeLoras(inputs(), { method, output: 'diff', ...PARAMS[method] });
    expect(set.architecture).toBe('sdxl');
    const expected = await referenceMerge(method, inputs(), PARAMS[method]);
    const cmp = compareDeltas(expected, await referenceDeltas(set));
    expect(cmp.maxRelError, cmp.worst).toBeLessThan(1e-5);
    const conv = set.patches.find((p) => p.target === 'input_blocks.1.0.in_layers.2.weight')!;
    expect(conv.adapter.kind === 'full' && conv.adapter.diff.shape.length).toBe(4);
  });

  it.each(['ties', 'dare-ties'] as const)('%s at rank 4: the optimal truncation of the reference (linear and conv modules)', async (method) => {
    const { set, report } = await mergeLoras(inputs(), { method, rank: 4, ...PARAMS[method] });
    await expectOptimalTruncation(set, report.modules, await referenceMerge(method, inputs(), PARAMS[method]), 4);
    const conv = set.patches.find((p) => p.target === 'input_blocks.1.0.in_layers.2.weight')!.adapter as LoraAdapter;
    expect(conv.down.shape.length).toBe(4);
    expect(conv.up.shape).toEqual([conv.up.shape[0], 4, 1, 1]);
  });
});

// ---- edge cases ------------------------------------------------------------------------------

describe('dense merge methods: edge cases and refusals', () => {
  beforeAll(async () => {
    expect(await useBackend('wasm')).toBe('wasm');
  });
  const two = () => [{ set: kohyaLike(3, 3, 31), weight: 1.1 }, { set: kohyaLike(5, 2, 32), weight: -0.6 }];
  const diffOf = async (opts: MergeOptions, inputs = two()) => referenceDeltas((await mergeLoras(inputs, { output: 'diff', ...opts })).set);

  it('magnitude-prune at density 1 and dare at drop 0 are linear', async () => {
    const linear = await diffOf({ method: 'linear' });
    expect(compareDeltas(linear, await diffOf({ method: 'magnitude-prune', density: 1 })).maxRelError).toBe(0);
    expect(compareDeltas(linear, await diffOf({ method: 'dare', drop: 0 })).maxRelError).toBe(0);
    const sum = new Map([...(await referenceDeltas(two()[0]!.set))].map(([k, d]) => [k, { ...d, data: d.data.map((v) => 1.1 * v) }]));
    for (const [k, d] of await referenceDeltas(two()[1]!.set)) for (let j = 0; j < d.data.length; j++) sum.get(k)!.data[j]! += -0.6 * d.data[j]!;
    expect(compareDeltas(sum, linear).maxRelError).toBeLessThan(1e-6);
  });

  it('a vanishing density keeps exactly the largest entry of each input per module, never nothing', async () => {
    const one = [{ set: kohyaLike(3, 3, 33), weight: -2 }];
    const got = await diffOf({ method: 'magnitude-prune', density: 1e-9 }, one);
    for (const [key, d] of await referenceDeltas(one[0]!.set)) {
      const g = got.get(key)!.data;
      const nonzero = [...g.keys()].filter((j) => g[j] !== 0);
      expect(nonzero, key).toHaveLength(1);
      const j = nonzero[0]!;
      expect(Math.abs(d.data[j]!)).toBe(Math.max(...d.data.map(Math.abs)));
      expect(g[j]! / (-2 * d.data[j]!)).toBeCloseTo(1, 5);
    }
    expect(compareDeltas(got, await diffOf({ method: 'ties', density: 1e-9 }, one)).maxRelError).toBe(0);
  });

  it('a single input: ties is its trim (magnitude-prune), dare-ties is dare', async () => {
    const one = [{ set: kohyaLike(4, 4, 34), weight: -0.5 }];
    expect(compareDeltas(await diffOf({ method: 'magnitude-prune', density: 0.3 }, one), await diffOf({ method: 'ties', density: 0.3 }, one)).maxRelError).toBe(0);
    expect(compareDeltas(await diffOf({ method: 'dare', drop: 0.4, seed: 5 }, one), await diffOf({ method: 'dare-ties', drop: 0.4, seed: 5 }, one)).maxRelError).toBe(0);
  });

  it('ties: a LoRA against its own negation elects no sign and merges to exactly 0; weights vote with their sign', async () => {
    const a = kohyaLike(3, 3, 35);
    const cancel = await diffOf({ method: 'ties', density: 0.5 }, [{ set: a, weight: 1 }, { set: a, weight: -1 }]);
    for (const [key, d] of cancel) expect(d.data.every((v) => v === 0), key).toBe(true);
    // weight -1 on one copy and +1 on another of the same LoRA at weight 2: the larger weight wins every sign
    const win = await diffOf({ method: 'ties', density: 0.5 }, [{ set: a, weight: 2 }, { set: a, weight: -1 }]);
    const alone = await diffOf({ method: 'magnitude-prune', density: 0.5 }, [{ set: a, weight: 2 }]);
    expect(compareDeltas(alone, win).maxRelError).toBe(0);
  });

  it('keepTopK keeps the lowest indices among magnitudes tied at the threshold', () => {
    const v = Float32Array.from([1, -3, 2, -2, 2, 0, -2]);
    keepTopK(v, 3);
    expect([...v]).toEqual([0, -3, 2, -2, 0, 0, 0]);
    const w = Float32Array.from([0, 0, 0, 5]);
    keepTopK(w, 2);
    expect([...w]).toEqual([0, 0, 0, 5]);
  });

  it('refuses invalid density / drop / seed as input errors naming the param', async () => {
    const cases: [MergeOptions, RegExp][] = [
      [{ method: 'ties', density: 0, rank: 2 }, /density must be in \(0, 1\], got 0/],
      [{ method: 'ties', density: -0.1, rank: 2 }, /density must be in \(0, 1\], got -0.1/],
      [{ method: 'magnitude-prune', density: 1.5, rank: 2 }, /density must be in \(0, 1\], got 1.5/],
      [{ method: 'ties', density: Number.NaN, rank: 2 }, /density must be in \(0, 1\], got NaN/],
      [{ method: 'dare', drop: 1, rank: 2 }, /drop must be in \[0, 1\), got 1/],
      [{ method: 'dare-ties', drop: -0.2, rank: 2 }, /drop must be in \[0, 1\), got -0.2/],
      [{ method: 'dare', drop: Number.NaN, rank: 2 }, /drop must be in \[0, 1\), got NaN/],
      [{ method: 'dare', seed: 1.5, rank: 2 }, /seed must be an integer/],
      [{ method: 'dare', density: 0.5, rank: 2 }, /density applies to ties and magnitude-prune; dare takes drop/],
      [{ method: 'ties', drop: 0.5, rank: 2 }, /drop applies to dare and dare-ties; ties takes density/],
      [{ method: 'linear', seed: 1, rank: 2 }, /seed applies to dare and dare-ties/],
      [{ method: 'ties' }, /give a rank or an energy fraction .* or output diff/],
      [{ method: 'ties', output: 'diff', rank: 4 }, /output diff is exact/],
      [{ method: 'concat', density: 0.5 }, /density applies to the dense methods/],
      [{ method: 'svd', rank: 2, output: 'diff' }, /output applies to the dense methods/],
    ];
    for (const [opts, message] of cases) {
      await expect(mergeLoras(two(), opts), JSON.stringify(opts)).rejects.toMatchObject({ name: 'LoraflowError', fault: 'input', message: expect.stringMatching(message) });
    }
  });

  it('accepts LoHa, LoKr and full diffs as they are (no refactor), and refuses DoRA by name', async () => {
    const loha: Patch = {
      component: 'transformer', target: 'double_blocks.0.img_attn.proj.weight',
      adapter: { kind: 'loha', w1a: randomTensor([48, 2], 41), w1b: randomTensor([2, 48], 42), w2a: randomTensor([48, 2], 43), w2b: randomTensor([2, 48], 44), scale: 0.5 },
      source: { module: 'loha_proj', keys: [] },
    };
    const diff: Patch = { component: 'transformer', target: 'double_blocks.0.img_attn.proj.weight', adapter: { kind: 'full', diff: randomTensor([48, 48], 45, 0.1) }, source: { module: 'diff_proj', keys: [] } };
    const bias: Patch = { component: 'transformer', target: 'double_blocks.0.img_attn.qkv.bias', adapter: { kind: 'full', diff: randomTensor([144], 46, 0.1) }, source: { module: 'bias', keys: [] } };
    const inputs = [{ set: adapterSet([loha, bias]), weight: 0.9 }, { set: adapterSet([diff, { ...bias, adapter: { kind: 'full', diff: randomTensor([144], 47, 0.1) } }]), weight: 1.2 }];
    const { set } = await mergeLoras(inputs, { method: 'ties', output: 'diff', density: 0.5 });
    const cmp = compareDeltas(await referenceMerge('ties', inputs, { density: 0.5 }), await referenceDeltas(set));
    expect(cmp.maxRelError, cmp.worst).toBeLessThan(1e-5);
    const p = loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2 }, 48);
    const dora = { ...p, dora: { magnitude: randomTensor([48], 49), axis: 'out' as const }, source: { module: 'dora_module', keys: [] } };
    await expect(mergeLoras([{ set: adapterSet([dora]), weight: 1 }], { method: 'ties', rank: 2 })).rejects.toThrow(/DoRA.*dora_module \(input 1\)/);
  });

  it('linear at a rank equals the svd method (the same sum, factored)', async () => {
    const a = await mergeLoras(two(), { method: 'linear', rank: 4 });
    const b = await mergeLoras(two(), { method: 'svd', rank: 4 });
    expect(compareDeltas(await referenceDeltas(b.set), await referenceDeltas(a.set)).maxRelError).toBeLessThan(1e-4);
    expect(a.report.relError).toBeCloseTo(b.report.relError, 4);
  });
});

// ---- into a base -----------------------------------------------------------------------------

describe('merge into a base with a method', () => {
  beforeAll(async () => {
    expect(await useBackend('wasm')).toBe('wasm');
  });

  it.each([['ties', { density: 0.4 }], ['dare', { drop: 0.5, seed: 2 }]] as const)('--method %s writes base + the reference merged ΔW', async (method, params) => {
    const basePath = tmp.path(`base-${method}.safetensors`);
    const out = tmp.path(`out-${method}.safetensors`);
    await writeFluxCheckpoint(basePath, { ...SMALL_FLUX, dtype: 'F32' });
    const inputs = [{ set: kohyaLike(4, 2, 51), weight: 0.8 }, { set: diffusersLike(3, 52), weight: 0.6 }];
    const report = await applyToBase({ base: basePath, out, loras: inputs, method, ...params });
    expect(report.notes.join('\n')).toContain(`${method} merge of the 2 LoRAs`);
    const merged = await referenceMerge(method, inputs, params);
    const base = await SafetensorsFile.open(basePath);
    const got = await SafetensorsFile.open(out);
    try {
      const errors = await basePlusDeltaErrors(base, got, (name) => merged.get(`transformer:${name}`));
      for (const [name, e] of errors) expect(e, name).toBeLessThan(1e-5);
      expect(errors.size).toBe(merged.size);
      expect(JSON.parse(got.metadata!.loraflow!)).toMatchObject({ operation: 'apply', method: { name: method, ...params } });
    } finally {
      await base.close();
      await got.close();
    }
    // the plain (linear) default is today's behaviour: W + Σ wᵢ·ΔWᵢ
    await expect(applyToBase({ base: basePath, out: tmp.path('bad.safetensors'), loras: inputs, method: 'ties', density: 2 })).rejects.toThrow(/apply \(ties\): density must be in \(0, 1\]/);
  });

  it('a merged diff set writes as comfyui .diff keys, and kohya/diffusers say what they cannot hold', async () => {
    const { set } = await mergeLoras([{ set: kohyaLike(2, 2, 61), weight: 1 }, { set: kohyaLike(2, 2, 62), weight: 1 }], { method: 'ties', output: 'diff' });
    const { writeLora } = await import('../src/formats/index.ts');
    await writeLora(tmp.path('ties-diff.safetensors'), set, { format: 'comfyui' });
    const back = await readLora(tmp.path('ties-diff.safetensors'));
    try {
      expect(compareDeltas(await referenceDeltas(set), await referenceDeltas(back)).maxRelError).toBe(0);
      const f = await SafetensorsFile.open(tmp.path('ties-diff.safetensors'));
      expect(f.tensors.some((t) => t.name === 'diffusion_model.double_blocks.0.img_attn.qkv.diff')).toBe(true);
      await f.close();
    } finally {
      await back.close();
    }
    await expect(writeLora(tmp.path('ties-diffusers.safetensors'), set, { format: 'diffusers' })).rejects.toMatchObject({ code: 'INEXPRESSIBLE' });
  });

  it('keeps a module built from one LoRA exact when the rank covers it (rank output, single module)', async () => {
    const p = loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2 }, 70);
    const { set, report } = await mergeLoras([{ set: adapterSet([p]), weight: 1 }], { method: 'linear', rank: 8 });
    expect(report.relError).toBeLessThan(1e-5);
    const want = await referenceAdapterDelta(p.adapter);
    expect(relFrobenius((await referenceDeltas(set)).get('transformer:double_blocks.0.img_attn.proj.weight')!.data, want.data)).toBeLessThan(1e-5);
  });
});
