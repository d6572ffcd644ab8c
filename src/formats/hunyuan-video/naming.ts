/**
 * How each writable layout names HunyuanVideo modules (docs/model-families.md §6.3):
 *
 * - kohya = musubi-tuner's own files (`networks.lora`): `lora_unet_` + Tencent's module names with
 *   `.` → `_` (`lora_unet_double_blocks_0_img_mlp_fc1`, `…_img_mod_linear`,
 *   `lora_unet_single_blocks_0_modulation_linear`), so musubi-tuner loads them as its own.
 *   (ComfyUI maps `lora_unet_` keys through its own names only, so it loads the attention and
 *   single-block modules of such a file but not `img_mlp_fc1` / `img_mod_linear`: write comfyui
 *   for ComfyUI.)
 * - comfyui = `diffusion_model.` + ComfyUI's names (the canonical ones), which ComfyUI maps onto
 *   its model for every module.
 * - diffusers = PEFT `transformer.` + diffusers names.
 *
 * The transformer only: no HunyuanVideo trainer trains its text encoders (LLaVA-Llama-3, CLIP-L).
 */
import type { Component } from '../../adapter/model.ts';
import type { FamilyNaming } from '../family.ts';
import { LoraFormatError } from '../../adapter/errors.ts';
import { fillIndex } from '../table/template.ts';
import { HUNYUAN_VIDEO_TABLE, HUNYUAN_VIDEO_TENCENT } from './modules.ts';

function transformerOnly(format: string, component: Component, path: string): void {
  if (component !== 'transformer') throw new LoraFormatError('INEXPRESSIBLE', `${path}: ${format} HunyuanVideo LoRAs have no place for the ${component} component`, path);
}

/** Canonical module template → Tencent's template, where they differ. */
const TENCENT_NAME = new Map(HUNYUAN_VIDEO_TENCENT.map((a) => [a.original, a.name]));

/** Tencent's spelling of a canonical module path (the path itself where Tencent names it alike, or the table does not know it). */
export function tencentPath(path: string): string {
  const hit = HUNYUAN_VIDEO_TABLE.match(path, 'dotted');
  const name = hit && !hit.diffusersName ? TENCENT_NAME.get(hit.module.original) : undefined;
  return name ? fillIndex(name, hit!.block) : path;
}

export const HUNYUAN_VIDEO_NAMING: FamilyNaming = {
  fused: (format, component, path) => {
    transformerOnly(format, component, path);
    return format === 'kohya' ? `lora_unet_${tencentPath(path).replaceAll('.', '_')}` : `diffusion_model.${path}`;
  },
  peft: (component, path) => {
    transformerOnly('diffusers', component, path);
    return `transformer.${path}`;
  },
  // musubi-tuner: networks.lora for HunyuanVideo, sai_model_spec ARCH_HUNYUAN_VIDEO, ARCHITECTURE_HUNYUAN_VIDEO_FULL
  metadata: { modelspec: 'hunyuan-video/lora', networkModule: 'networks.lora', baseModel: 'hunyuan_video' },
};
