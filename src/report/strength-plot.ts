/**
 * A LoRA's strength by block as a heat strip on its family's grid, one strip per LoRA on one colour
 * scale (so two LoRAs compare at a glance), then the cosine similarity of each pair's ΔW per block:
 * blue where they push the same weights the same way, red where they fight, grey where they are
 * unrelated. Relative to the base weights' norms when the analysis has them.
 */
import type { ModuleStrength, SetStrength, StrengthAnalysis } from '../lora/block-strength.ts';
import { blockGrid } from './block-grid.ts';
import { HATCH_DEFS, gridWidth, heatGrid, type HeatCell } from './heat-grid.ts';
import { fmt, legend, num, pct, sequential, diverging, svgDoc, text, textWidth } from './svg.ts';

/** Modules listed in one cell's hover text before "and N more". */
const LISTED = 24;

function moduleLine(m: ModuleStrength): string {
  const rank = m.rank !== undefined ? `rank ${m.rank}` : m.kind;
  const alpha = m.alpha !== undefined ? `, alpha ${fmt(m.alpha)}` : '';
  return `  ${m.module}: ${rank}${alpha}${m.kind !== 'lora' && m.rank !== undefined ? ` (${m.kind})` : ''}${m.dora ? ', DoRA' : ''}, ‖ΔW‖ ${fmt(m.norm)}`;
}

export function moduleList(modules: readonly ModuleStrength[]): string {
  const lines = modules.slice(0, LISTED).map(moduleLine);
  if (modules.length > LISTED) lines.push(`  … and ${modules.length - LISTED} more`);
  return lines.join('\n');
}

export interface StrengthPlotOptions {
  /** Names of the sets (file names), in order. */
  labels: readonly string[];
  /** A note per set shown beside its totals (a merge: how many modules it contributed). */
  details?: readonly string[];
  /** Caption prefix per strip (default "‖ΔW‖_F by block"). */
  what?: string;
  title?: string;
}

/** Colour by relative strength when every set has base norms, else by ‖ΔW‖. */
const relativeOf = (s: SetStrength) => s.total.relative !== undefined;

export function strengthCells(set: SetStrength, max: number, byRelative: boolean, label: string): Map<string, HeatCell> {
  const byBlock = new Map<string, ModuleStrength[]>();
  for (const m of set.modules) if (m.block !== null) byBlock.set(m.block, [...(byBlock.get(m.block) ?? []), m]);
  return new Map(
    set.blocks.map((b) => {
      const value = byRelative ? (b.relative ?? 0) : b.norm;
      const modules = byBlock.get(b.id) ?? [];
      const rel = b.relative !== undefined ? ` (${pct(b.relative)} of ‖W‖ ${fmt(b.baseNorm!)})` : '';
      const title = b.modules === 0 ? `${b.id}: not patched by ${label}` : `${b.id} (${label}): ‖ΔW‖ ${fmt(b.norm)}${rel}\n${b.modules} module${b.modules === 1 ? '' : 's'}:\n${moduleList(modules)}`;
      return [b.id, {
        t: b.modules === 0 ? null : max > 0 ? value / max : 0,
        title,
        data: { norm: num(b.norm), modules: b.modules, ...(b.relative !== undefined ? { relative: num(b.relative), 'base-norm': num(b.baseNorm!) } : {}) },
      }];
    }),
  );
}

