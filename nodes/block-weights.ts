import { z } from 'zod';
import { defineNode } from '../src/graph/node.ts';
import { parseBlockWeights } from '../src/lora/blocks.ts';
import { applyBlockWeights } from '../src/lora/blocks.ts';
import { compactReport, plainSet, summarizeLora } from './types.ts';

export const blockWeights = defineNode({
  type: 'block-weights',
  v: '1.0.0',
  title: 'Block weights',
  category: 'lora',
  description: 'Weights a FLUX LoRA block by block (the 61 ids of the LoRA Block Weight extension: CLIP, T5, IN, D00–D18, S00–S37, OUT): 61 numbers, or ID=value pairs with ranges (e.g. "D00-D18=0.5,S00-S37=1"). Blocks not named keep weight 1; weight 0 removes the block.',
  inputs: { lora: { type: 'LORA<flux>' } },
  outputs: { lora: { type: 'LORA<flux>' }, report: { type: 'REPORT' } },
  params: z.object({
    weights: z
      .union([z.string().min(1), z.array(z.number().finite())])
      .describe('61 weights (list, or comma-separated), or ID=value pairs, e.g. "D00-D18=0.5,OUT=0".'),
  }),
  check(p) {
    try {
      parseBlockWeights(p.weights);
      return [];
    } catch (e) {
      return [{ param: 'weights', message: (e as Error).message }];
    }
  },
  async run(ctx, { lora }, p) {
    const { set, report } = applyBlockWeights(lora, p.weights);
    for (const note of report.notes) ctx.log(note);
    if (report.unassigned.length > 0) ctx.log(`${report.unassigned.length} module(s) belong to no block and keep weight 1`);
    return { lora: plainSet(set), report: { ...report } };
  },
  summarize: (o) => ({ lora: summarizeLora(o.lora), report: compactReport(o.report) }),
});
