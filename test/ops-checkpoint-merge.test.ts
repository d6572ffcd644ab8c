/**
 * Checkpoint merges (src/lora/checkpoint-merge.ts) checked by value, tensor by tensor, against a
 * dense float64 reference written here from the definitions: weighted sum Σ wᵢ·Aᵢ, add difference
 * A + α(B − C), and over task vectors τᵢ = wᵢ·(Mᵢ − Base): TIES (Yadav et al. 2023: trim each τᵢ to
 * its top-k magnitudes, elect the sign of Σ τ̂ᵢ per entry, mean of the agreeing non-zero entries),
 * DARE (Yu et al. 2023: drop each entry with probability p, rescale the rest by 1/(1 − p); mask
 * re-derived in test/helpers/merge-reference.ts), dare-ties, magnitude-prune; Base + α·merged.
 * Fixtures: FLUX-shaped shrunk checkpoints (real key names, 2 + 2 blocks) and an SD1.5 single file.
 */
import { readdir } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { mergeCheckpoints, type CheckpointMergeOptions } from '../src/lora/checkpoint-merge.ts';
import type { CheckpointMethod } from '../src/lora/checkpoint-methods.ts';
import { SafetensorsFile, withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { encodeFromF32, type DType } from '../src/tensor/dtype.ts';
import { fluxCheckpointShapes, fluxTensorValues, type FluxTensorSpec } from '../src/samples/flux-checkpoint.ts';
import { sdCheckpointShapes, sdTensorValues, type SdTensorSpec } from '../src/samples/sd-checkpoint.ts';
import { exists, sha256 } from './helpers/files.ts';
import { referenceMask } from './helpers/merge-reference.ts';
import { sameBytes, tensorsOf } from './helpers/tensors.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-ckpt-merge-');
const FLUX = { scale: 32, doubleBlocks: 2, singleBlocks: 2 };
const PREFIX = 'model.diffusion_model.';

interface ModelOptions {
  seed: number;
  dtype?: DType;
  prefix?: string;
  /** Change a tensor's values (by name without prefix) or its spec. */
  edit?: (key: string, values: Float32Array) => Float32Array;
  spec?: (s: FluxTensorSpec) => FluxTensorSpec;
  drop?: string;
}

/** A FLUX-shaped model: every tensor from (seed, name) except the norm scales, which every model shares (identical tensors). */
async function writeFlux(name: string, o: ModelOptions): Promise<string> {
  const path = tmp.path(name);
  const prefix = o.prefix ?? '';
  const specs = fluxCheckpointShapes({ ...FLUX, dtype: o.dtype ?? 'BF16', prefix }).filter((s) => s.name.slice(prefix.length) !== o.drop).map((s) => o.spec?.(s) ?? s);
  const entries: TensorEntry[] = specs.map((s) => ({
    name: s.name,
    dtype: s.dtype,
    shape: s.shape,
    data: async () => {
      const key = s.name.slice(prefix.length);
      const v = fluxTensorValues(s, { prefix, seed: s.role === 'norm' ? 0 : o.seed });
      return encodeFromF32(o.edit ? o.edit(key, v) : v, s.dtype);
    },
  }));
  await writeSafetensors(path, entries, { order: 'reference', metadata: { model: name } });
  return path;
}

async function writeSd(name: string, seed: number, opts: { dtype?: DType; spec?: (s: SdTensorSpec) => SdTensorSpec } = {}): Promise<string> {
  const path = tmp.path(name);
  const specs = sdCheckpointShapes({ arch: 'sd1', factor: 64, dtype: opts.dtype ?? 'F16' }).map((s) => opts.spec?.(s) ?? s);
  const entries: TensorEntry[] = specs.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, data: async () => encodeFromF32(sdTensorValues(s, { seed }), s.dtype) }));
  await writeSafetensors(path, entries, { order: 'reference' });
  return path;
}

