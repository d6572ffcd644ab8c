import { describe, expect, it } from 'vitest';
import { readLora, type Adapter } from '../src/formats/index.ts';
import { fluxCheckpointShapes } from '../src/samples/flux-checkpoint.ts';
import { fixtureKeyShapes, keyedRandom, scaleKeyShapes, writeSampleLora, type SampleFormat } from '../src/samples/lora-fixtures.ts';
import { referenceAdapterDelta } from '../src/samples/reference-delta.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-samples-');

const FORMATS: [SampleFormat, string, number][] = [
  // format, detected as, modules for 2 double + 2 single blocks
  ['kohya', 'kohya', 2 * 10 + 2 * 3],
  ['aitoolkit', 'diffusers', 2 * 14 + 2 * 6],
  ['diffusers', 'diffusers', 2 * 14 + 2 * 6],
  ['comfyui', 'comfyui', 2 * 10 + 2 * 3],
  ['onetrainer', 'onetrainer', 2 * 14 + 2 * 6],
  ['xlabs', 'xlabs', 2 * 4 + 2 * 2],
];

describe('sample LoRAs in each layout', () => {
  const base = new Map(fluxCheckpointShapes({ scale: 64, doubleBlocks: 2, singleBlocks: 2 }).map((t) => [t.name, t.shape]));
  for (const [format, detected, modules] of FORMATS) {
    it(`${format}: read back as ${detected}, every patch fits the FLUX checkpoint of the same width factor, scale as asked`, async () => {
      const path = tmp.path(`${format}.safetensors`);
      await writeSampleLora(path, { format, rank: 4, scale: 0.5, seed: 1, blocks: { double: 2, single: 2 } });
      const set = await readLora(path);
      try {
        expect(set.format).toBe(detected);
        expect(set.unknownKeys).toEqual([]);
        expect(set.patches).toHaveLength(modules);
        for (const p of set.patches) {
          const shape = base.get(p.target);
          expect(shape, p.target).toBeDefined();
          const d = await referenceAdapterDelta(p.adapter as Adapter);
          expect(d.cols, p.target).toBe(shape![1]);
          expect((p.rows?.[0] ?? 0) + d.rows, p.target).toBeLessThanOrEqual(shape![0]!);
          if (!p.rows) expect(d.rows, p.target).toBe(shape![0]);
          const a = p.adapter as { scale: number };
          // layouts with an alpha say 0.5 there; the others carry it in the ups
          expect(a.scale).toBe(['kohya', 'onetrainer'].includes(format) ? 0.5 : 1);
        }
      } finally {
        await set.close();
      }
    });
  }

  it('CLIP-L text encoder patches are included on request, in each layout’s spelling', async () => {
    for (const format of ['kohya', 'aitoolkit', 'comfyui'] as const) {
      const path = tmp.path(`te-${format}.safetensors`);
      await writeSampleLora(path, { format, blocks: { double: 1, single: 0 }, textEncoder: true });
      const set = await readLora(path);
      expect(set.patches.filter((p) => p.component === 'clip_l')).toHaveLength(72);
      expect(set.unknownKeys).toEqual([]);
      await set.close();
    }
  });
});

describe('fixture helpers', () => {
  it('scaleKeyShapes divides widths, keeps ranks and 0-d alphas', () => {
    const s = scaleKeyShapes(fixtureKeyShapes('flux_lora_kohya_format'), 64);
    expect(s['lora_unet_single_blocks_0_linear1.lora_up.weight']).toEqual([336, 16]);
    expect(s['lora_unet_single_blocks_0_linear2.lora_down.weight']).toEqual([16, 240]);
    expect(s['lora_unet_single_blocks_0_linear2.alpha']).toEqual([]);
    const ot = scaleKeyShapes(fixtureKeyShapes('flux_dora_onetrainer_format'), 64);
    expect(ot['lora_te1_text_model_encoder_layers_0_mlp_fc1.dora_scale']).toEqual([1, 12]);
  });

  it('keyedRandom is deterministic per key and seed', () => {
    const a = keyedRandom('x', 1);
    const b = keyedRandom('x', 1);
    const c = keyedRandom('x', 2);
    const first = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(first);
    expect(c()).not.toBe(first[0]);
    expect(first.every((v) => v >= 0 && v < 1)).toBe(true);
  });
});
