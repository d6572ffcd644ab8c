/**
 * All-in-one checkpoints: ComfyUI's full FLUX file (`model.diffusion_model.` + `text_encoders.clip_l.`
 * / `text_encoders.t5xxl.` + `vae.`) and SDXL's single file (`conditioner.embedders.` text encoders,
 * `first_stage_model.` VAE). A LoRA's text-encoder modules land in the matching part of the same
 * file (apply-plan.ts KEY_PREFIXES and the SD family's OpenCLIP locator), the VAE comes through
 * byte for byte, and the file cannot be cut down to a diffusers folder.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CanonicalView } from '../src/checkpoint/canonical.ts';
import { describeForm } from '../src/checkpoint/describe.ts';
import type { AdapterSet, Patch } from '../src/adapter/model.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32, encodeFromF32, type DType } from '../src/tensor/dtype.ts';
import { fluxCheckpointShapes, fluxTensorValues } from '../src/samples/flux-checkpoint.ts';
import { checkpointPlace, mergedReference, writeSdCheckpoint, sdCheckpointShapes } from '../src/samples/sd-checkpoint.ts';
import { dyadicPatch, expectedDeltas, firstDifference, loraSet } from './checkpoint-fixtures.ts';
import { SMALL_FLUX, random } from './ops-fixtures.ts';

const H = 48;
let dir: string;
let n = 0;
const fresh = (name: string) => join(dir, `${n++}-${name}`);

/** Text encoders and VAE of a shrunk full checkpoint (widths / 64), with their real key names. */
const EXTRAS: [string, number[], DType][] = [
  ['text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight', [12, 12], 'BF16'],
  ['text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.bias', [12], 'BF16'],
  ['text_encoders.clip_l.transformer.text_model.encoder.layers.0.mlp.fc1.weight', [48, 12], 'BF16'],
  ['text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight', [64, 64], 'BF16'],
  ['text_encoders.t5xxl.transformer.encoder.block.0.layer.1.DenseReluDense.wi_0.weight', [160, 64], 'BF16'],
  ['vae.decoder.conv_in.weight', [8, 4, 3, 3], 'F32'],
  ['vae.decoder.conv_in.bias', [8], 'F32'],
  ['vae.encoder.down.0.block.0.norm1.weight', [8], 'F32'],
];

async function writeFullFlux(path: string): Promise<void> {
  const entries: TensorEntry[] = fluxCheckpointShapes({ ...SMALL_FLUX, dtype: 'BF16', prefix: 'model.diffusion_model.' }).map((spec) => ({
    name: spec.name, dtype: spec.dtype, shape: spec.shape, data: encodeFromF32(fluxTensorValues(spec, { prefix: 'model.diffusion_model.' }), spec.dtype),
  }));
  EXTRAS.forEach(([name, shape, dtype], i) => {
    const r = random(100 + i);
    entries.push({ name, dtype, shape, data: encodeFromF32(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * 0.2), dtype) });
  });
  await writeSafetensors(path, entries, { order: 'reference' });
}

