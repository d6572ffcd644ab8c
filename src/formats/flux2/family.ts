/**
 * FLUX.2 (dev; klein 4B / 9B) as a family object (docs/model-families.md §3): BFL names canonical,
 * diffusers names split from them by the module table, block ids IN, D00–D07, S00–S47, OUT.
 * Registered before FLUX.1: FLUX.1's metadata hints, checkpoint and extraction signals also match
 * FLUX.2 files, so FLUX.2's, which FLUX.1 files never match, are tried first.
 */
import type { Family } from '../family.ts';
import { countAsEmbedder, doubleSingleCoverage } from '../table/denoiser.ts';
import { tableFamily } from '../table/table-family.ts';
import { FLUX2_BLOCKS } from './blocks.ts';
import { FLUX2_CHECKPOINT_SIGNALS, FLUX2_METADATA, FLUX2_RULES, FLUX2_SIGNALS } from './detection.ts';
import { FLUX2_TABLE } from './modules.ts';
import { FLUX2_NAMING } from './naming.ts';

export const FLUX2: Family = tableFamily({
  id: 'flux2',
  label: 'FLUX.2',
  detection: { signals: FLUX2_SIGNALS, metadata: FLUX2_METADATA, rules: FLUX2_RULES },
  checkpoint: { signals: FLUX2_CHECKPOINT_SIGNALS, extraction: /^(?:double_stream_modulation_img|double_stream_modulation_txt|single_stream_modulation)\./ },
  table: FLUX2_TABLE,
  naming: FLUX2_NAMING,
  blocks: FLUX2_BLOCKS,
  // FLUX.2-dev with widths ÷64 and its 8 double + 48 single blocks; the modules ai-toolkit trains by default
  samples: {
    widths: { h: 96, mlp: 288, ff: 576, in: 128, ctx: 240, time: 4, head: 2 },
    blocks: { double: 8, single: 48 },
    biases: false,
    targets: [
      ...['img_attn.qkv', 'txt_attn.qkv', 'img_attn.proj', 'txt_attn.proj', 'img_mlp.0', 'img_mlp.2', 'txt_mlp.0', 'txt_mlp.2'].map((m) => `double_blocks.{i}.${m}`),
      'single_blocks.{i}.linear1',
      'single_blocks.{i}.linear2',
    ],
  },
  // the shared modulations count with the embedders (block id IN); they and the final layer follow on
  // inspect's next line, as for FLUX.1
  ...doubleSingleCoverage({ modulation: countAsEmbedder }, () => FLUX2_BLOCKS),
});
