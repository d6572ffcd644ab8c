import { z } from 'zod';
import { defineNode } from '../src/graph/node.ts';
import { mergeLoras as merge } from '../src/lora/merge.ts';
import { energyParam, rankParam, weightsCheck, weightsParam } from './params.ts';
import { densityParam, dropParam, methodParamProblems, seedParam } from './method-params.ts';
import { DENSE_METHODS, isDenseMethod } from '../src/lora/merge-methods.ts';
import { compactReport, summarizeLora } from './types.ts';

export const mergeLoras = defineNode({
  type: 'merge-loras',
  v: '1.1.0',
  title: 'Merge LoRAs',
  category: 'merge',
  description: 'Merges several LoRAs (any mix of formats) into one. concat: exact (ΔW = Σ wᵢ·ΔWᵢ, ranks add up). svd: the optimal lower-rank approximation of the same sum, computed from the stacked factors without building ΔW; the report gives the relative error per module and overall. linear, ties (trim to density, elect signs, disjoint mean), dare (drop with probability drop, rescale, seeded), dare-ties, magnitude-prune: computed module by module on the dense ΔW, written at rank/energy or, with output diff, exactly as full diffs (comfyui .diff keys).',
  inputs: { loras: { type: 'LORA', list: true, description: 'LoRAs to merge, in order (weights follow this order).' } },
  outputs: { lora: { type: 'LORA' }, report: { type: 'REPORT' } },
  params: z.object({
    method: z.enum(['concat', 'svd', ...DENSE_METHODS]).default('concat').describe('concat: exact; svd: optimal rank-limited; linear, ties, dare, dare-ties, magnitude-prune: dense per module (need rank/energy, or output diff).'),
    weights: weightsParam,
    rank: rankParam,
    energy: energyParam,
    refactor: z.boolean().default(false).describe('Turn LoHa / LoKr / full-diff modules into LoRA modules (randomized SVD at rank/energy) instead of refusing them.'),
    density: densityParam,
    drop: dropParam,
    seed: seedParam,
    output: z.enum(['lora', 'diff']).default('lora').describe('Dense methods: lora (at rank/energy) or diff (the exact merged ΔW as full diffs; write comfyui).'),
  }),
  check(p, links) {
    const problems = [...weightsCheck(p.weights, links.loras, 'LoRAs')];
    if (links.loras < 1) problems.push({ input: 'loras', message: 'link at least one LoRA' });
    if (p.method === 'svd' && p.rank === undefined && p.energy === undefined) problems.push({ param: 'rank', message: 'method svd needs a rank or an energy' });
    problems.push(...methodParamProblems(p.method, p));
    if (isDenseMethod(p.method) && p.output === 'lora' && p.rank === undefined && p.energy === undefined) problems.push({ param: 'rank', message: `method ${p.method} needs a rank or an energy, or output diff` });
    if (isDenseMethod(p.method) && p.output === 'diff' && (p.rank !== undefined || p.energy !== undefined)) problems.push({ param: p.rank !== undefined ? 'rank' : 'energy', message: 'output diff is exact: no rank or energy' });
    if (!isDenseMethod(p.method) && p.output === 'diff') problems.push({ param: 'output', message: `output diff is for the dense methods (${DENSE_METHODS.join(', ')}); ${p.method} writes a LoRA` });
    return problems;
  },
  async run(ctx, { loras }, p) {
    const { set, report } = await merge(
      loras.map((lora, i) => ({ set: lora, weight: p.weights?.[i] ?? 1 })),
      {
        method: p.method, rank: p.rank, energy: p.energy, refactor: p.refactor, ctx: ctx.op,
        ...(isDenseMethod(p.method) ? { density: p.density, drop: p.drop, seed: p.seed, output: p.output } : {}),
      },
    );
    const error = report.params?.output === 'diff' ? 'exact (full diffs)' : `relative error ${report.relError.toExponential(2)}`;
    ctx.log(`${report.method} merge of ${loras.length} LoRA(s): ${report.modules.length} module(s), ${error} (backend ${report.backend})`);
    return { lora: set, report: { ...report } };
  },
  summarize: (o) => ({ lora: summarizeLora(o.lora), report: compactReport(o.report) }),
});
