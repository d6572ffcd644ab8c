import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { z } from 'zod';
import { inputError } from '../src/errors.ts';
import { defineNode, pathParam } from '../src/graph/node.ts';
import { reportHtml } from '../src/report/html.ts';
import { reportKind } from '../src/report/report-kind.ts';
import { stackSvg } from '../src/report/svg.ts';
import type { View } from '../src/report/view.ts';
import { applyView, extractView, mergeViews, strengthView } from '../src/report/views.ts';
import { weightsCheck, weightsParam } from './params.ts';
import { loadedFrom, type LoraValue } from './types.ts';

const labelOf = (lora: LoraValue, i: number) => {
  const path = loadedFrom(lora);
  return path ? basename(path) : `LoRA ${i + 1} (${lora.format})`;
};

export const plot = defineNode({
  type: 'plot',
  v: '1.0.0',
  title: 'Plot',
  category: 'inspect',
  description: 'Pictures instead of JSON. Linked LoRAs: their strength (‖ΔW‖_F) by block of their family\'s grid, relative to a linked base checkpoint, side by side with their cosine similarity per block (where two LoRAs fight). A merge-loras report (with the merge\'s inputs linked to loras, and its lora to result): relative error per module, energy kept against rank, what each input contributed. A merge-into-base report: ‖ΔW‖/‖W‖ by block. An extract-lora report (with its lora as result): energy kept against rank per module. Optionally writes them to an .svg or a self-contained .html file.',
  output: true,
  inputs: {
    loras: { type: 'LORA', list: true, optional: true, description: 'LoRAs to plot, or the inputs of the merge whose report is linked (in the merge\'s order).' },
    base: { type: 'MODEL', optional: true, description: 'Base checkpoint: strength relative to its weights\' norms.' },
    report: { type: 'REPORT', optional: true, description: 'The report of a merge-loras, merge-into-base or extract-lora node.' },
    result: { type: 'LORA', optional: true, description: 'The LoRA that operation produced (merge-loras.lora, extract-lora.lora).' },
  },
  outputs: { views: { type: 'REPORT' } },
  params: z.object({
    path: pathParam('output', 'write', 'Also write the pictures here: .svg (one under the other) or .html (a self-contained report).').optional(),
    weights: weightsParam,
    inline: z.boolean().default(true).describe('Put the pictures (SVG) in the run\'s result, where the editor shows them; off: only the file is written and the result just names it (the command line\'s choice).'),
  }),
  check(p, links) {
    const problems = [...weightsCheck(p.weights, links.loras, 'LoRAs')];
    if (links.loras === 0 && links.report === 0) problems.push({ input: 'loras', message: 'link LoRAs to plot, or a report (merge-loras, merge-into-base, extract-lora)' });
    if (p.path !== undefined && !/\.(svg|html?)$/i.test(p.path)) problems.push({ param: 'path', message: `write the pictures to an .svg or .html file, not "${p.path}"` });
    return problems;
  },
  async run(ctx, { loras, base, report, result }, p) {
    const labels = loras.map(labelOf);
    const weights = loras.map((_, i) => p.weights?.[i] ?? 1);
    const views: View[] = [];
    const known = report ? reportKind(report) : undefined;
    if (report && !known) throw inputError('PLOT', `plot: the linked report is not one plot knows (a merge-loras, merge-into-base or extract-lora report); its fields: ${Object.keys(report).slice(0, 8).join(', ')}`);
    if (known?.kind === 'merge') {
      if (loras.length === 0) throw inputError('PLOT', 'plot: a merge report needs the merge\'s inputs linked to loras (in the same order)');
      views.push(...(await mergeViews({ report: known.report, inputs: loras.map((set, i) => ({ set, weight: weights[i]!, label: labels[i]! })), output: result })));
    } else if (known?.kind === 'apply') {
      views.push(applyView(known.report, loras[0]?.architecture ?? base?.architecture ?? 'unknown'));
    } else if (known?.kind === 'extract') {
      if (!result) throw inputError('PLOT', 'plot: an extract report needs the extracted LoRA linked to result');
      views.push(await extractView(known.report, result));
    }
    if (!known && loras.length) views.push(await strengthView(loras, labels, { base: base?.path, weights }));
    ctx.log(`${views.length} picture${views.length === 1 ? '' : 's'}: ${views.map((v) => v.kind).join(', ')}`);
    if (p.path) {
      const out = await ctx.outputPath(p.path);
      const title = known ? `loraflow ${known.kind} report` : `loraflow: ${labels.join(', ')}`;
      await writeFile(out, /\.svg$/i.test(p.path) ? stackSvg(views.map((v) => v.svg)) : reportHtml(views, { title, lines: labels.map((l, i) => `input ${i + 1}: ${l}${weights[i] !== 1 ? ` × ${weights[i]}` : ''}`) }));
    }
    return { views: { ...(p.path ? { path: p.path } : {}), views } };
  },
  // the pictures are the point: the editor shows them from this summary (their numbers are in the SVG's data- attributes)
  summarize: (o, p) => {
    const { path, views } = o.views as { path?: string; views: View[] };
    return { ...(path ? { path } : {}), views: views.map((v) => ({ kind: v.kind, title: v.title, ...(p.inline ? { svg: v.svg } : {}) })) };
  },
});