async function readAll(path: string): Promise<Map<string, { dtype: string; values: Float64Array }>> {
  return withSafetensors(path, async (f) => {
    const out = new Map<string, { dtype: string; values: Float64Array }>();
    for (const t of f.tensors) out.set(t.name, { dtype: t.dtype, values: Float64Array.from(await f.readF32(t.name)) });
    return out;
  });
}

const strip = (n: string) => (n.startsWith(PREFIX) ? n.slice(PREFIX.length) : n);
const pad2 = (i: string) => i.padStart(2, '0');

/** FLUX block of a tensor, written out here from the LoRA Block Weight ids. */
function fluxBlock(name: string): string | undefined {
  const k = strip(name);
  let m = /^double_blocks\.(\d+)\./.exec(k);
  if (m) return `D${pad2(m[1]!)}`;
  m = /^single_blocks\.(\d+)\./.exec(k);
  if (m) return `S${pad2(m[1]!)}`;
  if (/^(img_in|txt_in|time_in|vector_in|guidance_in)\./.test(k)) return 'IN';
  if (k.startsWith('final_layer.')) return 'OUT';
  return undefined;
}

function sdBlock(name: string): string | undefined {
  if (name.startsWith('cond_stage_model.')) return 'BASE';
  const m = /^model\.diffusion_model\.(input_blocks|middle_block|output_blocks)\.(\d+)\./.exec(name);
  if (!m) return undefined;
  return m[1] === 'middle_block' ? 'MID' : `${m[1] === 'input_blocks' ? 'IN' : 'OUT'}${pad2(m[2]!)}`;
}

/** Keep the k = max(1, round(density·n)) largest |entries| (ties: lowest index first), zero the rest. */
function trim(t: Float64Array, density: number): void {
  const k = Math.max(1, Math.round(density * t.length));
  const order = Array.from({ length: t.length }, (_, j) => j).sort((a, b) => Math.abs(t[b]!) - Math.abs(t[a]!) || a - b);
  for (const j of order.slice(k)) t[j] = 0;
}

/** Sign election + disjoint mean. */
function tiesCombine(list: readonly Float64Array[]): Float64Array {
  const n = list[0]!.length;
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (const t of list) s += t[j]!;
    const sign = Math.sign(s);
    let sum = 0;
    let count = 0;
    for (const t of list) if (t[j] !== 0 && Math.sign(t[j]!) === sign) [sum, count] = [sum + t[j]!, count + 1];
    out[j] = count ? sum / count : 0;
  }
  return out;
}

interface RefParams {
  method: CheckpointMethod;
  alpha: number;
  weights?: number[];
  density?: number;
  drop?: number;
  seed?: number;
}

/** The reference result of one tensor from the inputs' values (models, then the base). */
function reference(p: RefParams, module: string, models: Float64Array[], base?: Float64Array): Float64Array {
  const n = models[0]!.length;
  const out = new Float64Array(n);
  if (p.method === 'weighted') {
    const w = p.weights ?? (models.length === 2 ? [1 - p.alpha, p.alpha] : [1 - p.alpha, p.alpha / 2, p.alpha / 2]);
    for (let j = 0; j < n; j++) out[j] = models.reduce((s, m, i) => s + w[i]! * m[j]!, 0);
    return out;
  }
  if (p.method === 'add-difference') {
    const [a, b, c] = models as [Float64Array, Float64Array, Float64Array];
    for (let j = 0; j < n; j++) out[j] = a[j]! + p.alpha * (b[j]! - c[j]!);
    return out;
  }
  const tau = models.map((m, i) => {
    const w = p.weights?.[i] ?? 1;
    const t = Float64Array.from(m, (v, j) => w * (v - base![j]!));
    if (p.method === 'ties' || p.method === 'magnitude-prune') trim(t, p.density ?? 0.5);
    if (p.method === 'dare' || p.method === 'dare-ties') {
      const drop = p.drop ?? 0.5;
      const mask = referenceMask(n, drop, p.seed ?? 0, i, module);
      for (let j = 0; j < n; j++) t[j] = mask[j] ? t[j]! / (1 - drop) : 0;
    }
    return t;
  });
  const merged = p.method === 'ties' || p.method === 'dare-ties' ? tiesCombine(tau) : Float64Array.from({ length: n }, (_, j) => tau.reduce((s, t) => s + t[j]!, 0));
  for (let j = 0; j < n; j++) out[j] = base![j]! + p.alpha * merged[j]!;
  return out;
}

