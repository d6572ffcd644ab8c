/**
 * How SD3 / SD3.5 LoRAs and checkpoints are recognised (docs/model-families.md §5.2). The original
 * names (`joint_blocks.N.x_block` / `context_block`) are SD3's alone. Its diffusers names are
 * FLUX.1's double-block names (`transformer_blocks.N.attn.to_q`, `add_q_proj`, `norm1_context`,
 * `ff_context`) and Qwen-Image's attention names; what only SD3 has there is SD3.5-medium's
 * `attn2` and `pos_embed.proj`. A file with only the shared names is SD3 by its hidden width
 * (64 per block: 1536 for 24 blocks, 2432 for 38, where FLUX.1 and Qwen-Image have 3072) or by its
 * depth (24 or 38 blocks, no single blocks: FLUX.1 has 19 double blocks, Qwen-Image 60).
 */
import type { CheckpointSignal, DetectionRule, KeySignal, MetadataHint } from '../family.ts';

/** `transformer_blocks.N.` at the top level, any prefix, dotted or `_` (not a UNet's `…_1_transformer_blocks_0_`, not `single_transformer_blocks`). */
const CONTAINER = String.raw`(?:^|[._])(?<!\d[._])(?<!single_)transformer_blocks[._]`;

const JOINT = /(?:^|[._])joint_blocks[._]\d+[._](?:x_block|context_block)[._]/;

export const SD3_SIGNALS: readonly KeySignal[] = [
  { re: JOINT, what: 'SD3 MMDiT joint blocks' },
  // not a UNet attention's transformer_blocks (`attentions.0.transformer_blocks.0.attn2`, `input_blocks_4_1_transformer_blocks_…`)
  { re: /(?:^|[._])(?<!\d[._])transformer_blocks[._]\d+[._]attn2[._]/, what: 'SD3.5 dual attention (attn2) in transformer blocks' },
  { re: /(?:^|[._])pos_embed[._]proj(?:[._]|$)/, what: 'SD3 diffusers patch embedding (pos_embed.proj)' },
];

export const SD3_METADATA: readonly MetadataHint[] = [
  // ai-toolkit sd_3; sd-scripts writes the model type its analyze_state_dict_state finds (5-large, 5-medium, medium)
  { key: 'ss_base_model_version', re: /^(?:sd_?3|5-large|5-medium|medium$)/i },
  // sd-scripts stable-diffusion-3-5-large/lora, stable-diffusion-3-5-medium/lora, stable-diffusion-3-medium/lora
  { key: 'modelspec.architecture', re: /^stable-diffusion-3/i },
];

/** Hidden widths of the SD3 sizes (64 × depth 24 / 38); a file's `attn.to_q`-style down input says which. */
const SD3_WIDTHS = new Set([1536, 2432]);
/** Any `transformer_blocks.N` (the depth rule's count, as it has always been). */
const SPLIT_BLOCKS = /(?:^|[._])transformer_blocks[._](\d+)[._]/;
/** Split attention inputs of the hidden state, under `transformer_blocks.N` (the downs' input width is h). */
const HIDDEN_INPUT = new RegExp(String.raw`${CONTAINER}\d+[._]attn[._](?:to_[qkv]|add_[qkv]_proj)[._](?:lora_A|lora_down)(?:[._]default)?[._]weight$`);

/** SD3's second and third text encoders in sd-scripts', diffusers' and ComfyUI's prefixes (SDXL has the CLIP-G too, FLUX.1 the T5). */
const CLIP_G = /^(?:lora_te2_text_model|text_encoder_2\.text_model|text_encoders\.clip_g\.)/;
const T5 = /^(?:lora_te3_encoder_block|text_encoders\.t5xxl\.)/;
const MMDIT_BLOCKS = new RegExp(`${CONTAINER}\\d+[._]`);

export const SD3_RULES: readonly DetectionRule[] = [
  {
    // before SD's rule (30), which takes any file whose top signal is SDXL's CLIP-G
    order: 20,
    decide: (c) => {
      if (c.top === 'sd3') return c.finish('sd3', 0.95);
      if (c.denoiserKeys('unet') > 0) return undefined;
      // the joint blocks are SD3's alone: FLUX.1's x_embedder / final_layer signals fire on SD3's embedders too
      const joint = c.tensors.find((t) => JOINT.test(t.name));
      if (joint) {
        c.evidence.push(`SD3 joint blocks (${joint.name}) outweigh the names other families share with SD3's embedders and text encoders`);
        return c.finish('sd3', 0.9);
      }
      // CLIP-G beside an MMDiT (diffusers transformer_blocks) or beside T5: only SD3 has both
      const clipG = c.tensors.find((t) => CLIP_G.test(t.name));
      const partner = clipG && c.tensors.find((t) => MMDIT_BLOCKS.test(t.name) || T5.test(t.name));
      if (clipG && partner) {
        c.evidence.push(`a CLIP-G text encoder (${clipG.name}) with ${T5.test(partner.name) ? 'a T5 encoder' : 'transformer blocks'} (${partner.name}): SD3, not SDXL`);
        return c.finish('sd3', 0.85);
      }
      return undefined;
    },
  },
  {
    // split attention names shared with FLUX.1 / Qwen-Image and no other family's signals: SD3 when the hidden
    // width is one of SD3's (FLUX.1 and Qwen-Image are 3072 wide); before Qwen-Image's depth rule (39)
    order: 38,
    decide: (c) => {
      if (c.denoiserKeys('unet') > 0 || c.othersOfKind('sd3', 'transformer') > 0) return undefined;
      const hit = c.tensors.find((t) => HIDDEN_INPUT.test(t.name) && t.shape.length === 2 && SD3_WIDTHS.has(t.shape[1]!));
      if (!hit) return undefined;
      c.evidence.push(`split attention in transformer_blocks with SD3's hidden width ${hit.shape[1]} (e.g. ${hit.name}; FLUX.1 and Qwen-Image are 3072)`);
      return c.finish('sd3', 0.8);
    },
  },
  {
    // split-attention names without single blocks: 19 or more blocks is SD3's depth, not FLUX's
    order: 40,
    decide: (c) => {
      const blocks = c.tensors.map((t) => SPLIT_BLOCKS.exec(t.name)).filter((m) => m !== null).map((m) => Number(m[1]));
      if (blocks.length === 0) return undefined;
      const max = Math.max(...blocks);
      if (c.metadataFamily?.family !== 'sd3' && max < 19) return undefined;
      c.evidence.push(`transformer_blocks up to index ${max} without single blocks`);
      return c.finish('sd3', 0.7);
    },
  },
];

export const SD3_CHECKPOINT_SIGNALS: readonly CheckpointSignal[] = [{ re: /(?:^|\.)joint_blocks\.\d+\.(?:x_block|context_block)\./, what: 'SD3 MMDiT joint blocks' }];
