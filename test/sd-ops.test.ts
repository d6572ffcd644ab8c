/**
 * The LoRA operations on SD1.5 / SD2 / SDXL: LoRA + LoRA merges (concat exact, SVD optimal) with
 * conv and Tucker modules, merging into single-file checkpoints (UNet, CLIP-L, OpenCLIP q/k/v as
 * row thirds of in_proj) checked tensor by tensor against a float64 reference, extraction from an
 * SD checkpoint pair back to canonical targets, rank resize, block weights with the 12/17/20/26
 * slot vectors, and the refusals of cross-architecture operations.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readLora, writeLora, type AdapterSet, type LoraAdapter, type Patch } from '../src/formats/index.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { applyBlockWeights, checkBlockWeightSpec } from '../src/lora/blocks.ts';
import { extractLora } from '../src/lora/extract.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { resizeLora } from '../src/lora/resize.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32, encodeFromF32, type DType } from '../src/tensor/dtype.ts';
import { compareDeltas, referenceDeltas } from '../src/samples/reference-delta.ts';
import { writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { keyedRandom, writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { mergedReference, sdCheckpointEntries, sdCheckpointShapes, sdTensorValues, writeSdCheckpoint } from '../src/samples/sd-checkpoint.ts';
import { writeSdLora, type SdLoraOptions } from '../src/samples/sd-lora-fixtures.ts';
import { exists } from './helpers/files.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { bestRankK, relFrobenius, weightedSum } from './ops-fixtures.ts';

const p = useTempDir('loraflow-sd-ops-').path;
beforeAll(async () => {
  expect(await useBackend('wasm')).toBe('wasm');
});
let serial = 0;

async function lora(opts: SdLoraOptions): Promise<AdapterSet & { close(): Promise<void> }> {
  const path = p(`lora-${serial++}.safetensors`);
  await writeSdLora(path, opts);
  return readLora(path);
}

/** Small but complete: a ResNet with shortcut, a downsampler, attention with a first transformer block, the middle block, an upsampler. */
const SMALL = /^(?:input_blocks\.[1-5]|middle_block|output_blocks\.[2-5])\.(?!\d+\.transformer_blocks\.[1-9])/;

