/**
 * How each writable format names Stable Diffusion modules. sd-scripts trains SD1/SD2 on a
 * diffusers-layout UNet and SDXL on an sgm one (`sdxl_original_unet.py`), so kohya uses diffusers
 * UNet names for SD1/SD2 (`lora_unet_down_blocks_…`) and sgm names for SDXL
 * (`lora_unet_input_blocks_…`), `lora_te_` for the one SD1/SD2 text encoder and `lora_te1_`/`lora_te2_`
 * for SDXL's two; ComfyUI uses `diffusion_model.` + LDM names and `text_encoders.clip_*.transformer.`;
 * diffusers/PEFT uses `unet.`, `text_encoder.` and `text_encoder_2.` with diffusers names.
 */
import type { Component } from '../../adapter/model.ts';
import { LoraFormatError } from '../../adapter/errors.ts';
import { unetModuleByLdm } from './lookup.ts';
import type { SdArchitecture } from './unet.ts';

export type SdWriteFormat = 'kohya' | 'comfyui' | 'diffusers';

interface Naming {
  /** Prefix per component; a missing entry means the format has no place for it. */
  prefix: Partial<Record<Component, string>>;
  unet: 'ldm' | 'diffusers';
  underscore: boolean;
}

const KOHYA_TE: Record<SdArchitecture, Partial<Record<Component, string>>> = {
  sd1: { clip_l: 'lora_te_' },
  sd2: { clip_l: 'lora_te_' },
  sdxl: { clip_l: 'lora_te1_', clip_g: 'lora_te2_' },
};

/** ComfyUI names SD2's OpenCLIP-H `clip_h`. */
const COMFY_TE: Record<SdArchitecture, Partial<Record<Component, string>>> = {
  sd1: { clip_l: 'text_encoders.clip_l.transformer.' },
  sd2: { clip_l: 'text_encoders.clip_h.transformer.' },
  sdxl: { clip_l: 'text_encoders.clip_l.transformer.', clip_g: 'text_encoders.clip_g.transformer.' },
};

function naming(format: SdWriteFormat, arch: SdArchitecture): Naming {
  switch (format) {
    case 'kohya':
      return { prefix: { unet: 'lora_unet_', ...KOHYA_TE[arch] }, unet: arch === 'sdxl' ? 'ldm' : 'diffusers', underscore: true };
    case 'comfyui':
      return { prefix: { unet: 'diffusion_model.', ...COMFY_TE[arch] }, unet: 'ldm', underscore: false };
    case 'diffusers':
      return { prefix: { unet: 'unet.', clip_l: 'text_encoder.', ...(arch === 'sdxl' ? { clip_g: 'text_encoder_2.' } : {}) }, unet: 'diffusers', underscore: false };
  }
}

/** Module name of a canonical module path (target without `.weight`/`.bias`) in `format`. */
export function sdModuleName(format: SdWriteFormat, arch: SdArchitecture, component: Component, path: string): string {
  const n = naming(format, arch);
  const prefix = n.prefix[component];
  if (prefix === undefined) {
    throw new LoraFormatError('INEXPRESSIBLE', `${path}: ${format} files for ${arch.toUpperCase()} have no place for the ${component} component`, path);
  }
  let name = path;
  if (component === 'unet') {
    const m = unetModuleByLdm(arch, path);
    if (!m) throw new LoraFormatError('INEXPRESSIBLE', `${path}: not a module of the ${arch.toUpperCase()} UNet, so ${format} has no name for it`, path);
    name = n.unet === 'ldm' ? m.ldm : m.diffusers;
  }
  return prefix + (n.underscore ? name.replaceAll('.', '_') : name);
}

/** What sd-scripts / SAI model spec call each family's LoRAs: `modelspec.architecture`, `ss_network_module`, `ss_base_model_version`. */
export const SD_LORA_METADATA: Readonly<Record<SdArchitecture, { modelspec: string; networkModule: string; baseModel: string }>> = {
  sd1: { modelspec: 'stable-diffusion-v1/lora', networkModule: 'networks.lora', baseModel: 'sd_v1' },
  sd2: { modelspec: 'stable-diffusion-v2-512/lora', networkModule: 'networks.lora', baseModel: 'sd_v2' },
  sdxl: { modelspec: 'stable-diffusion-xl-v1-base/lora', networkModule: 'networks.lora', baseModel: 'sdxl_base_v1-0' },
};
