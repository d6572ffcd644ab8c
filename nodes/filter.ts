import { z } from 'zod';
import { defineNode, type NodeProblemSpec } from '../src/graph/node.ts';
import { filterPatches } from '../src/lora/filter.ts';
import { blockSchemes } from '../src/formats/families.ts';
import { compactReport, summarizeLora } from './types.ts';

const blockList = z.array(z.string().min(1)).optional();

export const filter = defineNode({
  type: 'filter',
  v: '1.0.0',
  title: 'Filter modules',
  category: 'lora',
  description: `Keeps or drops modules by the block ids of the LoRA's family (${blockSchemes().map((s) => s.describe).join('; ')}) or by a regular expression on the target weight name (e.g. "^double_blocks\\.(1[0-8])\\."). Every dropped module is listed in the report.`,
  inputs: { lora: { type: 'LORA' } },
  outputs: { lora: { type: 'LORA' }, report: { type: 'REPORT' } },
  params: z.object({
    keepBlocks: blockList.describe('Keep only modules in these blocks.'),
    dropBlocks: blockList.describe('Drop modules in these blocks.'),
    keep: z.string().min(1).optional().describe('Keep only modules whose target matches this regular expression.'),
    drop: z.string().min(1).optional().describe('Drop modules whose target matches this regular expression.'),
  }),
  check(p) {
    const problems: NodeProblemSpec[] = [];
    for (const name of ['keep', 'drop'] as const) {
      const v = p[name];
      if (v === undefined) continue;
      try {
        new RegExp(v);
      } catch (e) {
        problems.push({ param: name, message: `not a valid regular expression: ${(e as Error).message}` });
      }
    }
    if (!p.keepBlocks && !p.dropBlocks && p.keep === undefined && p.drop === undefined) problems.push({ message: 'give at least one of keepBlocks, dropBlocks, keep, drop' });
    return problems;
  },
  async run(ctx, { lora }, p) {
    const { set, report } = filterPatches(lora, { keepBlocks: p.keepBlocks, dropBlocks: p.dropBlocks, keep: p.keep, drop: p.drop });
    ctx.log(`kept ${report.kept} module(s), dropped ${report.dropped.length}`);
    return { lora: set, report: { ...report } };
  },
  summarize: (o) => ({ lora: summarizeLora(o.lora), report: compactReport(o.report) }),
});
