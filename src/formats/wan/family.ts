/**
 * Wan 2.1 / 2.2 (1.3B, 5B, 14B; T2V, I2V) as a family object: original (ComfyUI) names canonical,
 * diffusers names 1:1 from the module table, block ids IN, B00–B39, OUT. Its text encoder (umT5)
 * is not trained by any trainer in circulation, so the layouts name the transformer only.
 */
import type { Family } from '../family.ts';
import { indexedBlockScheme, numberedBlockOf } from '../block-scheme.ts';
import { blockCoverage, transformerNaming } from '../table/denoiser.ts';
import { tableFamily } from '../table/table-family.ts';
import { WAN_CHECKPOINT_SIGNALS, WAN_METADATA, WAN_RULES, WAN_SIGNALS } from './detection.ts';
import { wanExpert } from './experts.ts';
import { WAN_TABLE } from './modules.ts';

const BLOCK = /^blocks\.(\d+)\./;
const IN = /^(?:patch_embedding|text_embedding|time_embedding|time_projection|img_emb)\./;


export const WAN: Family = tableFamily({
  id: 'wan',
  label: 'Wan 2.x',
  detection: { signals: WAN_SIGNALS, metadata: WAN_METADATA, rules: WAN_RULES },
  checkpoint: { signals: WAN_CHECKPOINT_SIGNALS, extraction: /^blocks\.\d+\.(?:self_attn|cross_attn|ffn)\./ },
  table: WAN_TABLE,
  // musubi-tuner's names (one architecture id for Wan 2.1 and 2.2)
  naming: transformerNaming('Wan', { modelspec: 'wan2.1/lora', networkModule: 'networks.lora_wan', baseModel: 'wan' }),
  blocks: indexedBlockScheme({
    label: 'Wan',
    head: ['IN'],
    tail: ['OUT'],
    prefix: 'B',
    sizes: [30, 40],
    blockOf: numberedBlockOf({ block: BLOCK, count: 40, head: IN, tail: /^head\./ }),
  }),
  variantOf: wanExpert,
  // ai-toolkit's combined Wan 2.2 A14B files (split_multistage_loras off): transformer_1 runs the high-noise steps
  memberInfixes: { 'high-noise': 'transformer_1', 'low-noise': 'transformer_2' },
  // Wan2.1-T2V-1.3B with widths ÷64 (the FLUX samples' factor), I2V's image cross-attention included
  samples: {
    widths: { h: 24, f: 140, ctx: 64, fq: 4, c: 20, oc: 64 },
    blocks: 30,
    targets: ['q', 'k', 'v', 'o'].flatMap((x) => [`blocks.{i}.self_attn.${x}`, `blocks.{i}.cross_attn.${x}`]).concat(['blocks.{i}.cross_attn.k_img', 'blocks.{i}.cross_attn.v_img', 'blocks.{i}.ffn.0', 'blocks.{i}.ffn.2']),
  },
  ...blockCoverage(() => WAN.blocks!),
});
