import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoraAdapter } from '../src/adapter/model.ts';
import { extractLora } from '../src/lora/extract.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { encodeFromF32 } from '../src/tensor/dtype.ts';
import { fluxCheckpointShapes, fluxTensorValues, writeFluxCheckpoint, type FluxCheckpointOptions } from '../src/samples/flux-checkpoint.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { BACKENDS, bestRankK, random, relFrobenius } from './ops-fixtures.ts';

const PREFIX = 'model.diffusion_model.';
const OPTS: FluxCheckpointOptions = { scale: 64, doubleBlocks: 1, singleBlocks: 1, dtype: 'F32', prefix: PREFIX };

/** Exact low-rank changes of chosen weights (rank 3), and a bias change. */
function changes(): Map<string, Float32Array> {
  const shapes = new Map(fluxCheckpointShapes(OPTS).map((t) => [t.name.slice(PREFIX.length), t.shape]));
  const out = new Map<string, Float32Array>();
  for (const [i, name] of ['double_blocks.0.img_attn.qkv.weight', 'single_blocks.0.linear2.weight', 'txt_in.weight'].entries()) {
    const [m, n] = shapes.get(name)! as [number, number];
    const next = random(100 + i);
    const a = Float64Array.from({ length: m * 3 }, next);
    const b = Float64Array.from({ length: 3 * n }, next);
    const d = new Float32Array(m * n);
    for (let r = 0; r < m; r++) for (let c = 0; c < n; c++) d[r * n + c] = 0.01 * (a[r * 3]! * b[c]! + a[r * 3 + 1]! * b[n + c]! + a[r * 3 + 2]! * b[2 * n + c]!);
    out.set(name, d);
  }
  const next = random(200);
  out.set('double_blocks.0.img_attn.qkv.bias', Float32Array.from({ length: shapes.get('double_blocks.0.img_attn.qkv.bias')![0]! }, () => 0.01 * next()));
  return out;
}

