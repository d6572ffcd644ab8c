/**
 * How FLUX.1 LoRAs and checkpoints are recognised: key patterns only FLUX has, the metadata
 * trainers write, and the rules that decide FLUX when its signals are thin (diffusers names it
 * shares with SD3, text-encoder-only files).
 */
import type { CheckpointSignal, DetectionRule, KeySignal, MetadataHint } from '../family.ts';

export const FLUX_SIGNALS: readonly KeySignal[] = [
  { re: /(?:^|[._])(?:double_blocks|single_blocks|single_transformer_blocks)[._]\d+[._]/, what: 'FLUX double/single stream blocks' },
  { re: /[._](?:norm_added_[qk]|guidance_embedder|x_embedder)[._]/, what: 'FLUX-only diffusers modules' },
  { re: /(?:^|[._])(?:img_in|txt_in|(?:time|vector|guidance)_in[._](?:in|out)_layer|final_layer(?!_norm))[._]/, what: 'FLUX embedders / final layer (BFL names)' },
];

export const FLUX_METADATA: readonly MetadataHint[] = [
  { key: 'ss_base_model_version', re: /^(?:flux|chroma)/i },
  { key: 'modelspec.architecture', re: /^(?:flux|chroma)/i },
];

const SPLIT_DOUBLE = /(?:^|[._])transformer_blocks[._](\d+)[._]/;
/** diffusers transformer-level names FLUX shares with SD3. */
const SHARED_DIT = /^(?:transformer\.)?(?:base_model\.model\.)?(?:norm_out|proj_out|context_embedder|time_text_embed)[._]/;
const T5 = /(?:^lora_te[23]_encoder_block|^text_encoders\.t5xxl\.|^text_encoder_2\.encoder\.block)/;

export const FLUX_RULES: readonly DetectionRule[] = [
  {
    // FLUX signals, no UNet names and no other transformer family's signals
    order: 10,
    decide: (c) => {
      if (c.count('flux') === 0 || c.denoiserKeys('unet') > 0 || c.othersOfKind('flux', 'transformer') > 0) return undefined;
      return c.finish('flux', c.metadataFamily && c.metadataFamily.family !== 'flux' ? 0.8 : 1);
    },
  },
  {
    // split-attention (diffusers) names without single blocks: FLUX has at most 19 double blocks (order 40 takes more)
    order: 41,
    decide: (c) => {
      const blocks = c.tensors.map((t) => SPLIT_DOUBLE.exec(t.name)).filter((m) => m !== null).map((m) => Number(m[1]));
      if (blocks.length === 0) return undefined;
      c.evidence.push(`only double-stream (transformer_blocks ≤ ${Math.max(...blocks)}) keys: FLUX assumed (SD3 has ≥ 24 blocks)`);
      return c.finish('flux', c.metadataFamily?.family === 'flux' ? 0.9 : 0.6);
    },
  },
  {
    order: 60,
    decide: (c) => {
      const shared = c.tensors.find((t) => SHARED_DIT.test(t.name));
      if (shared) {
        c.evidence.push(`only transformer-level diffusers modules FLUX shares with SD3 (e.g. ${shared.name}): FLUX assumed`);
        return c.finish('flux', 0.5);
      }
      if (c.tensors.some((t) => T5.test(t.name))) {
        c.evidence.push('text-encoder-only LoRA with a T5 encoder and no CLIP-G: FLUX assumed');
        return c.finish('flux', 0.5);
      }
      return undefined;
    },
  },
];

export const FLUX_CHECKPOINT_SIGNALS: readonly CheckpointSignal[] = [
  { re: /(?:^|\.)(?:double_blocks\.\d+\.img_attn\.qkv|single_blocks\.\d+\.linear1)\.weight$/, what: 'FLUX double/single-stream blocks' },
];
