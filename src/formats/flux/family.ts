/**
 * FLUX.1 (dev, schnell, Flex, Chroma) as a family object: BFL names canonical, diffusers names
 * split from them by the module table, 61 block ids.
 */
import type { Family } from '../family.ts';
import { doubleSingleCoverage } from '../table/denoiser.ts';
import { tableFamily } from '../table/table-family.ts';
import { FLUX_BLOCKS } from './blocks.ts';
import { FLUX_CHECKPOINT_SIGNALS, FLUX_METADATA, FLUX_RULES, FLUX_SIGNALS } from './detection.ts';
import { FLUX_TABLE } from './modules.ts';
import { FLUX_NAMING } from './naming.ts';

export const FLUX: Family = tableFamily({
  id: 'flux',
  label: 'FLUX.1',
  detection: { signals: FLUX_SIGNALS, metadata: FLUX_METADATA, rules: FLUX_RULES },
  checkpoint: { signals: FLUX_CHECKPOINT_SIGNALS, extraction: /^(double_blocks|single_blocks)\.\d+\./ },
  table: FLUX_TABLE,
  controlReshape: 'img_in',
  splitQkv: {
    'double_blocks.{i}.img_attn.qkv': { n: 3, sibling: 'double_blocks.{i}.img_attn.proj' },
    'double_blocks.{i}.txt_attn.qkv': { n: 3, sibling: 'double_blocks.{i}.txt_attn.proj' },
    'single_blocks.{i}.linear1': { n: 4, sibling: 'single_blocks.{i}.linear2' },
  },
  naming: FLUX_NAMING,
  blocks: FLUX_BLOCKS,
  // imported when asked for: the sample writers import the formats layer this object is part of
  writeSamples: async (dir) => (await import('./samples.ts')).writeFluxSamples(dir),
  ...doubleSingleCoverage(),
});
