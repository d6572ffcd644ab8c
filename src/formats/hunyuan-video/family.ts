/**
 * HunyuanVideo (v1, 13B; T2V, and the I2V / SkyReels transformers of the same names) as a family
 * object (docs/model-families.md §6): ComfyUI's names canonical, Tencent's spellings read as
 * aliases, diffusers names split from the fused qkv / linear1 by the module table, block ids IN,
 * D00–D19, S00–S39, OUT. Registered before FLUX.1: its names are FLUX.1's, so its own signals
 * (which FLUX.1 files never match) are tried first. Its text encoders are not trained by any
 * trainer in circulation, so the layouts name the transformer only.
 */
import type { Family } from '../family.ts';
import { countAsEmbedderNamed, doubleSingleCoverage, tableDenoiser } from '../table/denoiser.ts';
import { tableFamily } from '../table/table-family.ts';
import { HUNYUAN_VIDEO_BLOCKS } from './blocks.ts';
import { HUNYUAN_VIDEO_LOCATOR, hunyuanVideoExtraction } from './checkpoint.ts';
import { HUNYUAN_VIDEO_CHECKPOINT_SIGNALS, HUNYUAN_VIDEO_EXTRACTION, HUNYUAN_VIDEO_METADATA, HUNYUAN_VIDEO_RULES, HUNYUAN_VIDEO_SIGNALS } from './detection.ts';
import { HUNYUAN_VIDEO_TABLE, TENCENT } from './modules.ts';
import { HUNYUAN_VIDEO_NAMING } from './naming.ts';

const tableNames = tableDenoiser(HUNYUAN_VIDEO_TABLE);

export const HUNYUAN_VIDEO: Family = tableFamily({
  id: 'hunyuan-video',
  label: 'HunyuanVideo',
  detection: { signals: HUNYUAN_VIDEO_SIGNALS, metadata: HUNYUAN_VIDEO_METADATA, rules: HUNYUAN_VIDEO_RULES },
  checkpoint: {
    signals: HUNYUAN_VIDEO_CHECKPOINT_SIGNALS,
    extraction: HUNYUAN_VIDEO_EXTRACTION,
    locator: HUNYUAN_VIDEO_LOCATOR,
    canonicalExtraction: hunyuanVideoExtraction,
  },
  table: HUNYUAN_VIDEO_TABLE,
  // a Tencent spelling is the model's, not a layout's: the key's prefix says the layout
  resolveDenoiser: (rest, spelling) => {
    const hit = tableNames(rest, spelling);
    return hit?.layout === TENCENT ? { ...hit, layout: undefined } : hit;
  },
  naming: HUNYUAN_VIDEO_NAMING,
  blocks: HUNYUAN_VIDEO_BLOCKS,
  // HunyuanVideo (13B) with widths ÷64 (latent channels, patch and output rows kept; the LLM width
  // 56 and head width 6, not 64 and 2, so no two widths coincide), its 20 double + 40 single blocks
  // and 2 refiner blocks; the modules musubi-tuner trains by default (no modulation)
  samples: {
    widths: { h: 48, mlp: 192, in: 16, pt: 1, p: 2, time: 4, vec: 12, txt: 56, head: 6, out: 64 },
    blocks: { double: 20, single: 40, refiner: 2 },
    targets: [
      ...['img_attn.qkv', 'img_attn.proj', 'img_mlp.0', 'img_mlp.2', 'txt_attn.qkv', 'txt_attn.proj', 'txt_mlp.0', 'txt_mlp.2'].map((m) => `double_blocks.{i}.${m}`),
      'single_blocks.{i}.linear1',
      'single_blocks.{i}.linear2',
    ],
  },
  // the token refiner counts with the embedders (block id IN)
  ...doubleSingleCoverage({ refiner: countAsEmbedderNamed('txt_in.individual_token_refiner') }, () => HUNYUAN_VIDEO_BLOCKS),
});
