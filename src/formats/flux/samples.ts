/**
 * FLUX.1's built-in sample files for `loraflow samples`: FLUX.1-shaped files with every real key
 * name and block count, widths divided by 64 (hidden 48 instead of 3072), so every FLUX recipe in
 * graphs/ runs in seconds — an ai-toolkit LoRA, a kohya LoRA, a base checkpoint and a "fine-tune"
 * of it. All deterministic: writing them twice gives identical bytes.
 */
import { join } from 'node:path';
import { writeSafetensors } from '../../safetensors/writer.ts';
import { encodeFromF32 } from '../../tensor/dtype.ts';
import { fluxCheckpointEntries, fluxCheckpointShapes, fluxTensorValues, type FluxCheckpointOptions } from '../../samples/flux-checkpoint.ts';
import { keyedRandom, writeSampleLora, type SampleLoraOptions } from '../../samples/lora-fixtures.ts';
import type { SampleFile } from '../family.ts';

export const SAMPLE_FACTOR = 64;
const CHECKPOINT: FluxCheckpointOptions = { scale: SAMPLE_FACTOR, dtype: 'F32', seed: 0 };

/** The weights the sample fine-tune changed, with the rank of the change (what extraction should find). */
export const FINETUNE_RANK = 4;
const FINETUNED = [/^double_blocks\.\d+\.img_attn\.qkv\.weight$/, /^double_blocks\.\d+\.txt_mlp\.0\.weight$/, /^single_blocks\.\d+\.linear1\.weight$/, /^single_blocks\.\d+\.linear2\.weight$/];
const FINETUNED_BIASES = ['final_layer.linear.bias', 'img_in.bias'];

const SAMPLE_LORAS: { file: string; what: string; options: SampleLoraOptions }[] = [
  { file: 'flux-aitoolkit-lora.safetensors', what: 'FLUX LoRA as ai-toolkit writes it (diffusers/PEFT names, split q/k/v, no alpha), rank 4', options: { format: 'aitoolkit', rank: 4, scale: 1, seed: 1, factor: SAMPLE_FACTOR } },
  { file: 'flux-kohya-lora.safetensors', what: 'FLUX LoRA as sd-scripts writes it (lora_unet_ fused qkv, alpha 4 at rank 8)', options: { format: 'kohya', rank: 8, scale: 0.5, seed: 2, factor: SAMPLE_FACTOR } },
];
const SAMPLE_BASE = 'flux-base.safetensors';
const SAMPLE_FINETUNE = 'flux-finetune.safetensors';

/** Base + a rank-4 change on some weights (scaled to ~5% of their size) + changed biases. */
function finetuneDelta(name: string, shape: readonly number[], base: Float32Array): Float32Array {
  const out = Float32Array.from(base);
  const rnd = keyedRandom(`finetune:${name}`, 7);
  if (shape.length === 1) {
    for (let i = 0; i < out.length; i++) out[i]! += 0.01 * (rnd() - 0.5);
    return out;
  }
  const [rows, cols] = shape as [number, number];
  const u = Float32Array.from({ length: rows * FINETUNE_RANK }, () => rnd() - 0.5);
  const v = Float32Array.from({ length: FINETUNE_RANK * cols }, () => rnd() - 0.5);
  const amp = 0.2 / Math.sqrt(cols);
  for (let i = 0; i < rows; i++)
    for (let k = 0; k < FINETUNE_RANK; k++) {
      const a = amp * u[i * FINETUNE_RANK + k]!;
      for (let j = 0; j < cols; j++) out[i * cols + j]! += a * v[k * cols + j]!;
    }
  return out;
}

function isFinetuned(name: string): boolean {
  return FINETUNED.some((re) => re.test(name)) || FINETUNED_BIASES.includes(name);
}

export async function writeFluxSamples(dir: string): Promise<SampleFile[]> {
  const written: SampleFile[] = [];
  for (const s of SAMPLE_LORAS) {
    await writeSampleLora(join(dir, s.file), s.options);
    written.push({ file: join(dir, s.file), what: s.what });
  }
  await writeSafetensors(join(dir, SAMPLE_BASE), fluxCheckpointEntries(CHECKPOINT), { order: 'reference' });
  written.push({ file: join(dir, SAMPLE_BASE), what: `FLUX.1-dev-shaped base checkpoint (real key names, widths ÷${SAMPLE_FACTOR}, F32)` });
  const specs = new Map(fluxCheckpointShapes(CHECKPOINT).map((s) => [s.name, s]));
  const tuned = fluxCheckpointEntries(CHECKPOINT).map((e) =>
    isFinetuned(e.name) ? { ...e, data: async () => encodeFromF32(finetuneDelta(e.name, e.shape, fluxTensorValues(specs.get(e.name)!, CHECKPOINT)), 'F32') } : e,
  );
  await writeSafetensors(join(dir, SAMPLE_FINETUNE), tuned, { order: 'reference' });
  written.push({ file: join(dir, SAMPLE_FINETUNE), what: `a "fine-tune" of it: rank-${FINETUNE_RANK} changes to double-block qkv/txt_mlp.0 and single-block linear1/linear2, two biases` });
  return written;
}
