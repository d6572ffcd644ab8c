/**
 * The writable formats, their tensor suffixes, and module names as each family's naming gives them
 * (kohya = sd-scripts' fused names with `.` → `_`, comfyui = `diffusion_model.` + original names,
 * diffusers = PEFT names, as ai-toolkit writes).
 */
import type { Architecture, Component } from '../../adapter/model.ts';
import { LoraFormatError } from '../../adapter/errors.ts';
import { familyOf, labelOf } from '../families.ts';

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

/** Module name of a canonical module path (target without its parameter) in a fused format. */
export function fusedModuleName(format: 'kohya' | 'comfyui', component: Component, path: string, architecture: Architecture): string {
  return namingOf(architecture, format, path).fused(format, component, path);
}

/** Module name of a module path in PEFT layout (a diffusers name where the family's table splits fused weights). */
export function peftModuleName(component: Component, path: string, architecture: Architecture): string {
  return namingOf(architecture, 'diffusers', path).peft(component, path);
}

function namingOf(architecture: Architecture, format: string, path: string) {
  const naming = familyOf(architecture)?.naming;
  if (!naming) throw new LoraFormatError('INEXPRESSIBLE', `${path}: loraflow has no ${format} names for ${labelOf(architecture)} modules`, path);
  return naming;
}
