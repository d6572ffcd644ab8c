import { z } from 'zod';
import { defineNode } from '../src/graph/node.ts';
import { applyBlockWeights, checkBlockWeightSpec } from '../src/lora/blocks.ts';
import { blockSchemes } from '../src/formats/families.ts';
import { compactReport, summarizeLora } from './types.ts';

export const blockWeights = defineNode({
  type: 'block-weights',
  v: '1.0.0',
  title: 'Block weights',
  category: 'lora',
  description: `Weights a LoRA block by block with the block ids of its model family (the LoRA Block Weight extension's): ${blockSchemes().map((s) => s.describe).join('; ')}. A full vector, or ID=value pairs with ranges (e.g. "D00-D18=0.5,S00-S37=1", "IN04-IN08=0,MID=0.5"). Blocks not named keep weight 1; weight 0 removes the block.`,
  inputs: { lora: { type: 'LORA' } },
  outputs: { lora: { type: 'LORA' }, report: { type: 'REPORT' } },
  params: z.object({
    weights: z
      .union([z.string().min(1), z.array(z.number().finite())])
      .describe('A weight vector of the family\'s length (list or comma-separated), or ID=value pairs, e.g. "D00-D18=0.5,OUT=0".'),
  }),
  check(p) {
    const problem = checkBlockWeightSpec(p.weights);
    return problem ? [{ param: 'weights', message: problem }] : [];
  },
  async run(ctx, { lora }, p) {
    const { set, report } = applyBlockWeights(lora, p.weights);
    for (const note of report.notes) ctx.log(note);
    if (report.unassigned.length > 0) ctx.log(`${report.unassigned.length} module(s) belong to no block and keep weight 1`);
    return { lora: set, report: { ...report } };
  },
  summarize: (o) => ({ lora: summarizeLora(o.lora), report: compactReport(o.report) }),
});