/** The strength view's SVG (one strip per set, then one cosine strip per pair). */
export function strengthSvg(a: StrengthAnalysis, o: StrengthPlotOptions): string {
  const rows = blockGrid(a.ids);
  const columns = Math.max(1, ...rows.map((r) => r.ids.length));
  const captions = [...o.labels, ...a.cosines.map((c) => `cosine similarity of ΔW: ${o.labels[c.a] ?? ''} vs ${o.labels[c.b] ?? ''}`)];
  const width = Math.ceil(Math.min(960, Math.max(gridWidth(columns) + 32, 560, ...captions.map((c) => textWidth(c, 12) + 40))));
  const byRelative = a.sets.length > 0 && a.sets.every(relativeOf);
  const max = Math.max(0, ...a.sets.flatMap((s) => s.blocks.map((b) => (byRelative ? (b.relative ?? 0) : b.norm))));
  const parts: string[] = [HATCH_DEFS];
  let y = 14;
  parts.push(text(16, y + 10, o.title ?? 'Strength by block', { 'font-size': 13, 'font-weight': 700 }));
  if (a.scheme) {
    parts.push(text(16, y + 26, a.scheme, { 'font-size': 10, fill: '#8b93a1' }));
    y += 14;
  }
  y += 26;
  const what = o.what ?? (byRelative ? '‖ΔW‖ / ‖W‖ by block' : '‖ΔW‖_F by block');
  a.sets.forEach((set, i) => {
    const label = o.labels[i] ?? `LoRA ${i + 1}`;
    const total = `total ‖ΔW‖ ${fmt(set.total.norm)}${set.total.relative !== undefined ? `, ${pct(set.total.relative)} of ‖W‖` : ''}${set.unassigned.modules ? `; ${set.unassigned.modules} modules in no block (‖ΔW‖ ${fmt(set.unassigned.norm)})` : ''}`;
    const grid = heatGrid({
      x: 16, y, rows, scale: 'sequential', kind: 'strength', caption: `${label}${set.weight !== 1 ? ` ×${fmt(set.weight)}` : ''}`, subcaption: `${o.details?.[i] ? `${o.details[i]}; ` : ''}${what}: ${total}`,
      cells: strengthCells(set, max, byRelative, label),
      data: { set: i, label, ...(o.details?.[i] ? { detail: o.details[i] } : {}), 'total-norm': num(set.total.norm), ...(set.total.relative !== undefined ? { 'total-relative': num(set.total.relative) } : {}) },
    });
    parts.push(grid.svg);
    y += grid.height + 8;
  });
  if (a.sets.length) {
    parts.push(legend(16 + 78, y + 12, 180, sequential, '0', byRelative ? pct(max) : fmt(max), byRelative ? '‖ΔW‖ / ‖W‖' : '‖ΔW‖_F'));
    y += 36;
  }
  for (const pair of a.cosines) {
    const la = o.labels[pair.a] ?? `LoRA ${pair.a + 1}`;
    const lb = o.labels[pair.b] ?? `LoRA ${pair.b + 1}`;
    const cells = new Map<string, HeatCell>(
      pair.blocks.map((b) => [b.id, {
        t: b.cosine,
        title: b.cosine === null ? `${b.id}: not patched by both` : `${b.id}: cos(ΔW of ${la}, ΔW of ${lb}) = ${b.cosine.toFixed(3)}${b.cosine < -0.2 ? ' (they pull apart)' : b.cosine > 0.2 ? ' (same direction)' : ''}`,
        data: b.cosine === null ? { cosine: 'none' } : { cosine: num(b.cosine) },
      }]),
    );
    const grid = heatGrid({
      x: 16, y, rows, scale: 'diverging', kind: 'cosine', cells,
      caption: `cosine similarity of ΔW: ${la} vs ${lb}`, subcaption: `overall ${pair.total === null ? 'n/a' : pair.total.toFixed(3)}; blue: same direction, red: they pull apart, grey: unrelated`,
      data: { a: pair.a, b: pair.b, total: pair.total === null ? 'none' : num(pair.total) },
    });
    parts.push(grid.svg);
    y += grid.height + 8;
  }
  if (a.cosines.length) {
    parts.push(legend(16 + 78, y + 12, 180, diverging, '−1', '+1', 'cosine', -1, 1));
    y += 36;
  }
  for (const note of a.notes) {
    parts.push(text(16, y + 10, note, { 'font-size': 10, fill: '#e0a526' }));
    y += 16;
  }
  return svgDoc(width, y + 10, parts.join(''), { class: 'lf-view lf-strength', 'data-architecture': a.architecture, 'data-relative': byRelative ? 'true' : 'false' });
}
