import { z } from 'zod';
import { defineNode } from '../src/graph/node.ts';
import { resizeLora as resize } from '../src/lora/resize.ts';
import { energyParam, rankParam } from './params.ts';
import { compactReport, summarizeLora } from './types.ts';

export const resizeLora = defineNode({
  type: 'resize-lora',
  v: '1.0.0',
  title: 'Resize LoRA',
  category: 'lora',
  description: 'Lowers the rank of every LoRA module to the optimal rank-k approximation of its own ΔW (exact low-rank SVD, no dense product), k fixed or chosen by retained energy. Strength is preserved. Modules already at or below the rank are kept bit-identical.',
  inputs: { lora: { type: 'LORA' } },
  outputs: { lora: { type: 'LORA' }, report: { type: 'REPORT' } },
  params: z.object({ rank: rankParam, energy: energyParam }),
  check(p) {
    return p.rank === undefined && p.energy === undefined ? [{ param: 'rank', message: 'give a rank or an energy' }] : [];
  },
  async run(ctx, { lora }, p) {
    const { set, report } = await resize(lora, { rank: p.rank, energy: p.energy, ctx: ctx.op });
    ctx.log(`resized ${report.modules.length} module(s), relative error ${report.relError.toExponential(2)}`);
    return { lora: set, report: { ...report } };
  },
  summarize: (o) => ({ lora: summarizeLora(o.lora), report: compactReport(o.report) }),
});