describe('LoRA + LoRA merges of SD LoRAs', () => {
  it('concat is exact for an SDXL kohya LoCon (Tucker convs) + a diffusers LoRA, and writes back as kohya', async () => {
    const a = await lora({ arch: 'sdxl', layout: 'kohya', targets: 'locon', tucker: true, only: SMALL, teLayers: 2, seed: 1 });
    const b = await lora({ arch: 'sdxl', layout: 'diffusers', targets: 'locon', only: SMALL, teLayers: 2, seed: 2 });
    const weights = [0.7, -0.4];
    const { set, report } = await mergeLoras([{ set: a, weight: weights[0]! }, { set: b, weight: weights[1]! }], { method: 'concat' });
    expect(set.architecture).toBe('sdxl');
    const expected = weightedSum([await referenceDeltas(a), await referenceDeltas(b)], weights);
    const cmp = compareDeltas(expected, await referenceDeltas(set));
    expect(cmp.maxRelError, cmp.worst).toBeLessThan(1e-6);
    const conv = set.patches.find((x) => x.target === 'input_blocks.1.0.in_layers.2.weight')!.adapter as LoraAdapter;
    expect(conv.down.shape).toEqual([8, 5, 3, 3]);
    expect(conv.up.shape).toEqual([5, 8, 1, 1]);
    expect(report.relError).toBe(0);
    await writeLora(p('merged.safetensors'), set, { format: 'kohya' });
    const back = await readLora(p('merged.safetensors'));
    expect(back).toMatchObject({ architecture: 'sdxl', format: 'kohya', unknownKeys: [] });
    expect(compareDeltas(expected, await referenceDeltas(back)).maxRelError).toBeLessThan(1e-6);
    await Promise.all([a.close(), b.close(), back.close()]);
  });

  it('svd gives every module (linear, 1×1 and 3×3 conv) the best rank-k approximation of the weighted sum', async () => {
    const only = /^(?:input_blocks\.4\.[01]\.(?:in_layers\.2|skip_connection|transformer_blocks\.0\.attn2\.to_k|proj_in)|input_blocks\.3\.0\.op)$/;
    const a = await lora({ arch: 'sd1', layout: 'kohya', targets: 'locon', only, textEncoders: false, rank: 6, seed: 3 });
    const b = await lora({ arch: 'sd1', layout: 'comfyui', targets: 'locon', tucker: true, only, textEncoders: false, rank: 5, seed: 4 });
    const weights = [1.2, 0.6];
    const rank = 4;
    const { set, report } = await mergeLoras([{ set: a, weight: weights[0]! }, { set: b, weight: weights[1]! }], { method: 'svd', rank });
    const sum = weightedSum([await referenceDeltas(a), await referenceDeltas(b)], weights);
    const got = await referenceDeltas(set);
    expect(got.size).toBe(5);
    for (const [key, d] of sum) {
      const { approx } = bestRankK(d.data, d.rows, d.cols, rank);
      expect(relFrobenius(got.get(key)!.data, approx), key).toBeLessThan(1e-5);
    }
    expect(report.relError).toBeGreaterThan(0.01);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses SD1.5 + SDXL, naming both', async () => {
    const a = await lora({ arch: 'sd1', layout: 'kohya', only: SMALL, teLayers: 1 });
    const b = await lora({ arch: 'sdxl', layout: 'kohya', only: SMALL, teLayers: 1 });
    await expect(mergeLoras([{ set: a, weight: 1 }, { set: b, weight: 1 }], { method: 'concat' })).rejects.toThrow(/different models \(input 1: sd1, input 2: sdxl\)/);
    await Promise.all([a.close(), b.close()]);
  });
});

function ulp(x: number, dtype: DType): number {
  const bits = dtype === 'F16' ? 11 : 24;
  const minExp = dtype === 'F16' ? -14 : -126;
  const e = Math.max(minExp, Math.floor(Math.log2(Math.abs(x) || 2 ** minExp)));
  return 2 ** (e - bits + 1);
}

