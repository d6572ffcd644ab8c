/**
 * FLUX.1 (dev, schnell, Flex, Chroma) as a family object: BFL names canonical, diffusers names
 * split from them by the module table, 61 block ids.
 */
import type { Coverage, Family } from '../family.ts';
import { placeKnown, tableDenoiser } from '../table/denoiser.ts';
import { FLUX_BLOCKS } from './blocks.ts';
import { FLUX_CHECKPOINT_SIGNALS, FLUX_METADATA, FLUX_RULES, FLUX_SIGNALS } from './detection.ts';
import { FLUX_TABLE } from './modules.ts';
import { FLUX_NAMING } from './naming.ts';

/** Where each table group is counted in inspect's coverage. */
const COVERAGE: Record<string, (c: Coverage, block: number | undefined, module: string) => void> = {
  double: (c, block) => add(c.doubleBlocks, block!),
  single: (c, block) => add(c.singleBlocks, block!),
  embedder: (c, _, module) => add(c.embedders, module),
  final: (c, _, module) => add(c.finalLayer, module),
};

function add<T>(list: T[], v: T): void {
  if (!list.includes(v)) list.push(v);
}

export const FLUX: Family = {
  id: 'flux',
  label: 'FLUX.1',
  denoiser: 'transformer',
  detection: { signals: FLUX_SIGNALS, metadata: FLUX_METADATA, rules: FLUX_RULES },
  checkpoint: {
    signals: FLUX_CHECKPOINT_SIGNALS,
    extractionSignal: { component: 'transformer', pattern: /^(double_blocks|single_blocks)\.\d+\./ },
  },
  table: FLUX_TABLE,
  resolveDenoiser: tableDenoiser(FLUX_TABLE),
  // FLUX names only: a module neither the table nor a text encoder knows has no place
  place: placeKnown,
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
  coverage: (spec, c) => {
    const e = spec.entry;
    const at = e && COVERAGE[e.group];
    if (!e || !at) return false;
    at(c, e.block, e.module.original);
    return true;
  },
  coverageLines: (c, span) => [`coverage:     double blocks ${span(c.doubleBlocks)}; single blocks ${span(c.singleBlocks)}`],
};
