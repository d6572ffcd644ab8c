/**
 * What an apply changed: per block of the family's grid, ‖ΔW‖ / ‖W‖ over the base tensors of the
 * block (from the per-tensor norms the apply collects while streaming, src/lora/change-norms.ts).
 */
import type { ApplyReport } from '../lora/apply.ts';
import type { Component } from '../adapter/model.ts';
import { familyOf } from '../formats/families.ts';
import { blockGrid } from './block-grid.ts';
import { HATCH_DEFS, gridWidth, heatGrid, type HeatCell } from './heat-grid.ts';
import { fmt, legend, num, pct, sequential, svgDoc, text } from './svg.ts';

export interface ApplyBlock {
  id: string;
  changeNorm: number;
  baseNorm: number;
  relative: number;
  tensors: string[];
}

export interface ApplyData {
  architecture: string;
  ids: string[];
  blocks: ApplyBlock[];
  /** Patched tensors in no block of the scheme. */
  unassigned: string[];
  total: { changeNorm: number; baseNorm: number; relative: number };
}

/** Per block totals of an apply report's per-tensor norms. */
export function applyData(report: Pick<ApplyReport, 'files'>, architecture: string): ApplyData {
  const scheme = familyOf(architecture)?.blocks;
  const ids = [...(scheme?.ids ?? [])];
  const acc = new Map(ids.map((id) => [id, { c2: 0, b2: 0, tensors: [] as string[] }]));
  const unassigned: string[] = [];
  let c2 = 0;
  let b2 = 0;
  for (const file of report.files)
    for (const t of file.changes ?? []) {
      c2 += t.changeNorm ** 2;
      b2 += t.baseNorm ** 2;
      const id = scheme?.blockOf({ component: t.component as Component, target: t.target });
      const a = id !== undefined ? acc.get(id) : undefined;
      if (!a) {
        unassigned.push(t.tensor);
        continue;
      }
      a.c2 += t.changeNorm ** 2;
      a.b2 += t.baseNorm ** 2;
      a.tensors.push(t.tensor);
    }
  const rel = (c: number, b: number) => (b > 0 ? Math.sqrt(c / b) : 0);
  return {
    architecture,
    ids,
    blocks: ids.map((id) => {
      const a = acc.get(id)!;
      return { id, changeNorm: Math.sqrt(a.c2), baseNorm: Math.sqrt(a.b2), relative: rel(a.c2, a.b2), tensors: a.tensors };
    }),
    unassigned,
    total: { changeNorm: Math.sqrt(c2), baseNorm: Math.sqrt(b2), relative: rel(c2, b2) },
  };
}

export function applySvg(d: ApplyData): string {
  const rows = blockGrid(d.ids);
  const columns = Math.max(1, ...rows.map((r) => r.ids.length));
  const width = Math.max(gridWidth(columns) + 32, 560);
  const max = Math.max(0, ...d.blocks.map((b) => b.relative));
  const cells = new Map<string, HeatCell>(
    d.blocks.map((b) => [b.id, {
      t: b.tensors.length === 0 ? null : max > 0 ? b.relative / max : 0,
      title: b.tensors.length === 0
        ? `${b.id}: unchanged`
        : `${b.id}: ‖ΔW‖ ${fmt(b.changeNorm)} = ${pct(b.relative)} of ‖W‖ ${fmt(b.baseNorm)}\n${b.tensors.length} tensors:\n${b.tensors.slice(0, 24).map((t) => `  ${t}`).join('\n')}${b.tensors.length > 24 ? `\n  … and ${b.tensors.length - 24} more` : ''}`,
      data: { relative: num(b.relative), 'change-norm': num(b.changeNorm), 'base-norm': num(b.baseNorm), tensors: b.tensors.length },
    }]),
  );
  const parts = [HATCH_DEFS, text(16, 24, 'What the apply changed: ‖ΔW‖ / ‖W‖ by block', { 'font-size': 13, 'font-weight': 700 })];
  const grid = heatGrid({
    x: 16, y: 40, rows, cells, scale: 'sequential', kind: 'apply-change',
    caption: 'all patched weights', subcaption: `‖ΔW‖ ${fmt(d.total.changeNorm)} = ${pct(d.total.relative)} of ‖W‖${d.unassigned.length ? `; ${d.unassigned.length} tensors in no block` : ''}`,
    data: { 'total-relative': num(d.total.relative), 'total-change-norm': num(d.total.changeNorm) },
  });
  parts.push(grid.svg);
  let y = 40 + grid.height + 8;
  parts.push(legend(16 + 78, y + 12, 180, sequential, '0', pct(max), '‖ΔW‖ / ‖W‖'));
  y += 36;
  if (d.ids.length === 0) parts.push(text(16, y, `${d.architecture} has no block scheme`, { fill: '#e0a526', 'font-size': 10 }));
  return svgDoc(width, y + 12, parts.join(''), { class: 'lf-view lf-apply-change', 'data-architecture': d.architecture });
}