/** max |got − want| over max |want| (0 for an all-zero want that is matched). */
function relError(got: Float64Array, want: Float64Array): number {
  let diff = 0;
  let scale = 0;
  for (let j = 0; j < want.length; j++) {
    diff = Math.max(diff, Math.abs(got[j]! - want[j]!));
    scale = Math.max(scale, Math.abs(want[j]!));
  }
  return scale === 0 ? diff : diff / scale;
}

/**
 * Runs the merge (F32 output unless told otherwise) and checks every float tensor of the output
 * against the reference with the tensor's α; returns how many tensors differed from the inputs.
 */
async function checkMerge(opts: Omit<CheckpointMergeOptions, 'out'>, ref: (name: string) => RefParams, moduleOf: (name: string) => string, tol = 2e-6): Promise<{ checked: number; report: Awaited<ReturnType<typeof mergeCheckpoints>> }> {
  const out = tmp.path(`out-${Math.random().toString(36).slice(2)}.safetensors`);
  const report = await mergeCheckpoints({ dtype: 'fp32', ...opts, out });
  const got = await readAll(out);
  const models = await Promise.all(opts.models.map(readAll));
  const base = opts.base ? await readAll(opts.base) : undefined;
  const byKey = (m: Map<string, { values: Float64Array }>, name: string) => [...m].find(([n]) => strip(n) === strip(name))![1].values;
  let checked = 0;
  for (const [name, t] of got) {
    if (!['F32', 'BF16', 'F16', 'F8_E4M3'].includes(t.dtype)) continue;
    const want = reference(ref(name), moduleOf(name), models.map((m) => byKey(m, name)), base && byKey(base, name));
    expect(relError(t.values, want), name).toBeLessThanOrEqual(tol);
    checked++;
  }
  return { checked, report };
}

const fluxModule = (name: string) => `transformer:${strip(name)}`;

