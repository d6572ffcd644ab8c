/**
 * The text encoders of the Stable Diffusion families (SD1: CLIP-L, kohya `lora_te_`; SD2: OpenCLIP-H;
 * SDXL: CLIP-L `lora_te1_` and OpenCLIP-bigG `lora_te2_`, 32 layers of width 1280), by the
 * Hugging Face names LoRAs use (the canonical targets), and how single-file checkpoints store them:
 * CLIP-L under Hugging Face names behind a prefix, OpenCLIP (SD2's ViT-H, SDXL's ViT-bigG) under
 * OpenCLIP names with q, k and v fused into one `in_proj_weight`.
 */
import type { Component } from '../../adapter/model.ts';
import type { SdArchitecture } from './unet.ts';

export interface SdTextEncoder {
  component: Extract<Component, 'clip_l' | 'clip_g'>;
  /** Hidden width, feed-forward width, transformer layers a LoRA can patch. */
  d: number;
  ff: number;
  layers: number;
  /** Layers the checkpoint stores (SD2 keeps OpenCLIP-H's 24th, which the penultimate-layer output never uses). */
  checkpointLayers: number;
  /** Where a single-file checkpoint keeps it, and in which naming. */
  checkpoint: { prefix: string; naming: 'hf' | 'openclip' };
  /** Output width of the text projection (SDXL CLIP-G's pooled embedding). */
  projection?: number;
}

const VOCAB = 49408;
const POSITIONS = 77;
export const CLIP_VOCAB = { tokens: VOCAB, positions: POSITIONS } as const;

/**
 * SD2's OpenCLIP-H is carried as `clip_l`, the single text-encoder slot of SD1/SD2 LoRAs
 * (kohya `lora_te_`, diffusers `text_encoder.`): the canonical model names components by role.
 */
export const SD_TEXT_ENCODERS: Readonly<Record<SdArchitecture, readonly SdTextEncoder[]>> = {
  sd1: [{ component: 'clip_l', d: 768, ff: 3072, layers: 12, checkpointLayers: 12, checkpoint: { prefix: 'cond_stage_model.transformer.', naming: 'hf' } }],
  sd2: [{ component: 'clip_l', d: 1024, ff: 4096, layers: 23, checkpointLayers: 24, checkpoint: { prefix: 'cond_stage_model.model.', naming: 'openclip' } }],
  sdxl: [
    { component: 'clip_l', d: 768, ff: 3072, layers: 12, checkpointLayers: 12, checkpoint: { prefix: 'conditioner.embedders.0.transformer.', naming: 'hf' } },
    { component: 'clip_g', d: 1280, ff: 5120, layers: 32, checkpointLayers: 32, checkpoint: { prefix: 'conditioner.embedders.1.model.', naming: 'openclip' }, projection: 1280 },
  ],
};

const HF_LAYER = 'text_model.encoder.layers.{i}';
const OC_LAYER = 'transformer.resblocks.{i}';

/** One OpenCLIP parameter ⇄ one Hugging Face parameter, or a third of a fused one (`part` of 3 row blocks). */
export interface OpenClipName {
  openclip: string;
  hf: string;
  part?: 0 | 1 | 2;
}

const fused = (param: 'weight' | 'bias'): OpenClipName[] =>
  (['q', 'k', 'v'] as const).map((x, i) => ({ openclip: `${OC_LAYER}.attn.in_proj_${param}`, hf: `${HF_LAYER}.self_attn.${x}_proj.${param}`, part: i as 0 | 1 | 2 }));

const pair = (oc: string, hf: string): OpenClipName[] => [
  { openclip: `${OC_LAYER}.${oc}.weight`, hf: `${HF_LAYER}.${hf}.weight` },
  { openclip: `${OC_LAYER}.${oc}.bias`, hf: `${HF_LAYER}.${hf}.bias` },
];

/** Every OpenCLIP text-tower parameter with a Hugging Face counterpart that is a plain weight or a row block of one. */
export const OPENCLIP_NAMES: readonly OpenClipName[] = [
  ...fused('weight'),
  ...fused('bias'),
  ...pair('attn.out_proj', 'self_attn.out_proj'),
  ...pair('ln_1', 'layer_norm1'),
  ...pair('ln_2', 'layer_norm2'),
  ...pair('mlp.c_fc', 'mlp.fc1'),
  ...pair('mlp.c_proj', 'mlp.fc2'),
  { openclip: 'token_embedding.weight', hf: 'text_model.embeddings.token_embedding.weight' },
  { openclip: 'positional_embedding', hf: 'text_model.embeddings.position_embedding.weight' },
  { openclip: 'ln_final.weight', hf: 'text_model.final_layer_norm.weight' },
  { openclip: 'ln_final.bias', hf: 'text_model.final_layer_norm.bias' },
];

/**
 * OpenCLIP parameters without such a counterpart: `text_projection` is stored transposed
 * (x @ P, where Hugging Face's Linear computes x @ Wᵀ), and `logit_scale` belongs to the
 * contrastive head, not the text encoder.
 */
export const OPENCLIP_UNMAPPED: Readonly<Record<string, string>> = {
  text_projection: 'OpenCLIP stores the text projection transposed (x @ P); Hugging Face text_projection.weight is Pᵀ, which is not a row block of it',
  logit_scale: 'the contrastive logit scale is not part of the text encoder a LoRA patches',
};

function templateRe(template: string): RegExp {
  return new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace('{i}', '(\\d+)')}$`);
}

const BY_OPENCLIP = OPENCLIP_NAMES.map((n) => ({ n, re: templateRe(n.openclip) }));
const BY_HF = OPENCLIP_NAMES.map((n) => ({ n, re: templateRe(n.hf) }));

const fill = (template: string, i: string | undefined) => (i === undefined ? template : template.replace('{i}', i));

/** OpenCLIP name (after the checkpoint prefix) → Hugging Face name and row block; undefined when it has none. */
export function openClipToHf(name: string): { hf: string; part?: 0 | 1 | 2 }[] | undefined {
  const hits = BY_OPENCLIP.filter(({ re }) => re.test(name));
  if (hits.length === 0) return undefined;
  return hits.map(({ n, re }) => ({ hf: fill(n.hf, re.exec(name)![1]), part: n.part }));
}

/** Hugging Face name → OpenCLIP name and, for q/k/v, which third of the fused rows. */
export function hfToOpenClip(name: string): { openclip: string; part?: 0 | 1 | 2 } | undefined {
  for (const { n, re } of BY_HF) {
    const m = re.exec(name);
    if (m) return { openclip: fill(n.openclip, m[1]), part: n.part };
  }
  return undefined;
}