/** Every output tensor against base + Σ wᵢ·ΔWᵢ (float64) rounded once to the output dtype; untouched tensors byte-identical. Returns how many were patched. */
async function checkMerged(arch: 'sd1' | 'sd2' | 'sdxl', base: string, out: string, loras: { set: AdapterSet; weight: number }[], dtype: DType): Promise<number> {
  const expected = await mergedReference(arch, base, loras);
  await withSafetensors(base, (b) => withSafetensors(out, async (o) => {
    expect(o.tensors.map((t) => t.name)).toEqual(b.tensors.map((t) => t.name));
    for (const t of b.tensors) {
      const want = expected.get(t.name);
      if (!want) {
        expect(Buffer.from(await o.readBytes(t.name)).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
        continue;
      }
      const ref = decodeToF32(encodeFromF32(Float32Array.from(want), dtype), dtype);
      const got = await o.readF32(t.name);
      for (let i = 0; i < ref.length; i++) {
        if (got[i] === ref[i]) continue;
        expect(Math.abs(got[i]! - ref[i]!), `${t.name}[${i}]`).toBeLessThanOrEqual(dtype === 'F32' ? 1e-5 * Math.max(1, Math.abs(ref[i]!)) : ulp(ref[i]!, dtype) * 1.0001);
      }
    }
  }));
  return expected.size;
}

describe('merging SD LoRAs into single-file checkpoints', () => {
  for (const [arch, dtype] of [['sd1', 'F32'], ['sd2', 'F16'], ['sdxl', 'F16']] as const) {
    it(`${arch} (${dtype}): UNet convs and attention, text encoders ${arch === 'sd1' ? 'CLIP-L' : arch === 'sd2' ? 'OpenCLIP-H (fused in_proj)' : 'CLIP-L and OpenCLIP-G (fused in_proj)'}`, async () => {
      const base = p(`${arch}-base.safetensors`);
      await writeSdCheckpoint(base, { arch, dtype, metadata: { note: 'base' } });
      const a = await lora({ arch, layout: 'kohya', targets: 'locon', tucker: true, only: SMALL, teLayers: 3, seed: 7 });
      const b = await lora({ arch, layout: 'diffusers', only: SMALL, teLayers: 2, seed: 8, dora: false });
      // LyCORIS Tucker LoHa / LoKr on convs go through the dense path
      const c = await lora({ arch, layout: 'kohya', algo: 'loha', targets: 'locon', tucker: true, only: /^input_blocks\.[12]\.0\./, textEncoders: false, seed: 9 });
      const e = await lora({ arch, layout: 'comfyui', algo: 'lokr', targets: 'locon', tucker: true, only: /^(?:input_blocks\.[23]\.0\.|middle_block\.0\.|middle_block\.1\.transformer_blocks\.0\.attn2)/, textEncoders: false, seed: 10 });
      const loras = [{ set: a as AdapterSet, weight: 0.8 }, { set: b as AdapterSet, weight: -0.5 }, { set: c as AdapterSet, weight: 0.3 }, { set: e as AdapterSet, weight: 2 }];
      const out = p(`${arch}-merged.safetensors`);
      const report = await applyToBase({ base, out, loras, threads: 0 });
      expect(report.modules).toBe(a.patches.length + b.patches.length + c.patches.length + e.patches.length);
      const patched = await checkMerged(arch, base, out, loras, dtype);
      expect(patched).toBe(report.files[0]!.patched);
      await withSafetensors(out, async (o) => expect(o.metadata?.note).toBe('base'));
      await Promise.all([a.close(), b.close(), c.close(), e.close()]);
    });
  }

  it('DoRA on convs: a 3×3 conv renormalised per output channel, a 1×1 shortcut per input channel', async () => {
    const base = p('sd1-dora-base.safetensors');
    await writeSdCheckpoint(base, { arch: 'sd1', dtype: 'F32', textEncoders: false, vae: false });
    const set = await lora({ arch: 'sd1', layout: 'kohya', targets: 'locon', dora: true, only: /^input_blocks\.4\.0\.(?:in_layers\.2|skip_connection)$/, textEncoders: false, seed: 12 });
    expect(set.patches.map((x) => [x.target, x.dora?.axis])).toEqual([['input_blocks.4.0.in_layers.2.weight', 'out'], ['input_blocks.4.0.skip_connection.weight', 'in']]);
    const out = p('sd1-dora-out.safetensors');
    const strength = 0.7;
    await applyToBase({ base, out, loras: [{ set, weight: strength }], threads: 0 });
    const deltas = await referenceDeltas(set);
    await withSafetensors(base, (b) => withSafetensors(out, async (o) => {
      for (const x of set.patches) {
        const key = `model.diffusion_model.${x.target}`;
        const w = Float64Array.from(await b.readF32(key));
        const d = deltas.get(`unet:${x.target}`)!;
        const m = Float64Array.from(await x.dora!.magnitude.f32());
        const { rows, cols } = d;
        const v = w.map((wi, i) => wi + d.data[i]!);
        const norm = new Float64Array(x.dora!.axis === 'out' ? rows : cols);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) norm[x.dora!.axis === 'out' ? i : j]! += v[i * cols + j]! ** 2;
        const want = w.map((wi, i) => {
          const n = x.dora!.axis === 'out' ? Math.floor(i / cols) : i % cols;
          return wi + strength * ((m[n]! * v[i]!) / Math.sqrt(norm[n]!) - wi);
        });
        expect(m.length).toBe(x.dora!.axis === 'out' ? rows : cols);
        expect(relFrobenius(await o.readF32(key), want), key).toBeLessThan(1e-6);
      }
    }));
    await set.close();
  });

  it('refuses LoRAs of another model, naming both, and writes nothing', async () => {
    const flux = p('flux-base.safetensors');
    await writeFluxCheckpoint(flux, { scale: 64, doubleBlocks: 2, singleBlocks: 2, dtype: 'F32' });
    const xlBase = p('xl-refuse-base.safetensors');
    await writeSdCheckpoint(xlBase, { arch: 'sdxl', dtype: 'F16', vae: false });
    const xl = await lora({ arch: 'sdxl', layout: 'kohya', only: SMALL, teLayers: 1 });
    const sd1 = await lora({ arch: 'sd1', layout: 'kohya', only: SMALL, teLayers: 1 });
    await writeSampleLora(p('flux-lora.safetensors'), { format: 'kohya', blocks: { double: 2, single: 2 } });
    const fluxLora = await readLora(p('flux-lora.safetensors'));
    const out = p('refused.safetensors');
    await expect(applyToBase({ base: flux, out, loras: [{ set: xl, weight: 1 }], threads: 0 })).rejects.toThrow(/is a FLUX\.1 checkpoint .*but LoRA 1 is a kohya LoRA for SDXL/);
    await expect(applyToBase({ base: xlBase, out, loras: [{ set: xl, weight: 1 }, { set: sd1, weight: 1 }], threads: 0 })).rejects.toThrow(/is an SDXL checkpoint .*LoRA 2 is a kohya LoRA for SD1\.5/);
    await expect(applyToBase({ base: xlBase, out, loras: [{ set: fluxLora, weight: 1 }], threads: 0 })).rejects.toThrow(/LoRA 1 is a kohya LoRA for FLUX\.1/);
    expect(await exists(out)).toBe(false);
    await Promise.all([xl.close(), sd1.close(), fluxLora.close()]);
  });
});

