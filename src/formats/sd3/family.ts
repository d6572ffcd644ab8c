/**
 * SD3 / SD3.5 (MMDiT joint blocks): recognised from LoRA and checkpoint keys so it is named, not
 * misread as FLUX. It has no module table yet, so its LoRAs keep the file's module names and
 * writers and FLUX-shaped operations refuse it.
 */
import type { Family } from '../family.ts';

const SPLIT_BLOCKS = /(?:^|[._])transformer_blocks[._](\d+)[._]/;

export const SD3: Family = {
  id: 'sd3',
  label: 'SD3',
  denoiser: 'transformer',
  detection: {
    signals: [
      { re: /(?:^|[._])joint_blocks[._]\d+[._](?:x_block|context_block)[._]/, what: 'SD3 MMDiT joint blocks' },
      // not a UNet attention's transformer_blocks (`attentions.0.transformer_blocks.0.attn2`, `input_blocks_4_1_transformer_blocks_…`)
      { re: /(?:^|[._])(?<!\d[._])transformer_blocks[._]\d+[._]attn2[._]/, what: 'SD3.5 dual attention (attn2) in transformer blocks' },
    ],
    metadata: [
      { key: 'ss_base_model_version', re: /^sd_?3/i },
      { key: 'modelspec.architecture', re: /^stable-diffusion-3/i },
    ],
    rules: [
      { order: 20, decide: (c) => (c.top === 'sd3' ? c.finish('sd3', 0.95) : undefined) },
      {
        // split-attention names without single blocks: 19 or more blocks is SD3's depth, not FLUX's
        order: 40,
        decide: (c) => {
          const blocks = c.tensors.map((t) => SPLIT_BLOCKS.exec(t.name)).filter((m) => m !== null).map((m) => Number(m[1]));
          if (blocks.length === 0) return undefined;
          const max = Math.max(...blocks);
          if (c.metadataFamily?.family !== 'sd3' && max < 19) return undefined;
          c.evidence.push(`transformer_blocks up to index ${max} without single blocks`);
          return c.finish('sd3', 0.7);
        },
      },
    ],
  },
  checkpoint: {
    signals: [{ re: /(?:^|\.)joint_blocks\.\d+\.(?:x_block|context_block)\./, what: 'SD3 MMDiT joint blocks' }],
    extractionSignal: { component: 'transformer', pattern: /^joint_blocks\.\d+\./ },
  },
};
