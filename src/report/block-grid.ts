/**
 * A block scheme's ids laid out as the grid people know (FLUX: CLIP T5 IN / D00–D18 / S00–S37 /
 * OUT; SDXL: BASE / IN00–IN08 / MID / OUT00–OUT08), for the heat strips and the block-weight
 * editor, and the presets the editor offers ("D00–D18 only": FLUX's double blocks). Derived from
 * the ids alone (a letter prefix and a number), so every family's scheme gets one.
 */

export interface GridRow {
  /** "D00–D18" for a run of numbered ids; undefined for a row of assorted single ids. */
  label?: string;
  ids: string[];
}

export interface BlockGroup {
  prefix: string;
  ids: string[];
}

/** Widest row of cells before a group wraps (wrapped rows are balanced: 38 → 2 × 19). */
export const MAX_COLUMNS = 20;

const prefixOf = (id: string) => /^([A-Za-z]+)\d+$/.exec(id)?.[1] ?? id;

/** Consecutive ids with one letter prefix (D00, D01, … → D). */
export function blockGroups(ids: readonly string[]): BlockGroup[] {
  const groups: BlockGroup[] = [];
  for (const id of ids) {
    const prefix = prefixOf(id);
    const last = groups.at(-1);
    if (last && last.prefix === prefix && prefix !== id) last.ids.push(id);
    else groups.push({ prefix, ids: [id] });
  }
  return groups;
}

const RANGED = /^[A-Za-z]+\d{2}$/;

const range = (ids: readonly string[]) => (ids.length === 1 ? ids[0]! : `${ids[0]}–${ids.at(-1)}`);

/** Rows of the grid: each numbered group on its own (wrapped), small runs of other ids packed together. */
export function blockGrid(ids: readonly string[], maxColumns = MAX_COLUMNS): GridRow[] {
  const rows: GridRow[] = [];
  let loose: string[] = [];
  const flush = () => {
    if (loose.length) rows.push({ ids: loose });
    loose = [];
  };
  for (const g of blockGroups(ids)) {
    if (g.ids.length < 4) {
      loose.push(...g.ids);
      if (loose.length >= maxColumns) flush();
      continue;
    }
    flush();
    const lines = Math.ceil(g.ids.length / maxColumns);
    const per = Math.ceil(g.ids.length / lines);
    for (let i = 0; i < g.ids.length; i += per) {
      const part = g.ids.slice(i, i + per);
      rows.push({ label: range(part), ids: part });
    }
  }
  flush();
  return rows;
}

export interface BlockPreset {
  name: string;
  /** ID=value pairs for the block-weights node (ids not named keep weight 1). */
  spec: string;
  weights: Record<string, number>;
}

/** Presets for a scheme: everything on, everything off, and each numbered group alone or left out. */
export function blockPresets(ids: readonly string[]): BlockPreset[] {
  const preset = (name: string, on: (id: string) => boolean): BlockPreset => {
    const weights = Object.fromEntries(ids.map((id) => [id, on(id) ? 1 : 0]));
    const off = ids.filter((id) => weights[id] === 0);
    return { name, weights, spec: off.length === 0 ? `${ids[0]}=1` : compactSpec(weights, ids) };
  };
  const out = [preset('all 1', () => true), preset('all 0', () => false)];
  for (const g of blockGroups(ids).filter((x) => x.ids.length > 1)) {
    const inGroup = new Set(g.ids);
    out.push(preset(`${range(g.ids)} only`, (id) => inGroup.has(id)), preset(`${range(g.ids)} off`, (id) => !inGroup.has(id)));
  }
  return out;
}

/**
 * ID=value pairs for the weights that are not 1, runs of one numbered group with one value written
 * as a range (`D00-D18=0`) where the ids are two-digit numbered (the ranges every scheme's parser
 * reads; Z-Image's NR0/NR1 are named one by one); `ids[0]=1` when every weight is 1 (a spec may
 * not be empty).
 */
export function compactSpec(weights: Readonly<Record<string, number>>, ids: readonly string[]): string {
  const parts: string[] = [];
  for (const g of blockGroups(ids)) {
    let i = 0;
    while (i < g.ids.length) {
      const v = weights[g.ids[i]!] ?? 1;
      let j = i;
      while (j + 1 < g.ids.length && (weights[g.ids[j + 1]!] ?? 1) === v) j++;
      if (v === 1) {
        i = j + 1;
        continue;
      }
      if (j > i && RANGED.test(g.ids[i]!)) parts.push(`${g.ids[i]}-${g.ids[j]}=${v}`);
      else for (let k = i; k <= j; k++) parts.push(`${g.ids[k]}=${v}`);
      i = j + 1;
    }
  }
  return parts.length ? parts.join(',') : `${ids[0]}=1`;
}
