/**
 * How each writable layout names FLUX modules: kohya = sd-scripts' fused BFL names with `.` → `_`;
 * comfyui = `diffusion_model.` + BFL names; diffusers = PEFT `transformer.` + diffusers names, as
 * ai-toolkit writes. Text encoders: CLIP-L and T5-XXL under each layout's own prefix.
 */
import type { Component } from '../../adapter/model.ts';
import type { FamilyNaming } from '../family.ts';
import { LoraFormatError } from '../../adapter/errors.ts';

const KOHYA: Partial<Record<Component, string>> = { transformer: 'lora_unet_', clip_l: 'lora_te1_', t5: 'lora_te3_' };
const COMFY: Partial<Record<Component, string>> = {
  transformer: 'diffusion_model.',
  clip_l: 'text_encoders.clip_l.transformer.',
  t5: 'text_encoders.t5xxl.transformer.',
};
const PEFT: Partial<Record<Component, string>> = { transformer: 'transformer.', clip_l: 'text_encoder.', t5: 'text_encoder_2.' };

function prefixed(table: Partial<Record<Component, string>>, format: string, component: Component, path: string): string {
  const prefix = table[component];
  if (prefix === undefined) throw new LoraFormatError('INEXPRESSIBLE', `${path}: ${format} files for FLUX have no place for the ${component} component`, path);
  return prefix;
}

export const FLUX_NAMING: FamilyNaming = {
  fused: (format, component, path) => {
    const prefix = prefixed(format === 'kohya' ? KOHYA : COMFY, format, component, path);
    return prefix + (format === 'kohya' ? path.replaceAll('.', '_') : path);
  },
  peft: (component, path) => prefixed(PEFT, 'diffusers', component, path) + path,
  metadata: { modelspec: 'flux-1-dev/lora', networkModule: 'networks.lora_flux' },
};
