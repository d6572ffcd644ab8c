import { z } from 'zod';
import { defineNode } from '../src/graph/node.ts';
import { scaleSet } from '../src/lora/scale.ts';
import { summarizeLora } from './types.ts';

export const scale = defineNode({
  type: 'scale',
  v: '1.0.0',
  title: 'Scale LoRA',
  category: 'lora',
  description: 'Multiplies the whole LoRA by a weight (negative subtracts, 0 removes every module). Exact: the scale is folded into each module, tensors are untouched.',
  inputs: { lora: { type: 'LORA' } },
  outputs: { lora: { type: 'LORA' } },
  params: z.object({ weight: z.number().finite().default(1).describe('Strength multiplier.') }),
  async run(ctx, { lora }, p) {
    const { set, report } = scaleSet(lora, p.weight);
    for (const note of report.notes) ctx.log(note);
    return { lora: set };
  },
  summarize: (o) => summarizeLora(o.lora),
});