describe('checkpoint merges by value (FLUX-shaped)', () => {
  let base: string, a: string, b: string, c: string, aPrefixed: string, aF16: string;
  beforeAll(async () => {
    base = await writeFlux('base.safetensors', { seed: 10 });
    a = await writeFlux('a.safetensors', { seed: 11 });
    b = await writeFlux('b.safetensors', { seed: 12 });
    c = await writeFlux('c.safetensors', { seed: 13 });
    aPrefixed = await writeFlux('a-prefixed.safetensors', { seed: 11, prefix: PREFIX });
    aF16 = await writeFlux('a-f16.safetensors', { seed: 11, dtype: 'F16' });
  });

  it('weighted, two models: (1 − α)·A + α·B per tensor; three models with weights: Σ wᵢ·Aᵢ', async () => {
    const two = await checkMerge({ method: 'weighted', models: [a, b], alpha: 0.3 }, () => ({ method: 'weighted', alpha: 0.3 }), fluxModule);
    expect(two.checked).toBe(fluxCheckpointShapes(FLUX).length);
    expect(two.report.identical).toBe(fluxCheckpointShapes(FLUX).filter((s) => s.role === 'norm').length);
    const three = await checkMerge({ method: 'weighted', models: [a, b, c], weights: [0.5, 0.3, -0.2] }, () => ({ method: 'weighted', alpha: 0, weights: [0.5, 0.3, -0.2] }), fluxModule);
    // Σw ≠ 1: identical inputs are merged too (0.6·x, not x)
    expect(three.report.identical).toBe(0);
    expect(three.report.merged).toBe(three.checked);
    await checkMerge({ method: 'weighted', models: [a, b, c], alpha: 0.6 }, () => ({ method: 'weighted', alpha: 0.6 }), fluxModule);
  });

  it('add-difference: A + α·(B − C), A with the model.diffusion_model. prefix and B, C without; the output keeps A\'s names', async () => {
    const { report } = await checkMerge({ method: 'add-difference', models: [aPrefixed, b, c], alpha: 0.7 }, () => ({ method: 'add-difference', alpha: 0.7 }), fluxModule);
    expect(report.merged).toBeGreaterThan(50);
    const names = await withSafetensors(tmp.path(await latestOut()), async (f) => f.tensors.map((t) => t.name));
    expect(names.every((n) => n.startsWith(PREFIX))).toBe(true);
  });

  it.each([
    ['ties', { density: 0.3, weights: [1, 0.5], alpha: 0.8 }],
    ['magnitude-prune', { density: 0.2, weights: [0.5, 1], alpha: 1 }],
    ['dare', { drop: 0.4, seed: 7, weights: [1, 0.5], alpha: 0.9 }],
    ['dare-ties', { drop: 0.3, seed: 3, weights: [1, 1], alpha: 1 }],
  ] as const)('%s over task vectors relative to the base, by the definition', async (method, p) => {
    const { checked, report } = await checkMerge({ method, models: [a, b], base, ...p }, () => ({ method, ...p, weights: [...p.weights] }), fluxModule);
    expect(checked).toBe(fluxCheckpointShapes(FLUX).length);
    expect(report.merged + report.identical).toBe(checked);
    expect(report.params).toMatchObject(p);
  });

  it('dare with three models and the default drop/seed', async () => {
    await checkMerge({ method: 'dare', models: [a, b, c], base }, () => ({ method: 'dare', alpha: 1 }), fluxModule);
  });

  it('DARE is the same for one seed on every run, different for another, and independent of the key prefix', async () => {
    const run = async (seed: number, models: string[], name: string) => {
      await mergeCheckpoints({ method: 'dare', models, base, drop: 0.5, seed, out: tmp.path(name) });
      return tensorsOf(tmp.path(name));
    };
    const first = await run(5, [a, b], 'dare-5a.safetensors');
    const again = await run(5, [a, b], 'dare-5b.safetensors');
    const other = await run(6, [a, b], 'dare-6.safetensors');
    const prefixed = await run(5, [aPrefixed, b], 'dare-5p.safetensors');
    let differ = 0;
    for (const [name, t] of first) {
      expect(sameBytes(t.bytes, again.get(name)!.bytes), name).toBe(true);
      expect(sameBytes(t.bytes, prefixed.get(PREFIX + name)!.bytes), name).toBe(true);
      if (!sameBytes(t.bytes, other.get(name)!.bytes)) differ++;
    }
    // every tensor the method changes gets another mask with another seed (norms are identical inputs)
    expect(differ).toBe(fluxCheckpointShapes(FLUX).filter((s) => s.role !== 'norm').length);
  });

  it('per-block α: each tensor gets its block\'s α (D00, S01, OUT named) or the global one', async () => {
    const alphas: Record<string, number> = { D00: 0.2, S01: 0.9, OUT: 1 };
    const alphaOf = (name: string) => alphas[fluxBlock(name) ?? ''] ?? 0.5;
    const { report } = await checkMerge(
      { method: 'weighted', models: [a, b], alpha: 0.5, blocks: 'D00=0.2,S01=0.9,OUT=1' },
      (name) => ({ method: 'weighted', alpha: alphaOf(name) }),
      fluxModule,
    );
    expect(report.blocks?.alpha).toEqual(alphas);
    expect(report.blocks?.unassigned).toBe(0);
    // and over task vectors, with a range
    await checkMerge(
      { method: 'ties', models: [a, b], base, density: 0.5, blocks: 'D00-D01=0,S00-S01=0.5,IN=2' },
      (name) => ({ method: 'ties', alpha: { D00: 0, D01: 0, S00: 0.5, S01: 0.5, IN: 2 }[fluxBlock(name) ?? ''] ?? 1, density: 0.5 }),
      fluxModule,
    );
  });

  it('output dtype: A\'s per tensor by default (BF16), identical tensors copied byte for byte; --dtype chooses', async () => {
    const out = tmp.path('mixed.safetensors');
    // A bf16, B f16: the output is bf16, the reference rounded once to bf16
    const report = await mergeCheckpoints({ method: 'weighted', models: [a, aF16], alpha: 0.25, out });
    expect(report.identical).toBe(0);
    const outT = await tensorsOf(out);
    const aT = await tensorsOf(a);
    for (const [name, t] of outT) expect(t.dtype, name).toBe('BF16');
    const got = await readAll(out);
    const [va, vb] = [await readAll(a), await readAll(aF16)];
    for (const [name, t] of got) {
      const want = reference({ method: 'weighted', alpha: 0.25 }, '', [va.get(name)!.values, vb.get(name)!.values]);
      expect(relError(t.values, want), name).toBeLessThan(2 ** -8);
    }
    const same = tmp.path('same-dtype.safetensors');
    const r2 = await mergeCheckpoints({ method: 'weighted', models: [a, b], out: same });
    const sameT = await tensorsOf(same);
    const norms = fluxCheckpointShapes(FLUX).filter((s) => s.role === 'norm').map((s) => s.name);
    expect(r2.identical).toBe(norms.length);
    for (const n of norms) expect(sameBytes(sameT.get(n)!.bytes, aT.get(n)!.bytes), n).toBe(true);
    const meta = await withSafetensors(same, async (f) => f.metadata);
    expect(meta?.model).toBe('a.safetensors');
    expect(JSON.parse(meta!.loraflow!)).toMatchObject({ operation: 'merge-checkpoints', method: 'weighted', alpha: 0.5 });
    const fp16 = tmp.path('as-fp16.safetensors');
    await mergeCheckpoints({ method: 'weighted', models: [a, b], out: fp16, dtype: 'fp16' });
    for (const [name, t] of await tensorsOf(fp16)) expect(t.dtype, name).toBe('F16');
  });

  it('FP8 inputs: the output is FP8 (A\'s), within FP8 rounding of the reference', async () => {
    const a8 = await writeFlux('a-fp8.safetensors', { seed: 11, dtype: 'F8_E4M3' });
    await checkMerge({ method: 'weighted', models: [a8, b], alpha: 0.5, dtype: 'keep' }, () => ({ method: 'weighted', alpha: 0.5 }), fluxModule, 2 ** -3);
    const out = tmp.path(await latestOut());
    for (const [name, t] of await tensorsOf(out)) expect(t.dtype, name).toBe('F8_E4M3');
  });

  it('non-finite results are written and reported per tensor', async () => {
    const inf = await writeFlux('a-inf.safetensors', { seed: 11, dtype: 'F32', edit: (k, v) => (k === 'img_in.weight' ? ((v[3] = Infinity), v) : v) });
    const logs: string[] = [];
    const report = await mergeCheckpoints({ method: 'weighted', models: [inf, b], out: tmp.path('inf-out.safetensors'), ctx: { log: (m) => logs.push(m) } });
    expect(report.nonFinite).toEqual([{ tensor: 'img_in.weight', count: 1 }]);
    expect(report.notes.join('\n')).toContain('img_in.weight (1)');
    expect(logs.join('\n')).toContain('tensor img_in.weight: 1 non-finite value');
  });
});

