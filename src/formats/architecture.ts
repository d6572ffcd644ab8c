/**
 * Which model a LoRA was made for, from its whole key set (and metadata as a tie-breaker):
 * FLUX, or one of the Stable Diffusion families, which loraflow recognises so it can refuse them
 * clearly instead of misreading them (research/lora-formats.md §1.1, §3, §6, Appendix E).
 */
import type { Architecture } from './model.ts';
import type { KeyInfo } from './keys/group.ts';

export interface ArchitectureGuess {
  architecture: Architecture;
  confidence: number;
  evidence: string[];
}

type Family = Exclude<Architecture, 'unknown'>;

/** Key patterns that only one family has; counted over the whole key set. */
const SIGNALS: readonly { family: Family; re: RegExp; what: string }[] = [
  { family: 'flux', re: /(?:^|[._])(?:double_blocks|single_blocks|single_transformer_blocks)[._]\d+[._]/, what: 'FLUX double/single stream blocks' },
  { family: 'flux', re: /[._](?:norm_added_[qk]|guidance_embedder|x_embedder)[._]/, what: 'FLUX-only diffusers modules' },
  { family: 'flux', re: /(?:^|[._])(?:img_in|txt_in|(?:time|vector|guidance)_in[._](?:in|out)_layer|final_layer(?!_norm))[._]/, what: 'FLUX embedders / final layer (BFL names)' },
  { family: 'sd3', re: /(?:^|[._])joint_blocks[._]\d+[._](?:x_block|context_block)[._]/, what: 'SD3 MMDiT joint blocks' },
  // not a UNet attention's transformer_blocks (`attentions.0.transformer_blocks.0.attn2`, `input_blocks_4_1_transformer_blocks_…`)
  { family: 'sd3', re: /(?:^|[._])(?<!\d[._])transformer_blocks[._]\d+[._]attn2[._]/, what: 'SD3.5 dual attention (attn2) in transformer blocks' },
  { family: 'sdxl', re: /(?:^|[._])input_blocks[._][4578][._]1[._]transformer_blocks[._][1-9][._]/, what: 'SDXL deep transformer stacks (sgm names)' },
  { family: 'sdxl', re: /(?:^|[._])(?:down|up)_blocks[._]\d+[._]attentions[._]\d+[._]transformer_blocks[._][1-9][._]/, what: 'SDXL deep transformer stacks (diffusers names)' },
  { family: 'sdxl', re: /^(?:lora_te2_text_model|text_encoder_2\.text_model|text_encoders\.clip_g\.)/, what: 'second CLIP text encoder (CLIP-G)' },
  { family: 'sdxl', re: /(?:^|[._])(?:add_embedding|label_emb)[._]/, what: 'SDXL size/crop embedding' },
  { family: 'sd1', re: /(?:^|[._])(?:input_blocks[._][12][._]1|output_blocks[._](?:9|10|11)[._]1|down_blocks[._]0[._]attentions)[._]/, what: 'attention at the first UNet level (SD1/SD2)' },
  { family: 'sd1', re: /^lora_te_text_model/, what: 'single CLIP text encoder with kohya SD1 prefix lora_te_' },
];

/** UNet-family module names in general (no FLUX/SD3 name contains these). */
const UNET = /(?:^|[._])(?:input_blocks|output_blocks|middle_block|down_blocks|up_blocks|mid_block)[._]/;
const FLUX_SPLIT_DOUBLE = /(?:^|[._])transformer_blocks[._](\d+)[._]/;
/** diffusers transformer-level names FLUX shares with SD3. */
const SHARED_DIT = /^(?:transformer\.)?(?:base_model\.model\.)?(?:norm_out|proj_out|context_embedder|time_text_embed)[._]/;
const T5 = /(?:^lora_te[23]_encoder_block|^text_encoders\.t5xxl\.|^text_encoder_2\.encoder\.block)/;

const METADATA_HINTS: readonly { key: string; re: RegExp; family: Family }[] = [
  { key: 'ss_base_model_version', re: /^(?:flux|chroma)/i, family: 'flux' },
  { key: 'ss_base_model_version', re: /^sdxl/i, family: 'sdxl' },
  { key: 'ss_base_model_version', re: /^sd_?3/i, family: 'sd3' },
  { key: 'ss_base_model_version', re: /^sd_v?2/i, family: 'sd2' },
  { key: 'ss_base_model_version', re: /^sd_v?1/i, family: 'sd1' },
  { key: 'modelspec.architecture', re: /^(?:flux|chroma)/i, family: 'flux' },
  { key: 'modelspec.architecture', re: /^stable-diffusion-xl/i, family: 'sdxl' },
  { key: 'modelspec.architecture', re: /^stable-diffusion-3/i, family: 'sd3' },
  { key: 'modelspec.architecture', re: /^stable-diffusion-v2/i, family: 'sd2' },
  { key: 'modelspec.architecture', re: /^stable-diffusion-v1/i, family: 'sd1' },
];

