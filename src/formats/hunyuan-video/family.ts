/**
 * HunyuanVideo (v1, 13B; T2V, and the I2V / SkyReels transformers of the same names) as a family
 * object (docs/model-families.md §6): ComfyUI's names canonical, Tencent's spellings read as
 * aliases, diffusers names split from the fused qkv / linear1 by the module table, block ids IN,
 * D00–D19, S00–S39, OUT. Registered before FLUX.1: its names are FLUX.1's, so its own signals
 * (which FLUX.1 files never match) are tried first. Its text encoders are not trained by any
 * trainer in circulation, so the layouts name the transformer only.
 */
import type { Coverage, Family } from '../family.ts';
import { placeKnown, tableDenoiser } from '../table/denoiser.ts';
import { HUNYUAN_VIDEO_BLOCKS } from './blocks.ts';
import { HUNYUAN_VIDEO_LOCATOR, hunyuanVideoExtraction } from './checkpoint.ts';
import { HUNYUAN_VIDEO_CHECKPOINT_SIGNALS, HUNYUAN_VIDEO_EXTRACTION, HUNYUAN_VIDEO_METADATA, HUNYUAN_VIDEO_RULES, HUNYUAN_VIDEO_SIGNALS } from './detection.ts';
import { HUNYUAN_VIDEO_TABLE, TENCENT } from './modules.ts';
import { HUNYUAN_VIDEO_NAMING } from './naming.ts';

const add = <T>(list: T[], v: T) => {
  if (!list.includes(v)) list.push(v);
};

/** Where each table group is counted in inspect's coverage (the token refiner with the embedders, as block id IN). */
const COVERAGE: Record<string, (c: Coverage, block: number | undefined, module: string) => void> = {
  double: (c, block) => add(c.doubleBlocks, block!),
  single: (c, block) => add(c.singleBlocks, block!),
  refiner: (c) => add(c.embedders, 'txt_in.individual_token_refiner'),
  embedder: (c, _, module) => add(c.embedders, module),
  final: (c, _, module) => add(c.finalLayer, module),
};

const tableNames = tableDenoiser(HUNYUAN_VIDEO_TABLE);

export const HUNYUAN_VIDEO: Family = {
  id: 'hunyuan-video',
  label: 'HunyuanVideo',
  denoiser: 'transformer',
  detection: { signals: HUNYUAN_VIDEO_SIGNALS, metadata: HUNYUAN_VIDEO_METADATA, rules: HUNYUAN_VIDEO_RULES },
  checkpoint: {
    signals: HUNYUAN_VIDEO_CHECKPOINT_SIGNALS,
    extractionSignal: { component: 'transformer', pattern: HUNYUAN_VIDEO_EXTRACTION },
    locator: HUNYUAN_VIDEO_LOCATOR,
    canonicalExtraction: hunyuanVideoExtraction,
  },
  table: HUNYUAN_VIDEO_TABLE,
  // a Tencent spelling is the model's, not a layout's: the key's prefix says the layout
  resolveDenoiser: (rest, spelling) => {
    const hit = tableNames(rest, spelling);
    return hit?.layout === TENCENT ? { ...hit, layout: undefined } : hit;
  },
  place: placeKnown,
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
  coverage: (spec, c) => {
    if (spec.component !== 'transformer') return false;
    const e = spec.entry;
    const at = e && COVERAGE[e.group];
    if (!e || !at) return false;
    at(c, e.block, e.module.original);
    const id = HUNYUAN_VIDEO_BLOCKS.blockOf(spec);
    if (id && !(c.blocks ??= []).includes(id)) c.blocks.push(id);
    return true;
  },
  coverageLines: (c, span) => [`coverage:     double blocks ${span(c.doubleBlocks)}; single blocks ${span(c.singleBlocks)}`],
};