/** The newest out-*.safetensors checkMerge wrote. */
async function latestOut(): Promise<string> {
  const { stat } = await import('node:fs/promises');
  const files = (await readdir(tmp.dir)).filter((f) => f.startsWith('out-'));
  const times = await Promise.all(files.map(async (f) => [f, (await stat(tmp.path(f))).mtimeMs] as const));
  return times.sort((x, y) => y[1] - x[1])[0]![0];
}

describe('checkpoint merges by value (SD1.5 single file)', () => {
  let base: string, m1: string, m2: string;
  beforeAll(async () => {
    base = await writeSd('sd-base.safetensors', 20);
    m1 = await writeSd('sd-1.safetensors', 21);
    m2 = await writeSd('sd-2.safetensors', 22);
  });
  const sdModule = (name: string) => (name.startsWith(PREFIX) ? `unet:${strip(name)}` : name);

  it('ties with per-block α (IN01-IN05, MID, BASE): every tensor by its block; integers copied byte for byte', async () => {
    const alphas: Record<string, number> = { IN01: 0.25, IN02: 0.25, IN03: 0.25, IN04: 0.25, IN05: 0.25, MID: 0, BASE: 0.5 };
    const { report, checked } = await checkMerge(
      { method: 'ties', models: [m1, m2], base, density: 0.4, alpha: 0.9, blocks: 'IN01-IN05=0.25,MID=0,BASE=0.5' },
      (name) => ({ method: 'ties', alpha: alphas[sdBlock(name) ?? ''] ?? 0.9, density: 0.4 }),
      sdModule,
      1e-5,
    );
    expect(checked).toBeGreaterThan(100);
    expect(report.architecture).toBe('sd1');
    expect(report.nonFloat).toBe(1);
    expect(report.blocks?.unassigned).toBeGreaterThan(0); // VAE, conv_in/out, embeddings
    const out = await tensorsOf(tmp.path(await latestOut()));
    const ids = 'cond_stage_model.transformer.text_model.embeddings.position_ids';
    expect(out.get(ids)!.dtype).toBe('I64');
    expect(sameBytes(out.get(ids)!.bytes, (await tensorsOf(m1)).get(ids)!.bytes)).toBe(true);
  });

  it('dare and add-difference on SD', async () => {
    await checkMerge({ method: 'dare', models: [m1, m2], base, drop: 0.6, seed: 9 }, () => ({ method: 'dare', alpha: 1, drop: 0.6, seed: 9 }), sdModule, 1e-5);
    await checkMerge({ method: 'add-difference', models: [m1, m2, base], alpha: 0.5 }, () => ({ method: 'add-difference', alpha: 0.5 }), sdModule, 1e-5);
  });
});

