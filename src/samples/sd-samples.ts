/**
 * SDXL sample files for `loraflow samples` and the graphs/sdxl-* recipes: a kohya LoCon LoRA (sgm
 * names, 3×3 convs, both text encoders), a diffusers/PEFT LoRA (attention only, no alpha) and an
 * SDXL-shaped single-file checkpoint, all with SDXL's real key names and block counts, widths ÷64.
 */
import { join } from 'node:path';
import { writeSdCheckpoint, type SdCheckpointOptions } from './sd-checkpoint.ts';
import { writeSdLora, type SdLoraOptions } from './sd-lora-fixtures.ts';

export const SD_SAMPLE_FACTOR = 64;

export const SDXL_SAMPLE_LORAS: readonly { file: string; what: string; options: SdLoraOptions }[] = [
  {
    file: 'sdxl-kohya-lora.safetensors',
    what: 'SDXL LoCon as sd-scripts writes it (lora_unet_input_blocks_… sgm names, 3×3 conv LoRAs, lora_te1_/lora_te2_), rank 8, alpha 4',
    options: { arch: 'sdxl', layout: 'kohya', targets: 'locon', rank: 8, alpha: (_, r) => r / 2, seed: 11, factor: SD_SAMPLE_FACTOR, dtype: 'F16' },
  },
  {
    file: 'sdxl-diffusers-lora.safetensors',
    what: 'SDXL LoRA as the diffusers training scripts write it (unet./text_encoder./text_encoder_2. PEFT names, attention only, no alpha), rank 4',
    options: { arch: 'sdxl', layout: 'diffusers', targets: 'attention', rank: 4, seed: 12, factor: SD_SAMPLE_FACTOR, dtype: 'F16' },
  },
];

export const SDXL_SAMPLE_BASE = 'sdxl-base.safetensors';
export const SDXL_SAMPLE_CHECKPOINT: SdCheckpointOptions = { arch: 'sdxl', factor: SD_SAMPLE_FACTOR, dtype: 'F16', seed: 0 };

/** Writes the SDXL samples into `dir`. */
export async function writeSdSamples(dir: string): Promise<{ file: string; what: string }[]> {
  const written: { file: string; what: string }[] = [];
  for (const s of SDXL_SAMPLE_LORAS) {
    await writeSdLora(join(dir, s.file), s.options);
    written.push({ file: join(dir, s.file), what: s.what });
  }
  await writeSdCheckpoint(join(dir, SDXL_SAMPLE_BASE), SDXL_SAMPLE_CHECKPOINT);
  written.push({ file: join(dir, SDXL_SAMPLE_BASE), what: `SDXL-shaped single-file checkpoint (model.diffusion_model. UNet, CLIP-L and OpenCLIP-G text encoders, real key names, widths ÷${SD_SAMPLE_FACTOR}, F16)` });
  return written;
}
