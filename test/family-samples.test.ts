/**
 * Every family with a sample spec: `loraflow samples` writes its LoRAs in two layouts and a base,
 * and graphs/<family>-merge-loras-into-checkpoint.json applies them, checked tensor by tensor
 * against W + 0.8·ΔW_kohya + 0.6·ΔW_diffusers.
 */
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeSamples } from '../src/samples/write-samples.ts';
import { FAMILIES } from '../src/formats/families.ts';
import { blocksOf } from '../src/samples/table-samples.ts';
import { evalWidth } from '../src/formats/table/module-table.ts';
import { readLora } from '../src/formats/read.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { basePlusDeltaErrors } from './helpers/base-plus-delta.ts';
import { graph, runOk } from './helpers/recipes.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-family-samples-');
const SAMPLED = FAMILIES.filter((f) => f.samples);

beforeAll(async () => {
  await writeSamples(tmp.path('samples'));
});

describe('table families: samples and their recipe', () => {
  it('the table families with samples include Wan, Qwen-Image and FLUX.2', () => {
    expect(SAMPLED.map((f) => f.id)).toEqual(expect.arrayContaining(['wan', 'qwen-image', 'flux2', 'z-image', 'sd3', 'hunyuan-video']));
  });

  for (const family of SAMPLED) {
    it(`${family.id}: kohya and diffusers sample LoRAs read back as ${family.id}; graphs/${family.id}-merge-loras-into-checkpoint applies them by value`, async () => {
      const kohya = await readLora(tmp.path('samples', `${family.id}-kohya-lora.safetensors`));
      const diffusers = await readLora(tmp.path('samples', `${family.id}-diffusers-lora.safetensors`));
      expect(kohya).toMatchObject({ architecture: family.id, format: 'kohya', unknownKeys: [] });
      expect(diffusers).toMatchObject({ architecture: family.id, format: 'diffusers', unknownKeys: [] });
      const targets = family.samples!.targets.reduce((n, t) => n + blocksOf(family, family.table!.module(t).group), 0);
      expect(kohya.patches).toHaveLength(targets);
      const [da, db] = [await referenceDeltas(kohya), await referenceDeltas(diffusers)];
      const { result } = await runOk(await graph(`${family.id}-merge-loras-into-checkpoint`), { cwd: tmp.dir });
      const out = tmp.path('out', `${family.id}-with-loras.safetensors`);
      expect(result.written).toEqual([out]);
      const base = await SafetensorsFile.open(tmp.path('samples', `${family.id}-base.safetensors`));
      const merged = await SafetensorsFile.open(out);
      expect(base.info(`model.diffusion_model.${family.samples!.targets[0]!.replace('{i}', '0')}.weight`).shape[1]).toBe(evalWidth('h', family.samples!.widths));
      const errors = await basePlusDeltaErrors(base, merged, (name) => {
        const key = `${family.denoiser}:${name.slice('model.diffusion_model.'.length)}`;
        const a = da.get(key);
        const b = db.get(key);
        return a && b && { data: a.data.map((v, i) => 0.8 * v + 0.6 * b.data[i]!) };
      });
      expect(errors.size).toBe(targets);
      expect(Math.max(...errors.values())).toBeLessThan(1e-5);
      await Promise.all([base.close(), merged.close(), kohya.close(), diffusers.close()]);
    });
  }
});

describe('loraflow families', () => {
  it('--json lists every registered family with what it writes and its block ids', () => {
    const out = JSON.parse(execFileSync(process.execPath, ['bin/loraflow.js', 'families', '--json'], { encoding: 'utf8' })) as { id: string; writes: string[]; blockIds?: string }[];
    expect(out.map((f) => f.id)).toEqual(FAMILIES.map((f) => f.id));
    expect(out.find((f) => f.id === 'wan')).toMatchObject({ writes: ['kohya', 'diffusers', 'comfyui'], blockIds: 'Wan (32 or 42: IN, B00–B39, OUT)' });
    expect(out.find((f) => f.id === 'sd3')).toMatchObject({ writes: ['kohya', 'diffusers', 'comfyui'], blockIds: 'SD3.5 (26 or 40: IN, B00–B37, OUT)' });
  });
});
