/**
 * How each writable format names modules and tensors (research/lora-formats.md §1.1, §2.8):
 * kohya = sd-scripts fused BFL names with `.` → `_`; comfyui = `diffusion_model.` + BFL names;
 * diffusers = PEFT `transformer.` + diffusers names, as ai-toolkit writes.
 */
import type { Architecture, Component } from '../model.ts';
import { LoraFormatError } from '../errors.ts';
import { sdModuleName } from '../sd/names.ts';
import { isSdArchitecture } from '../sd/unet.ts';

export const WRITE_FORMATS = ['kohya', 'diffusers', 'comfyui'] as const;
export type WriteFormat = (typeof WRITE_FORMATS)[number];

/** User spellings of the writable formats (trainers that write each layout). */
const ALIASES: Record<string, WriteFormat> = {
  kohya: 'kohya', 'sd-scripts': 'kohya', sdscripts: 'kohya', 'kohya-ss': 'kohya', fused: 'kohya',
  diffusers: 'diffusers', peft: 'diffusers', 'ai-toolkit': 'diffusers', aitoolkit: 'diffusers', simpletuner: 'diffusers', split: 'diffusers',
  comfyui: 'comfyui', comfy: 'comfyui', bfl: 'comfyui', 'diffusion_model': 'comfyui',
};

export function parseFormatName(text: string): WriteFormat {
  const f = ALIASES[text.trim().toLowerCase()];
  if (!f) {
    throw new LoraFormatError('UNKNOWN_FORMAT', `unknown LoRA format "${text}" (writable: kohya (sd-scripts), diffusers (peft, ai-toolkit), comfyui (bfl))`);
  }
  return f;
}

/** Suffixes of the fused formats (sd-scripts / LyCORIS / ComfyUI spellings). */
export const FUSED_SUFFIX = {
  down: 'lora_down.weight',
  up: 'lora_up.weight',
  alpha: 'alpha',
  dora: 'dora_scale',
  diff: 'diff',
  diff_b: 'diff_b',
  set: 'set_weight',
  reshape: 'reshape_weight',
  mid: 'lora_mid.weight',
} as const;

export const PEFT_SUFFIX = { down: 'lora_A.weight', up: 'lora_B.weight', magnitude: 'lora_magnitude_vector' } as const;

const KOHYA_PREFIX: Partial<Record<Component, string>> = { transformer: 'lora_unet_', clip_l: 'lora_te1_', t5: 'lora_te3_' };
const COMFY_PREFIX: Partial<Record<Component, string>> = {
  transformer: 'diffusion_model.',
  clip_l: 'text_encoders.clip_l.transformer.',
  t5: 'text_encoders.t5xxl.transformer.',
};
const PEFT_PREFIX: Partial<Record<Component, string>> = { transformer: 'transformer.', clip_l: 'text_encoder.', t5: 'text_encoder_2.' };

/** Module name of a canonical module path (target without its parameter) in a fused format. */
export function fusedModuleName(format: 'kohya' | 'comfyui', component: Component, path: string, architecture?: Architecture): string {
  if (architecture && isSdArchitecture(architecture)) return sdModuleName(format, architecture, component, path);
  const prefix = (format === 'kohya' ? KOHYA_PREFIX : COMFY_PREFIX)[component];
  if (prefix === undefined) throw new LoraFormatError('INEXPRESSIBLE', `${path}: ${format} files for FLUX have no place for the ${component} component`, path);
  return prefix + (format === 'kohya' ? path.replaceAll('.', '_') : path);
}

/** Module name of a diffusers module path in PEFT layout (for SD: of a canonical LDM / Hugging Face path). */
export function peftModuleName(component: Component, path: string, architecture?: Architecture): string {
  if (architecture && isSdArchitecture(architecture)) return sdModuleName('diffusers', architecture, component, path);
  const prefix = PEFT_PREFIX[component];
  if (prefix === undefined) throw new LoraFormatError('INEXPRESSIBLE', `${path}: diffusers files for FLUX have no place for the ${component} component`, path);
  return prefix + path;
}
