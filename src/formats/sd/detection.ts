/**
 * How Stable Diffusion LoRAs and checkpoints are recognised: UNet names place a file in the
 * family, and which member it is (SD1.5, SD2, SDXL) takes its block layout, text encoders and
 * shapes (`classifyStableDiffusion` refines the first guess with the whole key set).
 */
import type { CheckpointSignal, DetectionContext, DetectionRule, KeySignal, MetadataHint } from '../family.ts';
import type { KeyInfo } from '../keys/group.ts';
import type { SdArchitecture } from './unet.ts';

/** UNet-family module names in general (no transformer family's name contains these). */
export const UNET_NAMES = /(?:^|[._])(?:input_blocks|output_blocks|middle_block|down_blocks|up_blocks|mid_block)[._]/;

export const SD_SIGNALS: Readonly<Record<SdArchitecture, readonly KeySignal[]>> = {
  sdxl: [
    { re: /(?:^|[._])input_blocks[._][4578][._]1[._]transformer_blocks[._][1-9][._]/, what: 'SDXL deep transformer stacks (sgm names)' },
    { re: /(?:^|[._])(?:down|up)_blocks[._]\d+[._]attentions[._]\d+[._]transformer_blocks[._][1-9][._]/, what: 'SDXL deep transformer stacks (diffusers names)' },
    { re: /^(?:lora_te2_text_model|text_encoder_2\.text_model|text_encoders\.clip_g\.)/, what: 'second CLIP text encoder (CLIP-G)' },
    { re: /(?:^|[._])(?:add_embedding|label_emb)[._]/, what: 'SDXL size/crop embedding' },
  ],
  sd1: [
    { re: /(?:^|[._])(?:input_blocks[._][12][._]1|output_blocks[._](?:9|10|11)[._]1|down_blocks[._]0[._]attentions)[._]/, what: 'attention at the first UNet level (SD1/SD2)' },
    { re: /^lora_te_text_model/, what: 'single CLIP text encoder with kohya SD1 prefix lora_te_' },
  ],
  sd2: [],
};

export const SD_METADATA: Readonly<Record<SdArchitecture, readonly MetadataHint[]>> = {
  sdxl: [
    { key: 'ss_base_model_version', re: /^sdxl/i },
    { key: 'modelspec.architecture', re: /^stable-diffusion-xl/i },
  ],
  sd2: [
    { key: 'ss_base_model_version', re: /^sd_v?2/i },
    { key: 'modelspec.architecture', re: /^stable-diffusion-v2/i },
  ],
  sd1: [
    { key: 'ss_base_model_version', re: /^sd_v?1/i },
    { key: 'modelspec.architecture', re: /^stable-diffusion-v1/i },
  ],
};

const SD_IDS: readonly string[] = ['sd1', 'sd2', 'sdxl'];

/** SD2 differs from SD1 by its OpenCLIP-H text encoder (23 layers, width 1024) and 1024-wide cross-attention. */
function sd2Evidence(tensors: readonly KeyInfo[], metadata?: Readonly<Record<string, string>>): string | undefined {
  if (metadata?.ss_v2 === 'True') return 'metadata ss_v2=True';
  const deepTe = tensors.find((t) => /text_model[._]encoder[._]layers[._](1[2-9]|2\d)[._]/.test(t.name));
  if (deepTe) return `text encoder layer beyond CLIP-L's 12 (${deepTe.name})`;
  const wideCross = tensors.find((t) => /attn2[._]to_k.*(?:lora_down|lora_A)/.test(t.name) && t.shape[1] === 1024);
  if (wideCross) return `cross-attention input width 1024 (${wideCross.name})`;
  return undefined;
}

function decide(c: DetectionContext) {
  if (c.denoiserKeys('unet') === 0 && c.top !== 'sdxl' && c.top !== 'sd1') return undefined;
  if (c.count('sdxl') > 0) return c.finish('sdxl', 0.95);
  const sd2 = sd2Evidence(c.tensors, c.metadata);
  if (sd2) {
    c.evidence.push(sd2);
    return c.finish('sd2', 0.9);
  }
  const meta = c.metadataFamily?.family;
  if (meta && SD_IDS.includes(meta)) return c.finish(meta, 0.9);
  return c.finish('sd1', c.count('sd1') > 0 ? 0.9 : 0.6);
}

/** One rule for the three members (shared by their family objects, run once). */
export const SD_RULES: readonly DetectionRule[] = [{ order: 30, decide }];

export const SD_CHECKPOINT_SIGNALS: Readonly<Record<SdArchitecture, readonly CheckpointSignal[]>> = {
  sdxl: [{ re: /(?:^|\.)label_emb\.0\.0\.weight$|^conditioner\.embedders\.1\.model\./, what: 'SDXL size embedding / OpenCLIP-G conditioner' }],
  sd2: [{ re: /^cond_stage_model\.model\.transformer\./, what: 'OpenCLIP-H text encoder (cond_stage_model.model.)' }],
  sd1: [{ re: /^cond_stage_model\.transformer\.text_model\./, what: 'CLIP-L text encoder (cond_stage_model.transformer.)' }],
};

/** SD1 vs SD2 UNet without text encoder: SD1 projects with 1×1 convs, SD2 with Linear; SD1's context is 2.4× the first level's width, SD2's 3.2×. */
export function unetCheckpointFamily(keys: readonly KeyInfo[]): { architecture: string; evidence: string } | undefined {
  if (!keys.some((k) => /(?:^|\.)input_blocks\.\d+\.\d+\./.test(k.name))) return undefined;
  const find = (suffix: string) => keys.find((k) => k.name.endsWith(suffix));
  const projIn = find('input_blocks.1.1.proj_in.weight');
  const toK = find('input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight');
  if (!projIn && !toK) return undefined;
  if (projIn) return projIn.shape.length === 4 ? { architecture: 'sd1', evidence: `1×1 conv proj_in (${projIn.name})` } : { architecture: 'sd2', evidence: `Linear proj_in (${projIn.name})` };
  const ratio = toK!.shape[1]! / toK!.shape[0]!;
  return { architecture: ratio === 2.4 ? 'sd1' : 'sd2', evidence: `cross-attention context ${ratio}× the level-0 width (${toK!.name})` };
}