describe('extraction from SD checkpoints', () => {
  it('SDXL fine-tune − base → LoRA on canonical targets (OpenCLIP in_proj split into q/k/v), which merges back into the fine-tune', async () => {
    const opts = { arch: 'sdxl' as const, dtype: 'F32' as DType, seed: 3 };
    const specs = new Map(sdCheckpointShapes(opts).map((s) => [s.name, s]));
    const RANK = 2;
    const changed = [
      'model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight',
      'model.diffusion_model.input_blocks.1.0.in_layers.2.weight',
      'model.diffusion_model.input_blocks.4.0.skip_connection.weight',
      'conditioner.embedders.0.transformer.text_model.encoder.layers.3.self_attn.q_proj.weight',
      'conditioner.embedders.1.model.transformer.resblocks.5.attn.in_proj_weight',
      'conditioner.embedders.1.model.transformer.resblocks.5.mlp.c_fc.weight',
      'first_stage_model.decoder.conv_out.weight',
    ];
    const tunedValues = (name: string): Float32Array => {
      const spec = specs.get(name)!;
      const v = Float32Array.from(sdTensorValues(spec, opts));
      if (!changed.includes(name)) return v;
      const rows = spec.shape[0]!;
      const cols = v.length / rows;
      const rnd = keyedRandom(`tune:${name}`, 1);
      const u = Float64Array.from({ length: rows * RANK }, () => rnd() - 0.5);
      const w = Float64Array.from({ length: RANK * cols }, () => rnd() - 0.5);
      for (let i = 0; i < rows; i++) for (let k = 0; k < RANK; k++) for (let j = 0; j < cols; j++) v[i * cols + j]! += 0.1 * u[i * RANK + k]! * w[k * cols + j]!;
      return v;
    };
    const base = p('xl-extract-base.safetensors');
    const tuned = p('xl-extract-tuned.safetensors');
    await writeSdCheckpoint(base, opts);
    await writeSafetensors(tuned, sdCheckpointEntries(opts).map((e) => ({ ...e, data: async () => encodeFromF32(tunedValues(e.name), e.dtype as DType) })), { order: 'reference' });

    const { set, report } = await extractLora({ base, tuned, rank: RANK });
    expect(report.architecture).toBe('sdxl');
    expect(set.architecture).toBe('sdxl');
    const targets = set.patches.map((x) => `${x.component}:${x.target}`).sort();
    expect(targets).toEqual([
      'clip_g:text_model.encoder.layers.5.mlp.fc1.weight',
      'clip_g:text_model.encoder.layers.5.self_attn.k_proj.weight',
      'clip_g:text_model.encoder.layers.5.self_attn.q_proj.weight',
      'clip_g:text_model.encoder.layers.5.self_attn.v_proj.weight',
      'clip_l:text_model.encoder.layers.3.self_attn.q_proj.weight',
      'unet:input_blocks.1.0.in_layers.2.weight',
      'unet:input_blocks.4.0.skip_connection.weight',
      'unet:input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight',
    ]);
    expect(report.skipped).toEqual([{ key: 'first_stage_model.decoder.conv_out.weight', reason: expect.stringMatching(/VAE weight/) }]);
    const q = set.patches.find((x) => x.target.endsWith('layers.5.self_attn.k_proj.weight'))!;
    expect((q.adapter as LoraAdapter).up.shape).toEqual([20, RANK]);

    // written as kohya, read back, merged into the base: the fine-tune again (VAE aside)
    await writeLora(p('xl-extracted.safetensors'), set, { format: 'kohya' });
    const back = await readLora(p('xl-extracted.safetensors'));
    expect(back).toMatchObject({ architecture: 'sdxl', unknownKeys: [] });
    await applyToBase({ base, out: p('xl-rebuilt.safetensors'), loras: [{ set: back, weight: 1 }], threads: 0 });
    await back.close();
    await withSafetensors(p('xl-rebuilt.safetensors'), async (o) => {
      for (const name of changed) {
        if (name.startsWith('first_stage_model.')) continue;
        const want = tunedValues(name);
        expect(relFrobenius(await o.readF32(name), want), name).toBeLessThan(1e-6);
      }
    });
  });
});

