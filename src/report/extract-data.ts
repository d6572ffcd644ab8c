/**
 * An extraction's energy kept against rank, per module: the curve of each extracted LoRA module up
 * to the rank it was written at, scaled by the error the extraction reports (spectrum.ts).
 */
import type { AdapterSet, Component } from '../adapter/model.ts';
import { familyOf } from '../formats/families.ts';
import type { ExtractReport } from '../lora/extract.ts';
import { truncatedCurve, type EnergyCurve } from '../lora/spectrum.ts';

export interface ExtractModuleStat {
  module: string;
  block: string | null;
  rank: number;
  relError: number;
  curve?: EnergyCurve;
}

export interface ExtractData {
  architecture: string;
  relError: number;
  modules: ExtractModuleStat[];
  /** Energy kept at rank k over every module (up to the smallest kept rank). */
  aggregate: number[];
  rank: number | null;
  notes: string[];
}

export async function extractData(report: ExtractReport, output: AdapterSet): Promise<ExtractData> {
  const scheme = familyOf(report.architecture)?.blocks;
  const bySource = new Map(output.patches.map((p) => [p.source.module, p]));
  const modules: ExtractModuleStat[] = [];
  for (const m of report.modules) {
    const patch = bySource.get(m.key);
    const block = patch ? scheme?.blockOf(patch) : scheme?.blockOf({ component: 'transformer' as Component, target: m.key });
    const curve = patch && patch.adapter.kind === 'lora' ? await truncatedCurve(patch, m.relError) : undefined;
    modules.push({ module: m.key, block: block ?? null, rank: m.rank, relError: m.relError, ...(curve ? { curve } : {}) });
  }
  const curves = modules.flatMap((m) => (m.curve ? [m.curve] : []));
  const stop = curves.length ? Math.min(...curves.map((c) => c.energy.length)) : 0;
  const total = curves.reduce((s, c) => s + c.total, 0);
  const aggregate = Array.from({ length: stop }, (_, k) => (total > 0 ? curves.reduce((s, c) => s + c.total * c.energy[k]!, 0) / total : 1));
  const counts = new Map<number, number>();
  for (const m of modules) counts.set(m.rank, (counts.get(m.rank) ?? 0) + 1);
  const rank = modules.length ? [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0] : null;
  const notes = curves.some((c) => !c.complete) ? ['each curve stops at the rank the module was extracted at (its energy past that is not computed)'] : [];
  return { architecture: report.architecture, relError: report.relError, modules, aggregate, rank, notes };
}
