/**
 * What a merge did, as three pictures: the relative error of every merged module (bars, in the
 * report's order), energy kept against rank (one faint line per module, the total in bold, the
 * rank the merge used marked), and what each input contributed (its weighted ‖ΔW‖ per block on
 * the family's grid, with the inputs' cosine similarity per block).
 */
import { axes, bars, lines, rankTicks, type Frame, type Line } from './chart.ts';
import type { MergeData } from './merge-data.ts';
import { strengthSvg } from './strength-plot.ts';
import { fmt, num, pct, svgDoc, text } from './svg.ts';

const WIDTH = 640;

const inputNames = (d: MergeData, inputs: readonly number[]) => inputs.map((i) => d.contributions[i]?.label ?? `input ${i + 1}`).join(', ');

export function mergeErrorSvg(d: MergeData): string {
  const f: Frame = { x: 58, y: 44, width: WIDTH - 78, height: 150 };
  const max = Math.max(0, ...d.modules.map((m) => m.relError));
  const top = max > 0 ? max * 1.05 : 1;
  const list = d.modules.map((m, i) => ({
    value: m.relError,
    title: `${m.module}${m.block ? ` (${m.block})` : ''}\n${m.diff ? 'written exactly as a full diff' : `rank ${m.rank}, relative error ${fmt(m.relError)}`}\nfrom ${inputNames(d, m.inputs) || 'no input'}`,
    data: { module: m.module, index: i, 'rel-error': num(m.relError), rank: m.rank, block: m.block ?? undefined, inputs: m.inputs.join(' ') },
    color: m.inputs.length > 1 ? '#5b9cf5' : '#c792ea',
  }));
  // block boundaries: a tick where a new block group (D, S, …) starts
  const w = f.width / Math.max(1, d.modules.length);
  const ticks: { at: number; label: string }[] = [];
  let last = '';
  d.modules.forEach((m, i) => {
    const group = (m.block ?? '').replace(/\d+$/, '') || (m.block ?? '');
    if (group !== last && m.block) ticks.push({ at: f.x + i * w, label: m.block });
    last = group;
  });
  const body = [
    text(16, 24, `Relative error per module — ${d.method} merge, ${d.modules.length} modules, overall ${fmt(d.relError)}`, { 'font-size': 13, 'font-weight': 700 }),
    axes(f, { lo: 0, hi: top, label: '‖ΔW − ΔWₖ‖ / ‖ΔW‖' }, { ticks, label: 'modules (in merge order; blue: several inputs, violet: one)' }),
    bars(f, list, top, 'merge-error'),
    max === 0 ? text(f.x + f.width / 2, f.y + f.height / 2, d.method === 'concat' ? 'concat is exact: every error is 0' : 'every module merged without error', { 'text-anchor': 'middle', fill: '#8b93a1' }) : '',
  ];
  return svgDoc(WIDTH, f.y + f.height + 40, body.join(''), { class: 'lf-view lf-merge-error', 'data-method': d.method, 'data-rel-error': num(d.relError) });
}

/** What the energy chart needs (a merge's data, or an extraction's). */
export interface EnergyData {
  modules: readonly Pick<MergeData['modules'][number], 'module' | 'block' | 'rank' | 'curve'>[];
  aggregate: readonly number[];
  rank: number | null;
  notes: readonly string[];
}

export function mergeEnergySvg(d: EnergyData & { method?: string }, title = `Energy kept against rank — ${d.method} merge`, kind = 'merge-energy'): string {
  const f: Frame = { x: 58, y: 44, width: WIDTH - 78, height: 190 };
  const withCurve = d.modules.filter((m) => m.curve);
  const xMax = Math.max(1, ...withCurve.map((m) => m.curve!.energy.length));
  const lo = Math.min(0.5, ...withCurve.flatMap((m) => m.curve!.energy.slice(0, 1)), ...d.aggregate.slice(0, 1));
  const yLo = Math.max(0, Math.floor(lo * 10) / 10);
  const list: Line[] = withCurve.map((m) => ({
    values: m.curve!.energy,
    title: `${m.module}${m.block ? ` (${m.block})` : ''}: ${m.curve!.energy.length} singular values${m.curve!.complete ? '' : ' (up to the kept rank)'}; rank ${m.rank} keeps ${pct(m.curve!.energy[Math.min(m.rank, m.curve!.energy.length) - 1] ?? 1)}`,
    data: { module: m.module, rank: m.rank, energy: m.curve!.energy.map(num).join(' '), complete: m.curve!.complete ? 'true' : 'false' },
    color: '#82aaff', width: 1, opacity: 0.28,
  }));
  const all: Line = { values: d.aggregate, title: 'all modules together (Σ kept / Σ ‖ΔW‖²)', data: { module: 'all', rank: d.rank ?? 0, energy: d.aggregate.map(num).join(' '), complete: 'true' }, color: '#fdd835', width: 2.4, opacity: 1, dots: true };
  if (d.aggregate.length) list.push(all);
  const sx = (k: number) => f.x + (xMax <= 1 ? f.width / 2 : ((k - 1) / (xMax - 1)) * f.width);
  const marker = d.rank !== null && d.rank <= xMax && d.aggregate.length
    ? `<g class="chosen-rank" data-rank="${d.rank}" data-energy="${num(d.aggregate[Math.min(d.rank, d.aggregate.length) - 1]!)}"><line x1="${sx(d.rank)}" x2="${sx(d.rank)}" y1="${f.y}" y2="${f.y + f.height}" stroke="#e2555a" stroke-dasharray="4 3"/>`
      + text(Math.min(sx(d.rank) + 5, f.x + f.width - 150), f.y + f.height - 8, `rank ${d.rank}: ${pct(d.aggregate[Math.min(d.rank, d.aggregate.length) - 1]!)} kept`, { fill: '#e2555a', 'font-size': 10 }) + '</g>'
    : '';
  const body = [
    text(16, 24, title, { 'font-size': 13, 'font-weight': 700 }),
    axes(f, { lo: yLo, hi: 1, format: (v) => `${Math.round(v * 100)}%`, label: 'energy kept' }, { ticks: rankTicks(f, xMax), label: 'rank' }),
    lines(f, list, xMax, yLo, 1, kind),
    marker,
    withCurve.length === 0 ? text(f.x + f.width / 2, f.y + f.height / 2, 'no module has a spectrum (written as full diffs)', { 'text-anchor': 'middle', fill: '#8b93a1' }) : '',
    ...d.notes.slice(0, 3).map((n, i) => text(16, f.y + f.height + 44 + 14 * i, n.length > 110 ? `${n.slice(0, 107)}…` : n, { 'font-size': 10, fill: '#e0a526' })),
  ];
  return svgDoc(WIDTH, f.y + f.height + 48 + 14 * Math.min(3, d.notes.length), body.join(''), { class: `lf-view lf-${kind}`, 'data-rank': d.rank ?? undefined });
}

export function mergeContributionsSvg(d: MergeData): string {
  const labels = d.contributions.map((c) => c.label);
  const counts = d.contributions.map((c) => `${c.modules.length} modules (${c.only.length} only from it)`);
  return strengthSvg(d.strength, { labels, details: counts, what: 'weighted ‖ΔW‖_F by block', title: 'What each input contributed' });
}
