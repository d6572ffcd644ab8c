/**
 * Qwen-Image (and Qwen-Image-Edit / Edit-Plus / Edit-2511 / Layered: the same transformer) as a
 * family object: one naming for the Qwen release, ComfyUI and diffusers (docs/model-families.md
 * §2.2), block ids IN, B00–B59, OUT. Its text encoder (Qwen2.5-VL) is not trained by any trainer
 * in circulation, so the layouts name the transformer only.
 */
import type { Family } from '../family.ts';
import { indexedBlockScheme, numberedBlockOf } from '../block-scheme.ts';
import { blockCoverage, transformerNaming } from '../table/denoiser.ts';
import { tableFamily } from '../table/table-family.ts';
import { QWEN_IMAGE_CHECKPOINT_SIGNALS, QWEN_IMAGE_METADATA, QWEN_IMAGE_RULES, QWEN_IMAGE_SIGNALS } from './detection.ts';
import { QWEN_IMAGE_TABLE } from './modules.ts';

const BLOCKS = 60;
const BLOCK = /^transformer_blocks\.(\d+)\./;
const IN = /^(?:img_in|txt_norm|txt_in|time_text_embed)\./;
const OUT = /^(?:norm_out|proj_out)\./;


export const QWEN_IMAGE: Family = tableFamily({
  id: 'qwen-image',
  label: 'Qwen-Image',
  detection: { signals: QWEN_IMAGE_SIGNALS, metadata: QWEN_IMAGE_METADATA, rules: QWEN_IMAGE_RULES },
  checkpoint: { signals: QWEN_IMAGE_CHECKPOINT_SIGNALS, extraction: /^(?:txt_norm\.|transformer_blocks\.\d+\.(?:img_mlp|txt_mlp|img_mod|txt_mod)\.)/ },
  table: QWEN_IMAGE_TABLE,
  // musubi-tuner's names (networks/lora_qwen_image.py; sai_model_spec ARCH for Qwen-Image)
  naming: transformerNaming('Qwen-Image', { modelspec: 'Qwen-Image/lora', networkModule: 'networks.lora_qwen_image', baseModel: 'qwen_image' }),
  blocks: indexedBlockScheme({
    label: 'Qwen-Image',
    head: ['IN'],
    tail: ['OUT'],
    prefix: 'B',
    sizes: [BLOCKS],
    blockOf: numberedBlockOf({ block: BLOCK, count: BLOCKS, head: IN, tail: OUT }),
  }),
  // Qwen-Image (20B) with widths ÷64, its 60 blocks; the modules musubi-tuner trains by default
  samples: {
    widths: { h: 48, f: 192, ctx: 56, fq: 4, hd: 2, in: 64, oc: 64 },
    blocks: BLOCKS,
    targets: ['attn.to_q', 'attn.to_k', 'attn.to_v', 'attn.to_out.0', 'attn.add_q_proj', 'attn.add_k_proj', 'attn.add_v_proj', 'attn.to_add_out', 'img_mlp.net.0.proj', 'img_mlp.net.2', 'txt_mlp.net.0.proj', 'txt_mlp.net.2'].map(
      (m) => `transformer_blocks.{i}.${m}`,
    ),
  },
  ...blockCoverage(() => QWEN_IMAGE.blocks!),
});
