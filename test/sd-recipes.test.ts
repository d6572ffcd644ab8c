/**
 * The graphs/sdxl-* recipes run headless on the built-in samples (`loraflow samples`), and their
 * outputs are checked by value: the ΔW each output LoRA applies, and every tensor of the merged
 * checkpoint, against the intended combination of the inputs (dense, float64).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { writeSamples } from '../src/samples/write-samples.ts';
import { readLora } from '../src/formats/read.ts';
import { applyBlockWeights } from '../src/lora/blocks.ts';
import { SafetensorsFile, withSafetensors } from '../src/safetensors/reader.ts';
import { decodeToF32, encodeFromF32 } from '../src/tensor/dtype.ts';
import { compareDeltas, referenceDeltas } from '../src/samples/reference-delta.ts';
import { mergedReference } from '../src/samples/sd-checkpoint.ts';
import { SDXL_SAMPLE_BASE, SDXL_SAMPLE_LORAS } from '../src/samples/sd-samples.ts';
import { withLora } from './helpers/lora.ts';
import { graph, runOk } from './helpers/recipes.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { weightedSum } from './ops-fixtures.ts';

const tmp = useTempDir('loraflow-sd-recipes-');
const sample = (name: string) => tmp.path('samples', name);
const KOHYA = SDXL_SAMPLE_LORAS[0]!.file;
const DIFFUSERS = SDXL_SAMPLE_LORAS[1]!.file;

beforeAll(async () => {
  const written = await writeSamples(tmp.path('samples'));
  expect(written.map((w) => w.file)).toEqual(expect.arrayContaining([sample(KOHYA), sample(DIFFUSERS), sample(SDXL_SAMPLE_BASE)]));
});

/** Runs graphs/NAME.json in the temp dir; the files it wrote. */
const run = async (name: string): Promise<string[]> => (await runOk(await graph(name), { cwd: tmp.dir })).result.written;

describe('graphs/sdxl-* recipes on the sample data', () => {
  it('the samples are what they say: an SDXL kohya LoCon and an SDXL diffusers LoRA', async () => {
    await withLora(sample(KOHYA), async (s) => {
      expect(s).toMatchObject({ format: 'kohya', architecture: 'sdxl', unknownKeys: [] });
      expect(s.patches.some((x) => x.target === 'input_blocks.1.0.in_layers.2.weight')).toBe(true);
      expect(s.patches.some((x) => x.component === 'clip_g')).toBe(true);
    });
    await withLora(sample(DIFFUSERS), async (s) => expect(s).toMatchObject({ format: 'diffusers', architecture: 'sdxl', unknownKeys: [] }));
  });

  it('sdxl-convert-kohya-to-diffusers: a diffusers file applying the same ΔW', async () => {
    const out = tmp.path('out/sdxl-kohya-as-diffusers.safetensors');
    expect(await run('sdxl-convert-kohya-to-diffusers')).toEqual([out]);
    const want = await withLora(sample(KOHYA), (s) => referenceDeltas(s));
    await withLora(out, async (s) => {
      expect(s).toMatchObject({ format: 'diffusers', architecture: 'sdxl', unknownKeys: [] });
      // alpha/rank = 0.5 goes into the f16 downs (PEFT has no alpha): exact but where a halved value becomes subnormal
      expect(compareDeltas(want, await referenceDeltas(s)).maxRelError).toBeLessThan(1e-6);
    });
    const f = await SafetensorsFile.open(out);
    try {
      const names = f.tensors.map((t) => t.name);
      expect(names).toContain('unet.down_blocks.0.resnets.0.conv1.lora_A.weight');
      expect(names).toContain('text_encoder_2.text_model.encoder.layers.31.mlp.fc2.lora_B.weight');
      expect(f.metadata?.loraflow).toContain('"operation":"save-lora"');
    } finally {
      await f.close();
    }
  });

  it('sdxl-merge-loras-into-checkpoint: every tensor is base + 0.8·ΔW_kohya + 0.6·ΔW_diffusers (CLIP-G q/k/v in the fused in_proj)', async () => {
    const out = tmp.path('out/sdxl-with-loras.safetensors');
    expect(await run('sdxl-merge-loras-into-checkpoint')).toEqual([out]);
    const a = await readLora(sample(KOHYA));
    const b = await readLora(sample(DIFFUSERS));
    const expected = await mergedReference('sdxl', sample(SDXL_SAMPLE_BASE), [{ set: a, weight: 0.8 }, { set: b, weight: 0.6 }]);
    await Promise.all([a.close(), b.close()]);
    expect(expected.has('conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight')).toBe(true);
    let boundary = 0;
    let elements = 0;
    await withSafetensors(sample(SDXL_SAMPLE_BASE), (base) => withSafetensors(out, async (o) => {
      for (const t of base.tensors) {
        const want = expected.get(t.name);
        if (!want) {
          expect(Buffer.from(await o.readBytes(t.name)).equals(Buffer.from(await base.readBytes(t.name))), t.name).toBe(true);
          continue;
        }
        const ref = decodeToF32(encodeFromF32(Float32Array.from(want), 'F16'), 'F16');
        const got = await o.readF32(t.name);
        elements += ref.length;
        for (let i = 0; i < ref.length; i++) {
          if (got[i] === ref[i]) continue;
          boundary++;
          // f32 products differ from the f64 reference in the last bits: at an f16 rounding boundary the other neighbour
          const step = 2 ** (Math.max(-14, Math.floor(Math.log2(Math.abs(ref[i]!) || 2 ** -14))) - 10);
          expect(Math.abs(got[i]! - ref[i]!), `${t.name}[${i}]`).toBeLessThanOrEqual(step * 1.0001);
        }
      }
    }));
    expect(boundary / elements).toBeLessThan(1e-3);
  });

  it('sdxl-block-weighted-merge: the 12-slot vector and MID=0.5, then an exact concat', async () => {
    const out = tmp.path('out/sdxl-block-weighted.safetensors');
    expect(await run('sdxl-block-weighted-merge')).toEqual([out]);
    const a = await withLora(sample(KOHYA), (s) => referenceDeltas(applyBlockWeights(s, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]).set));
    const b = await withLora(sample(DIFFUSERS), (s) => referenceDeltas(applyBlockWeights(s, 'MID=0.5').set));
    await withLora(out, async (s) => {
      expect(s).toMatchObject({ format: 'kohya', architecture: 'sdxl' });
      // the kohya LoRA's text encoders (BASE=0) and IN04–IN08 are gone; its IN01–IN03 convs keep weight 1
      expect(s.patches.filter((x) => x.component === 'clip_g').length).toBe(32 * 4);
      expect(compareDeltas(weightedSum([a, b], [1, 1]), await referenceDeltas(s)).maxRelError).toBeLessThan(1e-6);
    });
  });
});