let dir: string;
let base: string;
let tuned: string;
const delta = changes();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loraflow-extract-'));
  base = join(dir, 'base.safetensors');
  tuned = join(dir, 'tuned.safetensors');
  await writeFluxCheckpoint(base, OPTS);
  // The tuned file without the prefix: pairing goes by model names.
  await writeSafetensors(tuned, fluxCheckpointShapes(OPTS).map((spec) => {
    const name = spec.name.slice(PREFIX.length);
    const values = fluxTensorValues(spec, OPTS);
    const d = delta.get(name);
    if (d) for (let i = 0; i < values.length; i++) values[i]! += d[i]!;
    return { name, dtype: 'F32', shape: spec.shape, data: encodeFromF32(values, 'F32') };
  }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The exact ΔW stored in the files (f32 difference, as the extractor sees it). */
function storedDiff(name: string): Float64Array {
  const spec = fluxCheckpointShapes(OPTS).find((s) => s.name === PREFIX + name)!;
  const b = fluxTensorValues(spec, OPTS);
  const t = Float32Array.from(b);
  const d = delta.get(name)!;
  for (let i = 0; i < t.length; i++) t[i]! += d[i]!;
  return Float64Array.from(t, (v, i) => v - b[i]!);
}

describe.each(BACKENDS)('extractLora on %s', (backend) => {
  beforeAll(async () => {
    expect(await useBackend(backend)).toBe(backend);
  });

  it('at full rank reproduces every changed matrix, keeps biases as full diffs, counts unchanged', async () => {
    const { set, report } = await extractLora({ base, tuned, rank: 4096, keepBiases: true });
    expect(set.architecture).toBe('flux');
    expect(report.architecture).toBe('flux');
    expect(report.modules.map((m) => m.key).sort()).toEqual(['double_blocks.0.img_attn.qkv.weight', 'single_blocks.0.linear2.weight', 'txt_in.weight']);
    expect(report.fullDiffs).toEqual(['double_blocks.0.img_attn.qkv.bias']);
    expect(report.unchanged).toBe(fluxCheckpointShapes(OPTS).length - 4);
    expect(report.skipped).toEqual([]);
    const got = await referenceDeltas(set);
    for (const name of delta.keys()) {
      const d = got.get(`transformer:${name}`)!;
      expect(relFrobenius(d.data, storedDiff(name)), name).toBeLessThan(1e-5);
    }
    for (const m of report.modules) {
      expect(m.rank).toBe(Math.min(...m.shape));
      expect(m.relError, m.key).toBeLessThan(1e-5);
    }
    const qkv = set.patches.find((p) => p.target === 'double_blocks.0.img_attn.qkv.weight')!;
    expect(qkv.source.keys).toEqual([PREFIX + 'double_blocks.0.img_attn.qkv.weight', 'double_blocks.0.img_attn.qkv.weight']);
    expect((qkv.adapter as LoraAdapter).scale).toBe(1);
  });

  it('at the true rank is near exact, and at a lower rank matches the optimal truncation', async () => {
    const three = await extractLora({ base, tuned, rank: 3 });
    expect(three.report.relError).toBeLessThan(1e-4);
    expect(three.report.skipped.map((s) => s.key)).toEqual(['double_blocks.0.img_attn.qkv.bias']);
    expect(three.report.skipped[0]!.reason).toMatch(/keepBiases/);
    const two = await extractLora({ base, tuned, rank: 2 });
    const got = await referenceDeltas(two.set);
    for (const m of two.report.modules) {
      const exact = storedDiff(m.key);
      const [rows, cols] = m.shape as [number, number];
      const { approx, s } = bestRankK(exact, rows, cols, 2);
      expect(relFrobenius(got.get(`transformer:${m.key}`)!.data, approx), m.key).toBeLessThan(1e-3);
      const optimal = Math.sqrt(s.slice(2).reduce((x, v) => x + v * v, 0) / s.reduce((x, v) => x + v * v, 0));
      expect(m.relError).toBeGreaterThan(0.01);
      expect(m.relError / optimal, m.key).toBeLessThan(1.01);
      expect(m.relError / optimal, m.key).toBeGreaterThan(0.999);
    }
  });

  it('chooses ranks by energy (capped by maxRank)', async () => {
    const { report } = await extractLora({ base, tuned, energy: 0.999999 });
    for (const m of report.modules) expect(m.rank, m.key).toBe(3);
    const capped = await extractLora({ base, tuned, energy: 0.999999, maxRank: 2 });
    for (const m of capped.report.modules) expect(m.rank).toBe(2);
  });

  it('leaves changes up to minDiff out, by name', async () => {
    const { report } = await extractLora({ base, tuned, rank: 2, minDiff: 1 });
    expect(report.modules).toEqual([]);
    expect(report.belowMinDiff.sort()).toEqual([...delta.keys()].sort());
  });
});

describe('extractLora on conv weights', () => {
  it('flattens a 4-D conv difference to [out, in·kh·kw] and gives conv-shaped factors', async () => {
    const shape = [6, 4, 3, 3];
    const n = 6 * 36;
    const next = random(300);
    const b = Float32Array.from({ length: n }, next);
    const t = b.map((v, i) => v + 0.1 * Math.sin(i));
    const cb = join(dir, 'conv-base.safetensors');
    const ct = join(dir, 'conv-tuned.safetensors');
    await writeSafetensors(cb, [{ name: 'input_blocks.0.0.weight', dtype: 'F32', shape, data: encodeFromF32(b, 'F32') }]);
    await writeSafetensors(ct, [{ name: 'input_blocks.0.0.weight', dtype: 'F32', shape, data: encodeFromF32(t, 'F32') }]);
    const { set, report } = await extractLora({ base: cb, tuned: ct, rank: 6 });
    const a = set.patches[0]!.adapter as LoraAdapter;
    expect(a.down.shape).toEqual([6, 4, 3, 3]);
    expect(a.up.shape).toEqual([6, 6, 1, 1]);
    expect(report.modules[0]!.relError).toBeLessThan(1e-5);
    const d = [...(await referenceDeltas(set)).values()][0]!;
    expect(relFrobenius(d.data, Float64Array.from(t, (v, i) => v - b[i]!))).toBeLessThan(1e-5);
  });
});

describe('extractLora input errors', () => {
  it('names tensors that differ in shape or exist in one file only', async () => {
    const other = join(dir, 'other.safetensors');
    const specs = fluxCheckpointShapes({ ...OPTS, prefix: '' });
    await writeSafetensors(other, [
      ...specs.filter((s) => s.name !== 'img_in.weight' && s.name !== 'txt_in.bias').map((s) => ({ name: s.name, dtype: 'F32', shape: s.name === 'txt_in.weight' ? [s.shape[0]!, 1] : s.shape, data: new Uint8Array(4 * (s.name === 'txt_in.weight' ? s.shape[0]! : s.shape.reduce((a, b) => a * b, 1))) })),
      { name: 'extra.weight', dtype: 'F32', shape: [2], data: new Uint8Array(8) },
    ]);
    const error = await extractLora({ base, tuned: other, rank: 2 }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain(`2 tensors only in ${base}: ${PREFIX}img_in.weight, ${PREFIX}txt_in.bias`);
    expect(message).toContain(`1 tensors only in ${other}: extra.weight`);
    expect(message).toContain(`${PREFIX}txt_in.weight [48,64] vs txt_in.weight [48,1]`);
    await expect(extractLora({ base, tuned })).rejects.toThrow(/give a rank or an energy/);
  });
});
