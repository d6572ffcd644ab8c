/**
 * How each writable layout names FLUX.2 modules (docs/model-families.md §3.3): kohya = musubi-tuner's
 * `lora_unet_` + BFL names with `.` → `_` (`networks.lora_flux_2`); comfyui = `diffusion_model.` +
 * BFL names (ai-toolkit / diffusion-pipe); diffusers = PEFT `transformer.` + diffusers names. The
 * transformer only: no FLUX.2 trainer trains the text encoder.
 */
import type { Component } from '../../adapter/model.ts';
import type { FamilyNaming } from '../family.ts';
import { LoraFormatError } from '../../adapter/errors.ts';

function transformerOnly(format: string, component: Component, path: string): void {
  if (component !== 'transformer') throw new LoraFormatError('INEXPRESSIBLE', `${path}: ${format} FLUX.2 LoRAs have no place for the ${component} component`, path);
}

export const FLUX2_NAMING: FamilyNaming = {
  fused: (format, component, path) => {
    transformerOnly(format, component, path);
    return format === 'kohya' ? `lora_unet_${path.replaceAll('.', '_')}` : `diffusion_model.${path}`;
  },
  peft: (component, path) => {
    transformerOnly('diffusers', component, path);
    return `transformer.${path}`;
  },
  // musubi-tuner networks/lora_flux_2.py; sai_model_spec architecture and ss_base_model_version for FLUX.2-dev
  metadata: { modelspec: 'Flux.2-dev/lora', networkModule: 'networks.lora_flux_2', baseModel: 'flux_2_dev' },
};
