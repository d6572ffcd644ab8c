/**
 * How each writable layout names SD3 / SD3.5 modules (docs/model-families.md §5.2): kohya =
 * sd-scripts' `networks/lora_sd3.py` (`lora_unet_` + original names with `.` → `_`; CLIP-L `lora_te1_`,
 * CLIP-G `lora_te2_`, T5-XXL `lora_te3_`, each + its Hugging Face path); comfyui = `diffusion_model.`
 * + original names, text encoders under `text_encoders.clip_l / clip_g / t5xxl.transformer.`;
 * diffusers = PEFT `transformer.` + diffusers names, `text_encoder.` (CLIP-L) and `text_encoder_2.`
 * (CLIP-G): diffusers' SD3 loader loads no T5 LoRA, so a T5 patch has no diffusers name.
 */
import type { Component } from '../../adapter/model.ts';
import type { FamilyNaming } from '../family.ts';
import { LoraFormatError } from '../../adapter/errors.ts';

const KOHYA: Partial<Record<Component, string>> = { transformer: 'lora_unet_', clip_l: 'lora_te1_', clip_g: 'lora_te2_', t5: 'lora_te3_' };
const COMFY: Partial<Record<Component, string>> = {
  transformer: 'diffusion_model.',
  clip_l: 'text_encoders.clip_l.transformer.',
  clip_g: 'text_encoders.clip_g.transformer.',
  t5: 'text_encoders.t5xxl.transformer.',
};
// SD3LoraLoaderMixin._lora_loadable_modules: transformer, text_encoder, text_encoder_2
const PEFT: Partial<Record<Component, string>> = { transformer: 'transformer.', clip_l: 'text_encoder.', clip_g: 'text_encoder_2.' };

function prefixed(table: Partial<Record<Component, string>>, format: string, component: Component, path: string): string {
  const prefix = table[component];
  if (prefix === undefined) throw new LoraFormatError('INEXPRESSIBLE', `${path}: ${format} files for SD3.5 have no place for the ${component} component`, path);
  return prefix;
}

export const SD3_NAMING: FamilyNaming = {
  fused: (format, component, path) => {
    const prefix = prefixed(format === 'kohya' ? KOHYA : COMFY, format, component, path);
    return prefix + (format === 'kohya' ? path.replaceAll('.', '_') : path);
  },
  peft: (component, path) => prefixed(PEFT, 'diffusers', component, path) + path,
  // sd-scripts sd3_train_network.py: modelspec stable-diffusion-3-<model type>/lora, ss_base_model_version = the model type
  // (5-large, 5-medium, medium); a fixed default only fills a file that has no modelspec of its own
  metadata: { modelspec: 'stable-diffusion-3-5-medium/lora', networkModule: 'networks.lora_sd3', baseModel: '5-medium' },
};
