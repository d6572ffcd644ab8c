/**
 * FLUX.2 (dev; klein 4B / 9B) as a family object (docs/model-families.md §3): BFL names canonical,
 * diffusers names split from them by the module table, block ids IN, D00–D07, S00–S47, OUT.
 * Registered before FLUX.1: FLUX.1's metadata hints, checkpoint and extraction signals also match
 * FLUX.2 files, so FLUX.2's, which FLUX.1 files never match, are tried first.
 */
import type { Coverage, Family } from '../family.ts';
import { placeKnown, tableDenoiser } from '../table/denoiser.ts';
import { FLUX2_BLOCKS } from './blocks.ts';
import { FLUX2_CHECKPOINT_SIGNALS, FLUX2_METADATA, FLUX2_RULES, FLUX2_SIGNALS } from './detection.ts';
import { FLUX2_TABLE } from './modules.ts';
import { FLUX2_NAMING } from './naming.ts';

const add = <T>(list: T[], v: T) => {
  if (!list.includes(v)) list.push(v);
};

/** Where each table group is counted in inspect's coverage (the shared modulations with the embedders, as block id IN). */
const COVERAGE: Record<string, (c: Coverage, block: number | undefined, module: string) => void> = {
  double: (c, block) => add(c.doubleBlocks, block!),
  single: (c, block) => add(c.singleBlocks, block!),
  modulation: (c, _, module) => add(c.embedders, module),
  embedder: (c, _, module) => add(c.embedders, module),
  final: (c, _, module) => add(c.finalLayer, module),
};

export const FLUX2: Family = {
  id: 'flux2',
  label: 'FLUX.2',
  denoiser: 'transformer',
  detection: { signals: FLUX2_SIGNALS, metadata: FLUX2_METADATA, rules: FLUX2_RULES },
  checkpoint: {
    signals: FLUX2_CHECKPOINT_SIGNALS,
    extractionSignal: { component: 'transformer', pattern: /^(?:double_stream_modulation_img|double_stream_modulation_txt|single_stream_modulation)\./ },
  },
  table: FLUX2_TABLE,
  resolveDenoiser: tableDenoiser(FLUX2_TABLE),
  place: placeKnown,
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
  coverage: (spec, c) => {
    if (spec.component !== 'transformer') return false;
    const e = spec.entry;
    const at = e && COVERAGE[e.group];
    if (!e || !at) return false;
    at(c, e.block, e.module.original);
    const id = FLUX2_BLOCKS.blockOf(spec);
    if (id && !(c.blocks ??= []).includes(id)) c.blocks.push(id);
    return true;
  },
  // the embedders / shared modulations and the final layer follow on inspect's next line, as for FLUX.1
  coverageLines: (c, span) => [`coverage:     double blocks ${span(c.doubleBlocks)}; single blocks ${span(c.singleBlocks)}`],
};
