/**
 * Z-Image (Turbo, 6B) as a family object (docs/model-families.md §4): original / ComfyUI names
 * canonical (fused `attention.qkv`), diffusers names split from them by the module table, block ids
 * IN, NR0–NR1, CR0–CR1, B00–B29, OUT. Its text encoder (Qwen3-4B) is not trained by any trainer in
 * circulation, so the layouts name the transformer only.
 *
 * The kohya layout writes original names (`lora_unet_layers_0_attention_qkv`, rank 3r with alpha
 * 3α): what musubi-tuner's `convert_z_image_lora_to_comfy.py` makes of its split
 * `lora_unet_layers_0_attention_to_q/_k/_v` files, which read too.
 */
import type { Family } from '../family.ts';
import { blockCoverage, transformerNaming } from '../table/denoiser.ts';
import { tableFamily } from '../table/table-family.ts';
import { Z_IMAGE_BLOCKS, Z_IMAGE_LAYERS, Z_IMAGE_REFINERS } from './blocks.ts';
import { Z_IMAGE_CHECKPOINT_SIGNALS, Z_IMAGE_METADATA, Z_IMAGE_RULES, Z_IMAGE_SIGNALS } from './detection.ts';
import { Z_IMAGE_TABLE } from './modules.ts';

export const Z_IMAGE: Family = tableFamily({
  id: 'z-image',
  label: 'Z-Image',
  detection: { signals: Z_IMAGE_SIGNALS, metadata: Z_IMAGE_METADATA, rules: Z_IMAGE_RULES },
  checkpoint: { signals: Z_IMAGE_CHECKPOINT_SIGNALS, extraction: /^(?:cap_embedder\.|(?:layers|noise_refiner|context_refiner)\.\d+\.(?:attention|feed_forward)\.)/ },
  table: Z_IMAGE_TABLE,
  // musubi-tuner's names (networks/lora_zimage.py; sai_model_spec ARCH_Z_IMAGE; dataset/architectures.py z_image)
  naming: transformerNaming('Z-Image', { modelspec: 'Z-Image/lora', networkModule: 'networks.lora_zimage', baseModel: 'z_image' }),
  blocks: Z_IMAGE_BLOCKS,
  // Z-Image-Turbo with widths ÷64 (the latent channels kept, as FLUX.2's are), its 30 layers and 2 + 2 refiners;
  // the modules musubi-tuner and ai-toolkit train by default (attention and feed-forward of `layers`); the samples give every
  // linear a bias, which the real model's embedders, adaLN and final layer have and its attention and feed-forward lack
  samples: {
    widths: { h: 60, f: 160, hd: 2, ad: 8, fq: 4, tm: 16, ctx: 40, in: 64 },
    blocks: { layer: Z_IMAGE_LAYERS, noise_refiner: Z_IMAGE_REFINERS, context_refiner: Z_IMAGE_REFINERS },
    targets: ['attention.qkv', 'attention.out', 'feed_forward.w1', 'feed_forward.w2', 'feed_forward.w3'].map((m) => `layers.{i}.${m}`),
  },
  ...blockCoverage(() => Z_IMAGE.blocks!),
});