beforeAll(async () => {
  await useBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'loraflow-ckpt-aio-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const textPatch = (component: Patch['component'], target: string, rows: number, cols: number, seed: number): Patch => ({ ...dyadicPatch(target, rows, cols, seed), component });

describe('a ComfyUI full FLUX checkpoint', () => {
  it('takes the LoRA\'s CLIP-L and T5 modules into its own text encoders, its transformer modules into the model, and keeps the VAE byte for byte', async () => {
    const base = fresh('flux-full.safetensors');
    await writeFullFlux(base);
    const view = await CanonicalView.open(base);
    expect(describeForm(view)).toMatchObject({ container: 'safetensors', layout: 'original', encoding: 'plain', parts: { denoiser: expect.any(Number), clip_l: 3, t5: 2, vae: 3 } });
    await view.close();
    const set: AdapterSet = loraSet([
      dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 1),
      dyadicPatch('single_blocks.1.linear2.weight', H, H + 192, 2),
      textPatch('clip_l', 'text_model.encoder.layers.0.self_attn.q_proj.weight', 12, 12, 3),
      textPatch('clip_l', 'text_model.encoder.layers.0.mlp.fc1.weight', 48, 12, 4),
      textPatch('t5', 'encoder.block.0.layer.0.SelfAttention.q.weight', 64, 64, 5),
    ]);
    const out = fresh('flux-full-out.safetensors');
    const report = await applyToBase({ threads: 0, base, out, loras: [{ set, weight: 1 }] });
    expect(report.files).toHaveLength(1);
    expect(report.files[0]!.patched).toBe(5);
    expect(report.ignoredTextEncoders).toEqual([]);
    const expected = await expectedDeltas([{ set, weight: 1 }]);
    const PREFIXES = ['model.diffusion_model.', 'text_encoders.clip_l.transformer.', 'text_encoders.t5xxl.transformer.'];
    await withSafetensors(base, async (b) => withSafetensors(out, async (o) => {
      expect(o.tensors.map((t) => t.name)).toEqual(b.tensors.map((t) => t.name));
      for (const t of b.tensors) {
        const prefix = PREFIXES.find((p) => t.name.startsWith(p));
        const want = prefix ? expected(await b.readF32(t.name), t.name.slice(prefix.length)) : undefined;
        if (!want) {
          expect(Buffer.from(await o.readBytes(t.name)).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
          continue;
        }
        expect(firstDifference(await o.readF32(t.name), decodeToF32(encodeFromF32(Float32Array.from(want), 'BF16'), 'BF16')), t.name).toBeUndefined();
      }
    }));
  });

  it('is not cut down to a diffusers folder (the folder holds the denoiser alone)', async () => {
    const base = fresh('flux-full.safetensors');
    await writeFullFlux(base);
    const before = await readdir(dir);
    await expect(applyToBase({ threads: 0, base, out: fresh('never'), loras: [{ set: loraSet([dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 1)]), weight: 1 }], format: 'diffusers' }))
      .rejects.toThrow(/a diffusers folder holds the denoiser alone, but 8 tensors are outside model\.diffusion_model\. \(vae\..*text_encoders\.clip_l\..*an all-in-one checkpoint keeps layout original/);
    expect(await readdir(dir)).toEqual(before);
  });
});

/** The text-encoder modules each SD single file gets: (component, target) with where checkpointPlace says they are. */
const SD_CASES = [
  ['sd1', [['clip_l', 'text_model.encoder.layers.0.self_attn.q_proj.weight'], ['clip_l', 'text_model.encoder.layers.1.mlp.fc1.weight']], ['cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight', 'cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.weight']],
  ['sd2', [['clip_l', 'text_model.encoder.layers.0.self_attn.v_proj.weight'], ['clip_l', 'text_model.encoder.layers.1.mlp.fc1.weight']], ['cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight', 'cond_stage_model.model.transformer.resblocks.1.mlp.c_fc.weight']],
  ['sdxl', [['clip_l', 'text_model.encoder.layers.0.self_attn.q_proj.weight'], ['clip_g', 'text_model.encoder.layers.1.self_attn.k_proj.weight'], ['clip_g', 'text_model.encoder.layers.1.mlp.fc1.weight']], [
    'conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight',
    'conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight',
    'conditioner.embedders.1.model.transformer.resblocks.1.mlp.c_fc.weight',
  ]],
] as const;

describe.each(SD_CASES)('an %s single-file checkpoint', (arch, modules, keys) => {
  it('takes the LoRA\'s text-encoder modules into its own text encoders (OpenCLIP q/k/v into in_proj rows) and keeps first_stage_model byte for byte', async () => {
    const opts = { arch, dtype: 'F32' as DType, seed: 5 };
    const base = fresh(`${arch}.safetensors`);
    await writeSdCheckpoint(base, opts);
    const shapes = new Map(sdCheckpointShapes(opts).map((s) => [s.name, s.shape]));
    const set: AdapterSet = { ...loraSet(modules.map(([component, target], i) => {
      const { key } = checkpointPlace(arch, component, target);
      const shape = shapes.get(key)!;
      const rows = key.endsWith('in_proj_weight') ? shape[0]! / 3 : shape[0]!;
      return textPatch(component, target, rows, shape[1]!, i + 1);
    })), architecture: arch };
    const out = fresh(`${arch}-out.safetensors`);
    const report = await applyToBase({ threads: 0, base, out, loras: [{ set, weight: 1 }] });
    expect(report.files).toHaveLength(1);
    expect(report.files[0]!.patched).toBe(keys.length);
    const reference = await mergedReference(arch, base, [{ set, weight: 1 }]);
    expect([...reference.keys()].sort()).toEqual([...keys].sort());
    await withSafetensors(base, async (b) => withSafetensors(out, async (o) => {
      let vae = 0;
      for (const t of b.tensors) {
        const want = reference.get(t.name);
        if (want) expect(firstDifference(await o.readF32(t.name), Float32Array.from(want)), t.name).toBeUndefined();
        else expect(Buffer.from(await o.readBytes(t.name)).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
        if (t.name.startsWith('first_stage_model.')) vae++;
      }
      expect(vae).toBeGreaterThan(0);
    }));
  });
});
