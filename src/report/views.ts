/**
 * From what an operation read or reported to its pictures: the one place the CLI (`inspect --plot`,
 * `merge --report`), the plot node and the server's report route get their views from.
 */
import type { AdapterSet } from '../adapter/model.ts';
import type { ApplyReport } from '../lora/apply.ts';
import { openBaseNorms } from '../lora/base-norms.ts';
import { analyzeStrength } from '../lora/block-strength.ts';
import type { ExtractReport } from '../lora/extract.ts';
import { applyData, applySvg } from './apply-plot.ts';
import { extractData } from './extract-data.ts';
import { mergeData, type MergeDataInput } from './merge-data.ts';
import { mergeContributionsSvg, mergeEnergySvg, mergeErrorSvg } from './merge-plot.ts';
import { strengthSvg } from './strength-plot.ts';
import type { View } from './view.ts';

export interface StrengthViewOptions {
  /** A base checkpoint: strength relative to its weights' norms. */
  base?: string;
  weights?: readonly number[];
}

/** Strength by block of one or more LoRAs (side by side, with their cosine similarity per block). */
export async function strengthView(sets: readonly AdapterSet[], labels: readonly string[], opts: StrengthViewOptions = {}): Promise<View> {
  const norms = opts.base ? await openBaseNorms(opts.base, sets) : undefined;
  try {
    const analysis = await analyzeStrength(sets, { weights: opts.weights, baseNorm2: norms?.norm2 });
    const title = sets.length > 1 ? `Strength by block of ${sets.length} LoRAs, and their cosine similarity` : `Strength by block of ${labels[0] ?? 'the LoRA'}`;
    return { kind: 'strength', title, svg: strengthSvg(analysis, { labels }), data: { labels, ...analysis } };
  } finally {
    await norms?.close();
  }
}

/** A merge's relative error per module, energy kept against rank, and what each input contributed. */
export async function mergeViews(input: MergeDataInput): Promise<View[]> {
  const d = await mergeData(input);
  const { strength, ...rest } = d;
  return [
    { kind: 'merge-error', title: `Relative error per module (${d.method} merge)`, svg: mergeErrorSvg(d), data: { method: d.method, relError: d.relError, modules: d.modules.map(({ curve: _c, ...m }) => m) } },
    { kind: 'merge-energy', title: `Energy kept against rank (${d.method} merge)`, svg: mergeEnergySvg(d), data: { method: d.method, rank: d.rank, aggregate: d.aggregate, modules: rest.modules.map((m) => ({ module: m.module, rank: m.rank, energy: m.curve?.energy, complete: m.curve?.complete })) } },
    { kind: 'merge-contributions', title: 'What each input contributed', svg: mergeContributionsSvg(d), data: { contributions: d.contributions, labels: d.contributions.map((c) => c.label), ...strength } },
  ];
}

/** Per block, how much an apply changed the base (‖ΔW‖ / ‖W‖). */
export function applyView(report: Pick<ApplyReport, 'files'>, architecture: string): View {
  const d = applyData(report, architecture);
  return { kind: 'apply-change', title: 'What the apply changed, by block', svg: applySvg(d), data: d };
}

/** Energy kept against rank per extracted module. */
export async function extractView(report: ExtractReport, output: AdapterSet): Promise<View> {
  const d = await extractData(report, output);
  const svg = mergeEnergySvg(d, `Extraction: energy kept against rank — ${d.modules.length} modules, overall error ${d.relError.toExponential(2)}`, 'extract-energy');
  return { kind: 'extract-energy', title: 'Extraction: energy kept against rank', svg, data: { ...d, modules: d.modules.map((m) => ({ module: m.module, block: m.block, rank: m.rank, relError: m.relError, energy: m.curve?.energy })) } };
}
