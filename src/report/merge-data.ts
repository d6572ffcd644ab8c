/**
 * What a merge did, module by module, from its report and its inputs (and output): the relative
 * error the merge reports, the energy-kept-against-rank curve of what was merged (spectrum.ts), and
 * which inputs each module came from, with the inputs' weighted strength per block and their
 * cosine similarity (block-strength.ts).
 */
import type { AdapterSet, Patch } from '../adapter/model.ts';
import { familyOf } from '../formats/families.ts';
import type { MergeReport } from '../lora/merge.ts';
import { analyzeStrength, type StrengthAnalysis } from '../lora/block-strength.ts';
import { stackedCurve, truncatedCurve, type EnergyCurve } from '../lora/spectrum.ts';

export interface MergeModuleStat {
  module: string;
  component: string;
  target: string;
  rows?: [number, number];
  block: string | null;
  /** Inputs (0-based) with a patch in this module. */
  inputs: number[];
  rank: number;
  relError: number;
  /** Written as a full diff (no rank). */
  diff: boolean;
  curve?: EnergyCurve;
}

export interface Contribution {
  input: number;
  label: string;
  weight: number;
  /** Merged modules this input has a patch in. */
  modules: string[];
  /** Of those, the ones no other input touches. */
  only: string[];
}

export interface MergeData {
  method: string;
  relError: number;
  architecture: string;
  modules: MergeModuleStat[];
  /** Energy kept at rank k over all modules with a curve (Σ kept / Σ ‖ΔW‖²), k = 1, 2, … */
  aggregate: number[];
  /** The rank most modules were merged at (null for diff outputs). */
  rank: number | null;
  contributions: Contribution[];
  strength: StrengthAnalysis;
  notes: string[];
}

export interface MergeDataInput {
  report: MergeReport;
  inputs: readonly { set: AdapterSet; weight: number; label: string }[];
  /** The merged LoRA (dense methods' curves come from its factors). */
  output?: AdapterSet;
}

/** `component:target` or `component:target[a:b]` (patchKey) → its parts. */
export function parseModuleKey(key: string): { component: string; target: string; rows?: [number, number] } {
  const m = /^([^:]+):(.*?)(?:\[(\d+):(\d+)\])?$/.exec(key);
  if (!m) return { component: 'transformer', target: key };
  const [, component, target, a, b] = m as unknown as [string, string, string, string?, string?];
  return a !== undefined && b !== undefined ? { component, target, rows: [Number(a), Number(b) - Number(a)] } : { component, target };
}

const within = (p: Patch, rows?: [number, number]) => {
  if (!rows) return true;
  const start = p.rows?.[0] ?? 0;
  return p.rows !== undefined && start >= rows[0] && start + p.rows[1] <= rows[0] + rows[1];
};

export async function mergeData({ report, inputs, output }: MergeDataInput): Promise<MergeData> {
  const architecture = inputs[0]?.set.architecture ?? 'unknown';
  const scheme = familyOf(architecture)?.blocks;
  const notes: string[] = [];
  const outputs = new Map((output?.patches ?? []).map((p) => [p.source.module, p]));
  const stacked = report.method === 'svd' || report.method === 'concat';
  const modules: MergeModuleStat[] = [];
  for (const m of report.modules) {
    const { component, target, rows } = parseModuleKey(m.module);
    const members = inputs.flatMap(({ set, weight }, input) =>
      weight === 0 ? [] : set.patches.filter((p) => p.component === component && p.target === target && within(p, rows)).map((patch) => ({ patch, weight, input })),
    );
    const block = scheme?.blockOf({ component: component as Patch['component'], target }) ?? null;
    let curve: EnergyCurve | undefined;
    if (!m.diff) {
      const plain = members.every((x) => x.patch.adapter.kind === 'lora' && !x.patch.dora);
      if (stacked && plain && members.length) curve = await stackedCurve(members);
      else if (outputs.has(m.module)) curve = await truncatedCurve(outputs.get(m.module)!, m.relError);
    }
    modules.push({
      module: m.module, component, target, ...(rows ? { rows } : {}), block: block !== undefined && block !== null && scheme?.ids.includes(block) ? block : null,
      inputs: [...new Set(members.map((x) => x.input))], rank: m.rank, relError: m.relError, diff: Boolean(m.diff), ...(curve ? { curve } : {}),
    });
  }
  const curves = modules.map((m) => m.curve).filter((c): c is EnergyCurve => c !== undefined);
  const aggregate: number[] = [];
  if (curves.length) {
    // past a truncated curve's end its energy is unknown: the total stops at the shortest such curve
    const stop = Math.min(...curves.map((c) => (c.complete ? Infinity : c.energy.length)));
    const longest = Math.max(...curves.map((c) => c.energy.length));
    const total = curves.reduce((s, c) => s + c.total, 0);
    for (let k = 1; k <= Math.min(stop, longest); k++) {
      const kept = curves.reduce((s, c) => s + c.total * (c.energy[Math.min(k, c.energy.length) - 1] ?? 0), 0);
      aggregate.push(total > 0 ? kept / total : 1);
    }
    if (stop < longest) notes.push(`the energy curves of a ${report.method} merge stop at the rank each module was written at (past it the merged ΔW's spectrum is not computed)`);
  }
  const ranks = modules.filter((m) => !m.diff).map((m) => m.rank);
  const counts = new Map<number, number>();
  for (const r of ranks) counts.set(r, (counts.get(r) ?? 0) + 1);
  const rank = ranks.length ? [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0] : null;
  const contributions: Contribution[] = inputs.map(({ label, weight }, input) => {
    const mine = modules.filter((m) => m.inputs.includes(input));
    return { input, label, weight, modules: mine.map((m) => m.module), only: mine.filter((m) => m.inputs.length === 1).map((m) => m.module) };
  });
  const strength = await analyzeStrength(inputs.map((i) => i.set), { weights: inputs.map((i) => i.weight) });
  return { method: report.method, relError: report.relError, architecture, modules, aggregate, rank, contributions, strength, notes: [...notes, ...report.notes] };
}