function metadataFamily(metadata: Readonly<Record<string, string>> | undefined): { family: Family; evidence: string } | undefined {
  for (const h of METADATA_HINTS) {
    const v = metadata?.[h.key];
    if (v !== undefined && h.re.test(v)) return { family: h.family, evidence: `metadata ${h.key}=${v}` };
  }
  return undefined;
}

/** SD2 differs from SD1 by its OpenCLIP-H text encoder (23 layers, width 1024) and 1024-wide cross-attention. */
function sd2Evidence(tensors: readonly KeyInfo[], metadata?: Readonly<Record<string, string>>): string | undefined {
  if (metadata?.ss_v2 === 'True') return 'metadata ss_v2=True';
  const deepTe = tensors.find((t) => /text_model[._]encoder[._]layers[._](1[2-9]|2\d)[._]/.test(t.name));
  if (deepTe) return `text encoder layer beyond CLIP-L's 12 (${deepTe.name})`;
  const wideCross = tensors.find((t) => /attn2[._]to_k.*(?:lora_down|lora_A)/.test(t.name) && t.shape[1] === 1024);
  if (wideCross) return `cross-attention input width 1024 (${wideCross.name})`;
  return undefined;
}

export function guessArchitecture(tensors: readonly KeyInfo[], metadata?: Readonly<Record<string, string>>): ArchitectureGuess {
  const counts = new Map<Family, number>();
  const evidence: string[] = [];
  const seen = new Set<string>();
  for (const t of tensors) {
    for (const s of SIGNALS) {
      if (!s.re.test(t.name)) continue;
      counts.set(s.family, (counts.get(s.family) ?? 0) + 1);
      if (!seen.has(s.what)) {
        seen.add(s.what);
        evidence.push(`${s.what} (e.g. ${t.name})`);
      }
    }
  }
  const meta = metadataFamily(metadata);
  if (meta) evidence.push(meta.evidence);
  const unetKeys = tensors.filter((t) => UNET.test(t.name)).length;
  const ranked = [...counts].sort((a, b) => b[1] - a[1]);
  const top = ranked[0]?.[0];

  const finish = (architecture: Architecture, confidence: number): ArchitectureGuess => ({ architecture, confidence, evidence });
  const flux = counts.get('flux') ?? 0;
  if (flux > 0 && unetKeys === 0 && (counts.get('sd3') ?? 0) === 0) return finish('flux', meta && meta.family !== 'flux' ? 0.8 : 1);
  if (top === 'sd3') return finish('sd3', 0.95);
  if (unetKeys > 0 || top === 'sdxl' || top === 'sd1') {
    if ((counts.get('sdxl') ?? 0) > 0) return finish('sdxl', 0.95);
    const sd2 = sd2Evidence(tensors, metadata);
    if (sd2) {
      evidence.push(sd2);
      return finish('sd2', 0.9);
    }
    if (meta && meta.family !== 'flux' && meta.family !== 'sd3') return finish(meta.family, 0.9);
    return finish('sd1', (counts.get('sd1') ?? 0) > 0 ? 0.9 : 0.6);
  }
  // split-attention (diffusers) names without single blocks: FLUX has at most 19 double blocks, SD3 has 24 or more
  const blocks = tensors.map((t) => FLUX_SPLIT_DOUBLE.exec(t.name)).filter((m) => m !== null).map((m) => Number(m[1]));
  if (blocks.length > 0) {
    const max = Math.max(...blocks);
    if (meta?.family === 'sd3' || max >= 19) {
      evidence.push(`transformer_blocks up to index ${max} without single blocks`);
      return finish('sd3', 0.7);
    }
    evidence.push(`only double-stream (transformer_blocks ≤ ${max}) keys: FLUX assumed (SD3 has ≥ 24 blocks)`);
    return finish('flux', meta?.family === 'flux' ? 0.9 : 0.6);
  }
  if (meta) return finish(meta.family, 0.7);
  const shared = tensors.find((t) => SHARED_DIT.test(t.name));
  if (shared) {
    evidence.push(`only transformer-level diffusers modules FLUX shares with SD3 (e.g. ${shared.name}): FLUX assumed`);
    return finish('flux', 0.5);
  }
  if (tensors.some((t) => T5.test(t.name))) {
    evidence.push('text-encoder-only LoRA with a T5 encoder and no CLIP-G: FLUX assumed');
    return finish('flux', 0.5);
  }
  return finish('unknown', 0);
}
