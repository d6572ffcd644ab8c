/**
 * How Qwen-Image LoRAs and checkpoints are recognised (docs/model-families.md §2.6). Its blocks are
 * `transformer_blocks.N` like FLUX.1's and SD3's diffusers names, and its attention names
 * (`attn.to_q`, `add_q_proj`, `to_add_out`) are theirs too, so only the MLP / modulation names
 * (`img_mlp`, `txt_mlp`, `img_mod.1`, `txt_mod.1` under `transformer_blocks.N`: FLUX's BFL
 * `img_mlp` / `img_mod` sit under `double_blocks.N`) and `txt_norm` count as its signals. A file
 * with attention names only is Qwen-Image when its blocks go past SD3.5-large's 38, or when its
 * metadata says so.
 */
import type { CheckpointSignal, DetectionRule, KeySignal, MetadataHint } from '../family.ts';

/** `transformer_blocks.N.` at the top level, any prefix, dotted or `_` (not a UNet's `…_1_transformer_blocks_0_`, not `single_transformer_blocks`). */
const CONTAINER = String.raw`(?:^|[._])(?<!\d[._])(?<!single_)transformer_blocks[._]`;
const BLOCK = String.raw`${CONTAINER}\d+[._]`;

export const QWEN_IMAGE_SIGNALS: readonly KeySignal[] = [
  { re: new RegExp(`${BLOCK}(?:img|txt)_mlp[._]net[._](?:0[._]proj|2)(?:[._]|$)`), what: 'Qwen-Image img_mlp / txt_mlp in transformer blocks' },
  { re: new RegExp(`${BLOCK}(?:img|txt)_mod[._]1(?:[._]|$)`), what: 'Qwen-Image img_mod.1 / txt_mod.1 in transformer blocks' },
  { re: /(?:^|[._])txt_norm(?:[._]|$)/, what: 'Qwen-Image text-input RMSNorm (txt_norm)' },
];

export const QWEN_IMAGE_METADATA: readonly MetadataHint[] = [
  // musubi-tuner qwen_image / qwen_image_edit / qwen_image_layered; ai-toolkit also qwen_image_edit_plus
  { key: 'ss_base_model_version', re: /^qwen[_-]?image/i },
  // musubi-tuner Qwen-Image/lora, Qwen-Image-Edit(-Plus, -2511)/lora, Qwen-Image-Layered/lora
  { key: 'modelspec.architecture', re: /^qwen-image/i },
];

const SPLIT_BLOCKS = new RegExp(String.raw`${CONTAINER}(\d+)[._]`);

export const QWEN_IMAGE_RULES: readonly DetectionRule[] = [
  {
    // Qwen-Image signals outnumber every other family's and no UNet names are present
    order: 16,
    decide: (c) => (c.top === 'qwen-image' && c.denoiserKeys('unet') === 0 ? c.finish('qwen-image', c.metadataFamily && c.metadataFamily.family !== 'qwen-image' ? 0.8 : 1) : undefined),
  },
  {
    // attention-only split names (shared with FLUX.1 / SD3 diffusers), no other family's signal: Qwen-Image by
    // depth (60 blocks; SD3.5-large has 38, FLUX.1 19 double blocks) or by its metadata; before SD3's depth rule (40)
    order: 39,
    decide: (c) => {
      if (c.denoiserKeys('unet') > 0 || c.othersOfKind('qwen-image', 'transformer') > 0) return undefined;
      const blocks = c.tensors.map((t) => SPLIT_BLOCKS.exec(t.name)).filter((m) => m !== null).map((m) => Number(m[1]));
      if (blocks.length === 0) return undefined;
      const max = Math.max(...blocks);
      const meta = c.metadataFamily?.family === 'qwen-image';
      if (!meta && max < 38) return undefined;
      c.evidence.push(`transformer_blocks up to index ${max} without single blocks${meta ? '' : ' (deeper than SD3.5-large and FLUX.1)'}: Qwen-Image`);
      return c.finish('qwen-image', meta ? 0.9 : 0.7);
    },
  },
];

export const QWEN_IMAGE_CHECKPOINT_SIGNALS: readonly CheckpointSignal[] = [
  // ComfyUI's own test (model_detection.py: Qwen Image iff txt_norm.weight)
  { re: /(?:^|\.)txt_norm\.weight$/, what: 'Qwen-Image text-input RMSNorm (txt_norm)' },
  { re: /(?:^|\.)transformer_blocks\.\d+\.(?:img_mlp\.net\.0\.proj|img_mod\.1)\.weight$/, what: 'Qwen-Image transformer blocks (img_mlp / img_mod)' },
];
