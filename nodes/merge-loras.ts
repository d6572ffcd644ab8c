import { z } from 'zod';
import { defineNode } from '../src/graph/node.ts';
import { mergeLoras as merge } from '../src/lora/merge.ts';
import { energyParam, rankParam, weightsCheck, weightsParam } from './params.ts';
import { compactReport, plainSet, summarizeLora } from './types.ts';

export const mergeLoras = defineNode({
  type: 'merge-loras',
  v: '1.0.0',
  title: 'Merge LoRAs',
  category: 'merge',
  description: 'Merges several LoRAs (any mix of formats) into one. concat: exact (ΔW = Σ wᵢ·ΔWᵢ, ranks add up). svd: the optimal lower-rank approximation of the same sum, computed from the stacked factors without building ΔW; the report gives the relative error per module and overall.',
  inputs: { loras: { type: 'LORA', list: true, description: 'LoRAs to merge, in order (weights follow this order).' } },
  outputs: { lora: { type: 'LORA' }, report: { type: 'REPORT' } },
  params: z.object({
    method: z.enum(['concat', 'svd']).default('concat').describe('concat: exact; svd: optimal rank-limited.'),
    weights: weightsParam,
    rank: rankParam,
    energy: energyParam,
    refactor: z.boolean().default(false).describe('Turn LoHa / LoKr / full-diff modules into LoRA modules (randomized SVD at rank/energy) instead of refusing them.'),
  }),
  check(p, links) {
    const problems = [...weightsCheck(p.weights, links.loras, 'LoRAs')];
    if (links.loras < 1) problems.push({ input: 'loras', message: 'link at least one LoRA' });
    if (p.method === 'svd' && p.rank === undefined && p.energy === undefined) problems.push({ param: 'rank', message: 'method svd needs a rank or an energy' });
    return problems;
  },
  async run(ctx, { loras }, p) {
    const { set, report } = await merge(
      loras.map((lora, i) => ({ set: lora, weight: p.weights?.[i] ?? 1 })),
      { method: p.method, rank: p.rank, energy: p.energy, refactor: p.refactor, ctx: ctx.op },
    );
    ctx.log(`${report.method} merge of ${loras.length} LoRA(s): ${report.modules.length} module(s), relative error ${report.relError.toExponential(2)} (backend ${report.backend})`);
    return { lora: plainSet(set), report: { ...report } };
  },
  summarize: (o) => ({ lora: summarizeLora(o.lora), report: compactReport(o.report) }),
});
