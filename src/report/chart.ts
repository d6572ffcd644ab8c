/**
 * The two x/y charts the reports need, hand-written: bars (one per module, e.g. relative error) and
 * lines (energy kept against rank). Axes with a few ticks; data in data- attributes, details in <title>.
 */
import { attrs, esc, fmt, num, text } from './svg.ts';

export interface Frame {
  x: number;
  y: number;
  width: number;
  height: number;
}

function ticks(lo: number, hi: number, count = 4): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Axes: y ticks with labels (formatted by `yFormat`), x ticks at the given values. */
export function axes(f: Frame, y: { lo: number; hi: number; format?: (v: number) => string; label: string }, x: { ticks: { at: number; label: string }[]; label: string }): string {
  const sy = (v: number) => f.y + f.height - ((v - y.lo) / (y.hi - y.lo || 1)) * f.height;
  const parts = [`<rect x="${f.x}" y="${f.y}" width="${f.width}" height="${f.height}" fill="#15171c" stroke="#343943" stroke-width="0.5"/>`];
  for (const v of ticks(y.lo, y.hi)) {
    const yy = sy(v);
    parts.push(`<line x1="${f.x}" x2="${f.x + f.width}" y1="${yy}" y2="${yy}" stroke="#2a2e36" stroke-width="0.5"/>`, text(f.x - 4, yy + 3, (y.format ?? fmt)(v), { 'font-size': 9, fill: '#8b93a1', 'text-anchor': 'end' }));
  }
  for (const t of x.ticks) parts.push(`<line x1="${t.at}" x2="${t.at}" y1="${f.y + f.height}" y2="${f.y + f.height + 3}" stroke="#8b93a1" stroke-width="0.5"/>`, text(t.at, f.y + f.height + 13, t.label, { 'font-size': 9, fill: '#8b93a1', 'text-anchor': 'middle' }));
  parts.push(text(f.x + f.width / 2, f.y + f.height + 26, x.label, { 'font-size': 10, fill: '#8b93a1', 'text-anchor': 'middle' }));
  parts.push(`<text transform="translate(${f.x - 34} ${f.y + f.height / 2}) rotate(-90)" text-anchor="middle" font-size="10" fill="#8b93a1">${esc(y.label)}</text>`);
  return `<g class="axes">${parts.join('')}</g>`;
}

export interface Bar {
  value: number;
  title: string;
  data: Readonly<Record<string, string | number | undefined>>;
  color?: string;
}

/** Bars left to right over the frame, from 0 to `max`. */
export function bars(f: Frame, list: readonly Bar[], max: number, kind: string): string {
  const w = f.width / Math.max(1, list.length);
  const parts = list.map((b, i) => {
    const h = max > 0 ? (Math.max(0, b.value) / max) * f.height : 0;
    const data = Object.fromEntries(Object.entries(b.data).map(([k, v]) => [`data-${k}`, v]));
    // a hit area the full height of the chart, so thin bars are easy to hover
    return `<g class="bar"${attrs(data)}><title>${esc(b.title)}</title><rect x="${f.x + i * w}" y="${f.y}" width="${w}" height="${f.height}" fill="transparent"/>`
      + `<rect x="${f.x + i * w + (w > 3 ? 0.5 : 0)}" y="${f.y + f.height - h}" width="${Math.max(0.6, w - (w > 3 ? 1 : 0))}" height="${h}" fill="${b.color ?? '#5b9cf5'}"/></g>`;
  });
  return `<g class="bars ${kind}">${parts.join('')}</g>`;
}

export interface Line {
  /** y values at x = 1, 2, … */
  values: readonly number[];
  title: string;
  data: Readonly<Record<string, string | number | undefined>>;
  color: string;
  width: number;
  opacity: number;
  /** Dots with their own data- attributes (x, y) at every point. */
  dots?: boolean;
}

/** Lines over x = 1..xMax (linear) and y = lo..hi. */
export function lines(f: Frame, list: readonly Line[], xMax: number, lo: number, hi: number, kind: string): string {
  const sx = (k: number) => f.x + (xMax <= 1 ? f.width / 2 : ((k - 1) / (xMax - 1)) * f.width);
  const sy = (v: number) => f.y + f.height - ((v - lo) / (hi - lo || 1)) * f.height;
  const parts = list.map((l) => {
    const pts = l.values.map((v, i) => `${sx(i + 1).toFixed(2)},${sy(v).toFixed(2)}`).join(' ');
    const data = Object.fromEntries(Object.entries(l.data).map(([k, v]) => [`data-${k}`, v]));
    const dots = l.dots ? l.values.map((v, i) => `<circle class="point" cx="${sx(i + 1).toFixed(2)}" cy="${sy(v).toFixed(2)}" r="2.2" fill="${l.color}" data-rank="${i + 1}" data-energy="${num(v)}"><title>${esc(`rank ${i + 1}: ${fmt(100 * v)}% of ‖ΔW‖² kept`)}</title></circle>`).join('') : '';
    const marker = l.values.length === 1 ? `<circle cx="${sx(1)}" cy="${sy(l.values[0]!)}" r="1.5" fill="${l.color}"/>` : '';
    return `<g class="line"${attrs(data)}><title>${esc(l.title)}</title><polyline points="${pts}" fill="none" stroke="${l.color}" stroke-width="${l.width}" stroke-opacity="${l.opacity}" stroke-linejoin="round"/>${marker}${dots}</g>`;
  });
  return `<g class="lines ${kind}">${parts.join('')}</g>`;
}

/** x ticks for ranks 1..xMax (about six, at round numbers). */
export function rankTicks(f: Frame, xMax: number): { at: number; label: string }[] {
  const sx = (k: number) => f.x + (xMax <= 1 ? f.width / 2 : ((k - 1) / (xMax - 1)) * f.width);
  const values = new Set([1, ...ticks(0, xMax, 6).filter((v) => v >= 1 && Number.isInteger(v)), xMax]);
  return [...values].sort((a, b) => a - b).map((k) => ({ at: sx(k), label: String(k) }));
}
