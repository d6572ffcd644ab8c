/**
 * How Wan 2.x LoRAs and checkpoints are recognised (docs/model-families.md §1.6): its blocks are
 * `blocks.N` (not `transformer_blocks.N`) with `self_attn` / `cross_attn` / `ffn`, or diffusers'
 * `attn1` / `attn2` / `ffn.net` under the same bare `blocks.N`.
 */
import type { CheckpointSignal, DetectionRule, KeySignal, MetadataHint } from '../family.ts';

export const WAN_SIGNALS: readonly KeySignal[] = [
  { re: /(?:^|[._])blocks[._]\d+[._](?:self_attn|cross_attn)[._](?:q|k|v|o|k_img|v_img|norm_q|norm_k|norm_k_img)(?:[._]|$)/, what: 'Wan self/cross attention (original names)' },
  { re: /(?:^|[._])blocks[._]\d+[._]ffn[._][02][._]/, what: 'Wan feed-forward ffn.0 / ffn.2 (original names)' },
  // bare `blocks.N` (not a UNet's or FLUX's `transformer_blocks.N`), dotted or kohya-spelled
  { re: /(?:^|[._])(?<!transformer_)blocks[._]\d+[._](?:attn[12][._](?:to_[qkv]|to_out[._]0|add_[kv]_proj)|ffn[._]net[._](?:0[._]proj|2))(?:[._]|$)/, what: 'Wan blocks in diffusers names (blocks.N.attn1 / attn2 / ffn.net)' },
  { re: /(?:^|[._])(?:head[._]head|time_projection[._]1|text_embedding[._][02]|img_emb[._]proj[._][0-4])[._]/, what: 'Wan embedders / head (original names)' },
];

export const WAN_METADATA: readonly MetadataHint[] = [
  { key: 'ss_base_model_version', re: /^wan/i },
  { key: 'modelspec.architecture', re: /^wan/i },
];

export const WAN_RULES: readonly DetectionRule[] = [
  {
    // Wan signals outnumber every other family's and no UNet names are present
    order: 15,
    decide: (c) => (c.top === 'wan' && c.denoiserKeys('unet') === 0 ? c.finish('wan', c.metadataFamily && c.metadataFamily.family !== 'wan' ? 0.8 : 1) : undefined),
  },
];

export const WAN_CHECKPOINT_SIGNALS: readonly CheckpointSignal[] = [
  { re: /(?:^|\.)head\.modulation$/, what: 'Wan output head modulation' },
  { re: /(?:^|\.)blocks\.\d+\.(?:self_attn\.q|cross_attn\.q)\.weight$/, what: 'Wan self/cross attention blocks' },
];
