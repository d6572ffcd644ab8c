/**
 * Hand-written SVG: the few primitives the plots need (escaped text, number formats, colour
 * scales, a document wrapper). Every plot is a plain string, so the CLI writes it to a file, the
 * HTML report inlines it and the editor shows it as it comes from the server: one renderer.
 * Values a test or a script may want are in data- attributes; hover text is in <title>.
 */

export function esc(text: string | number): string {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Attributes from an object (undefined values left out), escaped. */
export function attrs(a: Readonly<Record<string, string | number | undefined | null>>): string {
  return Object.entries(a)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => ` ${k}="${esc(v as string | number)}"`)
    .join('');
}

/** A number for data- attributes: full precision, no exponent surprises for the reader. */
export const num = (x: number): string => (Number.isFinite(x) ? String(x) : 'NaN');

/** A number for people: 3 significant digits, exponent form for the very small and large. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(2);
  return x.toPrecision(3).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

export const pct = (x: number): string => `${fmt(100 * x)}%`;

type Rgb = readonly [number, number, number];

const hex = ([r, g, b]: Rgb) => `#${[r, g, b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;

function interpolate(stops: readonly Rgb[], t: number): string {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  return hex([a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]);
}

/** Sequential (0 → 1): dark blue through teal and green to yellow, readable on dark and light backgrounds. */
const SEQUENTIAL: readonly Rgb[] = [[38, 42, 62], [49, 84, 140], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
/** Diverging (−1 → 1): red, grey at 0, blue. */
const DIVERGING: readonly Rgb[] = [[202, 62, 71], [226, 145, 128], [128, 132, 142], [120, 165, 222], [52, 110, 205]];

export const sequential = (t: number): string => interpolate(SEQUENTIAL, t);
export const diverging = (t: number): string => interpolate(DIVERGING, (t + 1) / 2);

/** Text colour that reads on a cell of the sequential scale at t. */
export const inkOn = (t: number): string => (t > 0.62 ? '#15171c' : '#e8ebf0');

export const FONT = `font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"`;

/** A standalone SVG document (xmlns, viewBox, a background so it reads on any page). */
export function svgDoc(width: number, height: number, body: string, a: Readonly<Record<string, string | number | undefined>> = {}): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"${attrs(a)} ${FONT} font-size="11">`
    + `<rect width="100%" height="100%" fill="#1b1e24" rx="6"/>${body}</svg>`;
}

export function text(x: number, y: number, content: string, a: Readonly<Record<string, string | number | undefined>> = {}): string {
  return `<text${attrs({ x, y, fill: '#d9dde4', ...a })}>${esc(content)}</text>`;
}

/** About how wide `content` is at `size` px in the UI font (for sizing documents to their captions). */
export const textWidth = (content: string, size: number): number => content.length * size * 0.56;

/** A horizontal colour legend from lo to hi. */
export function legend(x: number, y: number, width: number, scale: (t: number) => string, lo: string, hi: string, label: string, from = 0, to = 1): string {
  const steps = 24;
  const cells = Array.from({ length: steps }, (_, i) => `<rect x="${x + (i * width) / steps}" y="${y}" width="${width / steps + 0.5}" height="8" fill="${scale(from + ((to - from) * (i + 0.5)) / steps)}"/>`).join('');
  return `<g class="legend">${text(x, y - 4, label, { 'font-size': 10, fill: '#8b93a1' })}${cells}${text(x, y + 19, lo, { 'font-size': 10, fill: '#8b93a1' })}${text(x + width, y + 19, hi, { 'font-size': 10, fill: '#8b93a1', 'text-anchor': 'end' })}</g>`;
}

/** Several SVG documents one under the other, as one SVG document (each nested at its offset). */
export function stackSvg(svgs: readonly string[], gap = 12): string {
  let y = 0;
  let width = 0;
  const parts: string[] = [];
  for (const s of svgs) {
    const m = /^<svg[^>]*\swidth="([\d.]+)"\s+height="([\d.]+)"/.exec(s);
    const w = Number(m?.[1] ?? 640);
    const h = Number(m?.[2] ?? 400);
    parts.push(s.replace(/^<svg /, `<svg x="0" y="${y}" `));
    y += h + gap;
    width = Math.max(width, w);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${Math.max(0, y - gap)}" viewBox="0 0 ${width} ${Math.max(0, y - gap)}">${parts.join('')}</svg>`;
}
