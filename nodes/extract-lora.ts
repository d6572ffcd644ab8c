import { z } from 'zod';
import { inputError } from '../src/errors.ts';
import { defineNode } from '../src/graph/node.ts';
import { extractLora as extract } from '../src/lora/extract.ts';
import { energyParam, rankParam } from './params.ts';
import { compactReport, summarizeLora } from './types.ts';

export const extractLora = defineNode({
  type: 'extract-lora',
  v: '1.0.0',
  title: 'Extract LoRA',
  category: 'model',
  description: 'Extracts a LoRA from the difference between a fine-tuned checkpoint and its base, one tensor pair at a time (randomized SVD per changed matrix, rank fixed or by retained energy). Unchanged weights are skipped; every other difference is reported by name.',
  inputs: { base: { type: 'MODEL', description: 'The base checkpoint.' }, tuned: { type: 'MODEL', description: 'The fine-tuned checkpoint.' } },
  outputs: { lora: { type: 'LORA' }, report: { type: 'REPORT' } },
  params: z.object({
    rank: rankParam,
    energy: energyParam,
    maxRank: z.number().int().min(1).max(4096).optional().describe('Upper bound on the rank chosen by energy.'),
    keepBiases: z.boolean().default(true).describe('Keep changed biases and other 1-D tensors as full diffs (.diff_b: ComfyUI applies them, diffusers and sd-scripts drop them without a word); false leaves them out. The notes say which.'),
    minDiff: z.number().min(0).default(0).describe('A weight whose largest |difference| is at most this counts as unchanged.'),
  }),
  check(p) {
    return p.rank === undefined && p.energy === undefined ? [{ param: 'rank', message: 'give a rank or an energy' }] : [];
  },
  async run(ctx, { base, tuned }, p) {
    const { set, report } = await extract({ base: base.path, tuned: tuned.path, rank: p.rank, energy: p.energy, maxRank: p.maxRank, keepBiases: p.keepBiases, minDiff: p.minDiff, ctx: ctx.op });
    // an empty LoRA changes nothing: refused here, so nothing downstream writes one
    if (set.patches.length === 0) throw inputError('EXTRACT', `extract: ${set.notes[0] ?? 'no difference to extract'}; no LoRA was written`);
    ctx.log(`extracted ${report.modules.length} module(s), ${report.unchanged} unchanged tensor(s), relative error ${report.relError.toExponential(2)}`);
    return { lora: set, report: { ...report } };
  },
  summarize: (o) => ({ lora: summarizeLora(o.lora), report: compactReport(o.report) }),
});
