import { describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { decodeToF32 } from '../src/tensor/dtype.ts';
import { fluxCheckpointShapes, fluxDims, fluxTensorValues, writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { useTempDir } from './helpers/temp-dir.ts';

// FLUX.1-dev shapes as published (sd-mecha `model_configs/flux-flux.yaml`, sd-scripts `flux_models.py`), typed in by hand.
const TOP_LEVEL: Record<string, number[]> = {
  'img_in.weight': [3072, 64], 'img_in.bias': [3072],
  'txt_in.weight': [3072, 4096], 'txt_in.bias': [3072],
  'time_in.in_layer.weight': [3072, 256], 'time_in.in_layer.bias': [3072],
  'time_in.out_layer.weight': [3072, 3072], 'time_in.out_layer.bias': [3072],
  'vector_in.in_layer.weight': [3072, 768], 'vector_in.in_layer.bias': [3072],
  'vector_in.out_layer.weight': [3072, 3072], 'vector_in.out_layer.bias': [3072],
  'guidance_in.in_layer.weight': [3072, 256], 'guidance_in.in_layer.bias': [3072],
  'guidance_in.out_layer.weight': [3072, 3072], 'guidance_in.out_layer.bias': [3072],
  'final_layer.linear.weight': [64, 3072], 'final_layer.linear.bias': [64],
  'final_layer.adaLN_modulation.1.weight': [6144, 3072], 'final_layer.adaLN_modulation.1.bias': [6144],
};
const DOUBLE_STREAM: Record<string, number[]> = {
  'mod.lin.weight': [18432, 3072], 'mod.lin.bias': [18432],
  'attn.qkv.weight': [9216, 3072], 'attn.qkv.bias': [9216],
  'attn.norm.query_norm.scale': [128], 'attn.norm.key_norm.scale': [128],
  'attn.proj.weight': [3072, 3072], 'attn.proj.bias': [3072],
  'mlp.0.weight': [12288, 3072], 'mlp.0.bias': [12288],
  'mlp.2.weight': [3072, 12288], 'mlp.2.bias': [3072],
};
const SINGLE: Record<string, number[]> = {
  'linear1.weight': [21504, 3072], 'linear1.bias': [21504],
  'linear2.weight': [3072, 15360], 'linear2.bias': [3072],
  'modulation.lin.weight': [9216, 3072], 'modulation.lin.bias': [9216],
  'norm.query_norm.scale': [128], 'norm.key_norm.scale': [128],
};

function fluxDevExpected(): Map<string, number[]> {
  const m = new Map(Object.entries(TOP_LEVEL));
  for (let i = 0; i < 19; i++)
    for (const s of ['img', 'txt'])
      for (const [k, v] of Object.entries(DOUBLE_STREAM)) m.set(`double_blocks.${i}.${s}_${k}`, v);
  for (let i = 0; i < 38; i++) for (const [k, v] of Object.entries(SINGLE)) m.set(`single_blocks.${i}.${k}`, v);
  return m;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

describe('FLUX.1 checkpoint shapes', () => {
  it('scale 1 matches every FLUX.1-dev tensor name and shape (780 tensors, 11,901,408,320 params)', () => {
    const got = fluxCheckpointShapes();
    const expected = fluxDevExpected();
    expect(got).toHaveLength(780);
    expect(new Map(got.map((t) => [t.name, t.shape]))).toEqual(expected);
    expect(got.reduce((s, t) => s + numel(t.shape), 0)).toBe(11_901_408_320);
    expect(new Set(got.map((t) => t.dtype))).toEqual(new Set(['BF16']));
  });

  it('schnell has no guidance_in; the prefix is applied to every key', () => {
    const schnell = fluxCheckpointShapes({ guidance: false, prefix: 'model.diffusion_model.' });
    expect(schnell).toHaveLength(776);
    expect(schnell.every((t) => t.name.startsWith('model.diffusion_model.'))).toBe(true);
    expect(schnell.some((t) => t.name.includes('guidance_in'))).toBe(false);
  });

  it('scale 64 keeps every key and divides every width (hidden 48, head dim 2)', () => {
    const small = fluxCheckpointShapes({ scale: 64, doubleBlocks: 2, singleBlocks: 3, dtype: 'F32' });
    const byName = new Map(small.map((t) => [t.name, t.shape]));
    expect(small).toHaveLength(20 + 2 * 24 + 3 * 8);
    expect(byName.get('img_in.weight')).toEqual([48, 1]);
    expect(byName.get('txt_in.weight')).toEqual([48, 64]);
    expect(byName.get('double_blocks.1.txt_attn.qkv.weight')).toEqual([144, 48]);
    expect(byName.get('double_blocks.1.img_mod.lin.weight')).toEqual([288, 48]);
    expect(byName.get('double_blocks.0.img_mlp.2.weight')).toEqual([48, 192]);
    expect(byName.get('single_blocks.2.linear1.weight')).toEqual([336, 48]);
    expect(byName.get('single_blocks.2.linear2.weight')).toEqual([48, 240]);
    expect(byName.get('single_blocks.2.norm.key_norm.scale')).toEqual([2]);
    expect(byName.get('final_layer.adaLN_modulation.1.weight')).toEqual([96, 48]);
    expect(byName.has('double_blocks.2.img_mod.lin.weight')).toBe(false);
    expect(fluxDims(64).hidden).toBe(48);
  });

  it('refuses a scale that does not divide every width', () => {
    expect(() => fluxCheckpointShapes({ scale: 3 })).toThrow(/scale must be a divisor of 64/);
    expect(() => fluxCheckpointShapes({ scale: 128 })).toThrow(/scale/);
    expect(() => fluxCheckpointShapes({ doubleBlocks: -1 })).toThrow(/doubleBlocks/);
  });
});

describe('FLUX.1 checkpoint values', () => {
  const tmp = useTempDir('loraflow-flux-');

  it('are deterministic per (seed, name), independent of prefix, and in the expected ranges', () => {
    const [w, b, n] = ['img_in.weight', 'img_in.bias', 'single_blocks.0.norm.query_norm.scale'].map(
      (name) => fluxCheckpointShapes({ scale: 16 }).find((t) => t.name === name)!,
    );
    const w1 = fluxTensorValues(w!);
    expect(fluxTensorValues(w!)).toEqual(w1);
    const prefixed = fluxCheckpointShapes({ scale: 16, prefix: 'model.diffusion_model.' }).find((t) => t.name.endsWith('.img_in.weight'))!;
    expect(fluxTensorValues(prefixed, { prefix: 'model.diffusion_model.' })).toEqual(w1);
    expect(fluxTensorValues(w!, { seed: 1 })).not.toEqual(w1);
    expect(fluxTensorValues(b!)).not.toEqual(w1.subarray(0, b!.shape[0]));
    const bound = 1 / Math.sqrt(4); // img_in fan-in at scale 16
    expect(Math.max(...w1.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w1.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    const mean = w1.reduce((s, v) => s + v, 0) / w1.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    const norm = fluxTensorValues(n!);
    expect(Math.min(...norm)).toBeGreaterThanOrEqual(0.9);
    expect(Math.max(...norm)).toBeLessThanOrEqual(1.1);
  });

  it('writes a readable file whose every tensor equals its regenerated values', async () => {
    const path = tmp.path('flux-small.safetensors');
    const opts = { scale: 32, doubleBlocks: 1, singleBlocks: 2, guidance: false, dtype: 'BF16' as const, seed: 7 };
    const result = await writeFluxCheckpoint(path, { ...opts, metadata: { note: 'test' } });
    const specs = fluxCheckpointShapes(opts);
    const f = await SafetensorsFile.open(path);
    try {
      expect(result.tensors).toBe(specs.length);
      expect(f.tensors).toHaveLength(specs.length);
      expect(f.metadata).toEqual({ note: 'test' });
      expect(f.fileSize).toBe(8 + f.headerBytes + result.dataBytes);
      // One dtype: the reference order is by name.
      const names = f.tensors.map((t) => t.name);
      expect(names).toEqual([...names].sort());
      for (const spec of specs) {
        const stored = await f.readF32(spec.name);
        const bits = new Uint16Array((await f.readBytes(spec.name)).buffer);
        const expected = fluxTensorValues(spec, opts);
        expect(stored.length).toBe(expected.length);
        // bf16 keeps 8 significant bits (7 stored): rounding moves a value by at most 2^-8 of itself.
        let worst = 0;
        for (let i = 0; i < expected.length; i++) {
          worst = Math.max(worst, Math.abs(stored[i]! - expected[i]!) / Math.abs(expected[i]!));
        }
        expect(worst, spec.name).toBeLessThanOrEqual(2 ** -8);
        expect(decodeToF32(new Uint8Array(bits.buffer), 'BF16')).toEqual(stored);
      }
    } finally {
      await f.close();
    }
  });
});