describe('refusals: named, before anything is written, inputs unmodified', () => {
  let a: string, b: string, c: string, base: string;
  let dir: string[];
  beforeAll(async () => {
    a = await writeFlux('r-a.safetensors', { seed: 1 });
    b = await writeFlux('r-b.safetensors', { seed: 2 });
    c = await writeFlux('r-c.safetensors', { seed: 3 });
    base = await writeFlux('r-base.safetensors', { seed: 4 });
  });

  async function refused(opts: Omit<CheckpointMergeOptions, 'out'>, ...expected: (string | RegExp)[]): Promise<void> {
    const inputs = [...opts.models, ...(opts.base ? [opts.base] : [])];
    const before = await Promise.all(inputs.map(sha256));
    dir = await readdir(tmp.dir);
    const out = tmp.path('refused.safetensors');
    const err = await mergeCheckpoints({ ...opts, out }).then(() => undefined, (e: Error) => e);
    expect(err, 'the merge was refused').toBeInstanceOf(Error);
    for (const e of expected) expect(err!.message).toMatch(e);
    expect(await exists(out)).toBe(false);
    expect((await readdir(tmp.dir)).sort()).toEqual(dir.sort());
    expect(await Promise.all(inputs.map(sha256))).toEqual(before);
  }

  it('a shape mismatch names the tensor and both files', async () => {
    const wide = await writeFlux('r-shape.safetensors', { seed: 2, spec: (s) => (s.name === 'single_blocks.1.linear2.weight' ? { ...s, shape: [s.shape[0]!, s.shape[1]! - 1] } : s) });
    await refused({ method: 'weighted', models: [a, wide] }, 'single_blocks.1.linear2.weight', a, wide, /shape/);
  });

  it('a missing tensor names the tensor and the file that lacks it (either way round)', async () => {
    const less = await writeFlux('r-missing.safetensors', { seed: 2, drop: 'double_blocks.1.txt_mlp.2.bias' });
    await refused({ method: 'add-difference', models: [a, b, less] }, less, 'double_blocks.1.txt_mlp.2.bias');
    await refused({ method: 'weighted', models: [less, b] }, `${less} (A) has no tensor double_blocks.1.txt_mlp.2.bias`);
  });

  it('a family mismatch names the files and their families', async () => {
    const sd = await writeSd('r-sd.safetensors', 1);
    await refused({ method: 'weighted', models: [a, sd] }, a, sd, /FLUX/, /SD1\.5/);
    await refused({ method: 'ties', models: [a, b], base: sd }, sd, /different model families/);
  });

  it('dtypes that cannot be merged (an integer tensor stored as float) name the tensor', async () => {
    const sd1 = await writeSd('r-sd1.safetensors', 1);
    const sdF = await writeSd('r-sd-float-ids.safetensors', 2, { spec: (s) => (s.integer ? { ...s, dtype: 'F16', integer: false } : s) });
    await refused({ method: 'weighted', models: [sd1, sdF] }, 'position_ids', /I64/, /F16/);
  });

  it('method params that do not fit are refused', async () => {
    await refused({ method: 'add-difference', models: [a, b] }, /three models/);
    await refused({ method: 'ties', models: [a, b] }, /needs a base/);
    await refused({ method: 'weighted', models: [a, b], base }, /takes no base/);
    await refused({ method: 'dare', models: [a, b], base, density: 0.5 }, /density applies to ties and magnitude-prune/);
    await refused({ method: 'weighted', models: [a, b], weights: [1] }, /1 weight\(s\) for 2 models/);
    await refused({ method: 'weighted', models: [a, b, c], weights: [1, 1, 1], alpha: 0.5 }, /either weights/);
    await refused({ method: 'weighted', models: [a, b], blocks: 'IN04=0' }, /IN04/);
  });

  it('the output may not be an input', async () => {
    const before = await sha256(a);
    await expect(mergeCheckpoints({ method: 'weighted', models: [a, b], out: a })).rejects.toThrow(/is input A/);
    expect(await sha256(a)).toBe(before);
  });

  it('a cancelled merge leaves no output and no staging file', async () => {
    const before = await readdir(tmp.dir);
    const controller = new AbortController();
    const out = tmp.path('cancelled.safetensors');
    const run = mergeCheckpoints({ method: 'ties', models: [a, b], base, out, ctx: { signal: controller.signal, onProgress: (done) => void (done === 20 && controller.abort()) } });
    await expect(run).rejects.toThrow();
    expect(await exists(out)).toBe(false);
    expect((await readdir(tmp.dir)).sort()).toEqual(before.sort());
  });
});

describe('reading a file once per tensor', () => {
  it('the output has A\'s tensor order', async () => {
    const a = tmp.path('a.safetensors');
    const out = tmp.path('order.safetensors');
    await mergeCheckpoints({ method: 'weighted', models: [a, tmp.path('b.safetensors')], out });
    const names = async (p: string) => {
      const f = await SafetensorsFile.open(p);
      try {
        return f.tensors.map((t) => t.name);
      } finally {
        await f.close();
      }
    };
    expect(await names(out)).toEqual(await names(a));
  });
});
