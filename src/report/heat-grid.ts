/**
 * A heat strip on a family's block grid: one cell per block id (rows as block-grid.ts lays them
 * out), coloured by a value, the id written in the cell, the numbers in data- attributes and the
 * details in a <title> shown on hover. The building block of the strength, contribution, cosine
 * and apply views.
 */
import type { GridRow } from './block-grid.ts';
import { attrs, diverging, esc, inkOn, sequential, text } from './svg.ts';

export interface HeatCell {
  /** Colour position: 0..1 on the sequential scale, −1..1 on the diverging one; null: no value (hatched). */
  t: number | null;
  /** Hover text (lines). */
  title: string;
  /** data- attributes (without the prefix). */
  data: Readonly<Record<string, string | number | undefined>>;
}

export interface HeatGridOptions {
  x: number;
  y: number;
  rows: readonly GridRow[];
  cells: ReadonlyMap<string, HeatCell>;
  scale: 'sequential' | 'diverging';
  /** Class of the <g> holding the grid (the view's name for its cells). */
  kind: string;
  caption: string;
  /** A second, smaller caption line (totals). */
  subcaption?: string;
  /** Extra attributes of the grid's <g>. */
  data?: Readonly<Record<string, string | number | undefined>>;
}

export const CELL = 25;
const GAP = 3;
export const LABEL_WIDTH = 78;
const CAPTION = 18;

/** Width of a grid of `columns` cells. */
export const gridWidth = (columns: number): number => LABEL_WIDTH + columns * (CELL + GAP);

/** The grid as SVG, and the height it takes. */
export function heatGrid(o: HeatGridOptions): { svg: string; height: number } {
  const parts: string[] = [text(o.x, o.y + 12, o.caption, { 'font-size': 12, 'font-weight': 600 })];
  let y = o.y + CAPTION;
  if (o.subcaption) {
    parts.push(text(o.x, y + 9, o.subcaption, { 'font-size': 10, fill: '#8b93a1' }));
    y += 15;
  }
  for (const row of o.rows) {
    if (row.label) parts.push(text(o.x, y + CELL / 2 + 4, row.label, { 'font-size': 10, fill: '#8b93a1' }));
    row.ids.forEach((id, i) => {
      const cell = o.cells.get(id);
      const cx = o.x + LABEL_WIDTH + i * (CELL + GAP);
      const t = cell?.t ?? null;
      const fill = t === null ? 'url(#lf-hatch)' : o.scale === 'sequential' ? sequential(t) : diverging(t);
      const ink = t === null ? '#8b93a1' : o.scale === 'sequential' ? inkOn(t) : Math.abs(t) > 0.7 ? '#f4f6f9' : '#15171c';
      const data = Object.fromEntries(Object.entries({ block: id, ...(cell?.data ?? {}) }).map(([k, v]) => [`data-${k}`, v]));
      parts.push(
        `<g class="cell"${attrs(data)}><title>${esc(cell?.title ?? `${id}: nothing`)}</title>`
          + `<rect x="${cx}" y="${y}" width="${CELL}" height="${CELL}" rx="3" fill="${fill}" stroke="#0f1115" stroke-width="0.5"/>`
          + `<text x="${cx + CELL / 2}" y="${y + CELL / 2 + 3}" text-anchor="middle" font-size="${id.length > 3 ? 6.5 : 8}" fill="${ink}" pointer-events="none">${esc(id)}</text></g>`,
      );
    });
    y += CELL + GAP;
  }
  return { svg: `<g${attrs({ class: `grid ${o.kind}`, ...Object.fromEntries(Object.entries(o.data ?? {}).map(([k, v]) => [`data-${k}`, v])) })}>${parts.join('')}</g>`, height: y - o.y };
}

/** The hatch pattern cells without a value use (put once in each SVG's <defs>). */
export const HATCH_DEFS = '<defs><pattern id="lf-hatch" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="5" height="5" fill="#262a31"/><line x1="0" y1="0" x2="0" y2="5" stroke="#343943" stroke-width="2"/></pattern></defs>';
