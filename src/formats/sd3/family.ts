/**
 * SD3 / SD3.5 (SD3-medium, SD3.5-medium with its dual-attention blocks, SD3.5-large / large-turbo)
 * as a family object (docs/model-families.md §5): original (SAI / ComfyUI / sd-scripts) names
 * canonical, diffusers names split from them by the module table, CLIP-L, CLIP-G and T5-XXL text
 * encoders under their Hugging Face names, block ids IN, B00–B37, OUT.
 */
import type { Family } from '../family.ts';
import { blockCoverage } from '../table/denoiser.ts';
import { tableFamily } from '../table/table-family.ts';
import { SD3_BLOCKS } from './blocks.ts';
import { SD3_CHECKPOINT_SIGNALS, SD3_METADATA, SD3_RULES, SD3_SIGNALS } from './detection.ts';
import { SD3_TABLE } from './modules.ts';
import { SD3_NAMING } from './naming.ts';

const J = 'joint_blocks.{i}';

export const SD3: Family = tableFamily({
  id: 'sd3',
  label: 'SD3.5',
  detection: { signals: SD3_SIGNALS, metadata: SD3_METADATA, rules: SD3_RULES },
  checkpoint: { signals: SD3_CHECKPOINT_SIGNALS, extraction: /^joint_blocks\.\d+\./ },
  table: SD3_TABLE,
  // sd-scripts' split_qkv saves each fused qkv at 3× the rank of its block's proj, alpha unchanged
  splitQkv: {
    [`${J}.x_block.attn.qkv`]: { n: 3, sibling: `${J}.x_block.attn.proj` },
    [`${J}.x_block.attn2.qkv`]: { n: 3, sibling: `${J}.x_block.attn2.proj` },
    [`${J}.context_block.attn.qkv`]: { n: 3, sibling: `${J}.context_block.attn.proj` },
  },
  naming: SD3_NAMING,
  blocks: SD3_BLOCKS,
  // SD3.5-medium with widths ÷64: 24 joint blocks, dual attention in 0–12, the last context-pre-only;
  // the modules sd-scripts trains by default (every Linear of each x_block / context_block)
  samples: {
    widths: { h: 24, f: 96, hd: 6, c: 4, p: 2, ctx: 64, y: 32, fq: 8, oc: 16 },
    blocks: { joint: 24, dual: 13, context_post: 23 },
    targets: [
      ...['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2', 'adaLN_modulation.1', 'attn2.qkv', 'attn2.proj'].map((m) => `${J}.x_block.${m}`),
      ...['attn.qkv', 'adaLN_modulation.1', 'attn.proj', 'mlp.fc1', 'mlp.fc2'].map((m) => `${J}.context_block.${m}`),
    ],
  },
  ...blockCoverage(() => SD3.blocks!),
});
