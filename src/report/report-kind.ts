/**
 * Which operation a REPORT value came from, by its fields (reports carry no type tag): a merge-loras
 * report (method, modules, fused), a merge-into-base report (files with per-tensor changes) or an
 * extract-lora report (modules with keys, unchanged count).
 */
import type { ApplyReport } from '../lora/apply.ts';
import type { ExtractReport } from '../lora/extract.ts';
import type { MergeReport } from '../lora/merge.ts';

export type KnownReport = { kind: 'merge'; report: MergeReport } | { kind: 'apply'; report: ApplyReport } | { kind: 'extract'; report: ExtractReport };

const has = (r: Record<string, unknown>, ...keys: string[]) => keys.every((k) => k in r);

export function reportKind(report: Record<string, unknown>): KnownReport | undefined {
  if (has(report, 'method', 'modules', 'fused', 'refactored')) return { kind: 'merge', report: report as unknown as MergeReport };
  if (Array.isArray(report.files) && (report.files as Record<string, unknown>[]).every((f) => Array.isArray(f.changes))) return { kind: 'apply', report: report as unknown as ApplyReport };
  if (has(report, 'modules', 'unchanged', 'fullDiffs', 'architecture')) return { kind: 'extract', report: report as unknown as ExtractReport };
  return undefined;
}