describe('resize', () => {
  it('each SD module (Tucker conv folded) becomes the best rank-k approximation of its own ΔW', async () => {
    const set = await lora({ arch: 'sd1', layout: 'kohya', targets: 'locon', tucker: true, only: /^input_blocks\.[1-4]\.0\./, textEncoders: false, rank: 6 });
    const { set: out, report } = await resizeLora(set, { rank: 3 });
    const before = await referenceDeltas(set);
    const after = await referenceDeltas(out);
    for (const [key, d] of before) {
      const { approx } = bestRankK(d.data, d.rows, d.cols, 3);
      expect(relFrobenius(after.get(key)!.data, approx), key).toBeLessThan(1e-5);
    }
    expect(report.modules.length).toBe(set.patches.length);
    expect(report.passthrough).toEqual([]);
    const conv = out.patches.find((x) => x.target === 'input_blocks.1.0.in_layers.2.weight')!.adapter as LoraAdapter;
    expect([conv.down.shape, conv.up.shape, conv.mid]).toEqual([[3, 5, 3, 3], [5, 3, 1, 1], undefined]);
    await set.close();
  });
});

describe('block weights', () => {
  const scaleOf = (x: Patch) => (x.adapter as LoraAdapter).scale;

  it('SDXL 12-slot vector: each module weighted by its block; the slots the vector leaves out keep 1', async () => {
    const set = await lora({ arch: 'sdxl', layout: 'kohya', targets: 'locon', teLayers: 1, alpha: (_, r) => r });
    // BASE, IN04, IN05, IN07, IN08, MID, OUT00–OUT05
    const vector = [0.5, 0, 2, 1, 1, 0.25, 1, 1, 1, 1, 1, 3];
    const { set: out, report } = applyBlockWeights(set, vector);
    const slot = (t: string, c: string) => (c !== 'unet' ? 'BASE' : /^input_blocks\.(\d+)\./.test(t) ? `IN0${/^input_blocks\.(\d+)/.exec(t)![1]}` : t.startsWith('middle_block') ? 'MID' : `OUT0${/^output_blocks\.(\d+)/.exec(t)![1]}`);
    const want: Record<string, number> = { BASE: 0.5, IN04: 0, IN05: 2, MID: 0.25, OUT05: 3 };
    const kept = new Map(out.patches.map((x) => [x.target + x.component, x]));
    for (const x of set.patches) {
      const w = want[slot(x.target, x.component)] ?? 1;
      const y = kept.get(x.target + x.component);
      if (w === 0) expect(y, x.source.module).toBeUndefined();
      else expect(scaleOf(y!), x.source.module).toBe(w * scaleOf(x));
    }
    expect(report.dropped.length).toBe(set.patches.filter((x) => slot(x.target, x.component) === 'IN04').length);
    expect(report.dropped.length).toBeGreaterThan(0);
    expect(report.weights).toEqual({ BASE: 0.5, IN04: 0, IN05: 2, MID: 0.25, OUT05: 3 });
    // ID=value pairs with ranges, and the 20-slot LyCORIS vector
    expect(applyBlockWeights(set, 'IN04-IN08=0,OUT0=2').report.weights).toEqual({ IN04: 0, IN05: 0, IN06: 0, IN07: 0, IN08: 0, OUT00: 2 });
    expect(applyBlockWeights(set, Array.from({ length: 20 }, (_, i) => (i === 9 ? 0 : 1))).report.weights).toEqual({ IN08: 0 });
    await set.close();
  });

  it('SD1 17-slot and 26-slot vectors', async () => {
    const set = await lora({ arch: 'sd1', layout: 'kohya', targets: 'locon', teLayers: 1, alpha: (_, r) => r });
    // BASE, IN01, IN02, IN04, IN05, IN07, IN08, MID, OUT03–OUT11
    const v17 = [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0.5];
    const { set: out } = applyBlockWeights(set, v17);
    for (const x of out.patches) {
      if (x.target.startsWith('middle_block')) throw new Error(`MID should be dropped: ${x.target}`);
      const w = x.target.startsWith('output_blocks.11.') ? 0.5 : 1;
      expect(scaleOf(x)).toBe(w * scaleOf(set.patches.find((y) => y.target === x.target && y.component === x.component)!));
    }
    // a downsampler (IN03) is not in the 17-slot vector: weight 1; in the 26-slot one it is
    expect(out.patches.some((x) => x.target === 'input_blocks.3.0.op.weight')).toBe(true);
    const v26 = Array.from({ length: 26 }, (_, i) => (i === 4 ? 0 : 1));
    expect(applyBlockWeights(set, v26).set.patches.some((x) => x.target === 'input_blocks.3.0.op.weight')).toBe(false);
    await set.close();
  });

  it('wrong vectors are refused with the lengths each model takes; the node check accepts any model\'s vector', async () => {
    const set = await lora({ arch: 'sdxl', layout: 'kohya', only: SMALL, teLayers: 1 });
    expect(() => applyBlockWeights(set, Array.from({ length: 17 }, () => 1))).toThrow(/an SDXL weight list has 20 or 12 values, got 17/);
    expect(() => applyBlockWeights(set, 'D00=0')).toThrow(/unknown block id "D00"/);
    expect(() => applyBlockWeights(set, 'IN09=0')).toThrow(/IN09 is not an SDXL block/);
    expect(checkBlockWeightSpec(Array.from({ length: 12 }, () => 1))).toBeUndefined();
    expect(checkBlockWeightSpec(Array.from({ length: 17 }, () => 1))).toBeUndefined();
    expect(checkBlockWeightSpec(Array.from({ length: 61 }, () => 1))).toBeUndefined();
    expect(checkBlockWeightSpec('IN04-IN08=0.5')).toBeUndefined();
    expect(checkBlockWeightSpec(Array.from({ length: 13 }, () => 1))).toMatch(/FLUX: .*61.*; SD1\.5\/SD2: .*26 or 17.*; SDXL: .*20 or 12/);
    await set.close();
  });
});

