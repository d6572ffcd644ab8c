/**
 * Text-encoder modules a LoRA can patch, named by their Hugging Face paths (the canonical targets
 * for components `clip_l`, `clip_g` and `t5`, as transformers names them). The kohya spellings
 * (`lora_te1_text_model_encoder_layers_0_self_attn_q_proj`) are these paths with `.` → `_`.
 */
import type { Component } from '../adapter/model.ts';

export interface TextEncoderModule {
  /** HF module path; `{i}` is the layer / block index. */
  path: string;
  /** `[out, in]` in the encoder's widths: d model width, ff feed-forward width. */
  shape: readonly ('d' | 'ff')[];
}

const CLIP_LAYER = 'text_model.encoder.layers.{i}';
const T5_BLOCK = 'encoder.block.{i}';

export const CLIP_MODULES: readonly TextEncoderModule[] = [
  { path: `${CLIP_LAYER}.self_attn.q_proj`, shape: ['d', 'd'] },
  { path: `${CLIP_LAYER}.self_attn.k_proj`, shape: ['d', 'd'] },
  { path: `${CLIP_LAYER}.self_attn.v_proj`, shape: ['d', 'd'] },
  { path: `${CLIP_LAYER}.self_attn.out_proj`, shape: ['d', 'd'] },
  { path: `${CLIP_LAYER}.mlp.fc1`, shape: ['ff', 'd'] },
  { path: `${CLIP_LAYER}.mlp.fc2`, shape: ['d', 'ff'] },
];

export const T5_MODULES: readonly TextEncoderModule[] = [
  { path: `${T5_BLOCK}.layer.0.SelfAttention.q`, shape: ['d', 'd'] },
  { path: `${T5_BLOCK}.layer.0.SelfAttention.k`, shape: ['d', 'd'] },
  { path: `${T5_BLOCK}.layer.0.SelfAttention.v`, shape: ['d', 'd'] },
  { path: `${T5_BLOCK}.layer.0.SelfAttention.o`, shape: ['d', 'd'] },
  { path: `${T5_BLOCK}.layer.1.DenseReluDense.wi_0`, shape: ['ff', 'd'] },
  { path: `${T5_BLOCK}.layer.1.DenseReluDense.wi_1`, shape: ['ff', 'd'] },
  { path: `${T5_BLOCK}.layer.1.DenseReluDense.wo`, shape: ['d', 'ff'] },
];

/** Widths and depth of the encoders FLUX uses (CLIP-L: 12 × 768/3072; T5-XXL encoder: 24 × 4096/10240). */
export const TEXT_ENCODER_DIMS = {
  clip_l: { d: 768, ff: 3072, layers: 12 },
  t5: { d: 4096, ff: 10240, layers: 24 },
} as const;

export function textEncoderModules(component: Component): readonly TextEncoderModule[] {
  if (component === 't5') return T5_MODULES;
  if (component === 'clip_l' || component === 'clip_g') return CLIP_MODULES;
  return [];
}
