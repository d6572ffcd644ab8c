/**
 * Original ⇄ diffusers tensor names and rows, from a family's module table (src/formats/table):
 * every diffusers tensor of a table module is the original weight's rows (a q/k/v part of a fused
 * weight, a half-swapped modulation, or all of it, renamed), and a norm's original `scale` is its
 * diffusers `weight`. Read side: diffusers tensors → the original tensors they assemble into (row
 * segments in original row order); write side: an original tensor → its diffusers tensors. No
 * family is named here: the tables know them all, and the SD UNets' one-to-one renames come from
 * their module lists (unet-names.ts), both behind one DiffusersNaming.
 */
import { checkpointArchitecture } from '../formats/checkpoint-family.ts';
import type { Family } from '../formats/family.ts';
import { FAMILIES, familyOf } from '../formats/families.ts';
import { isSdArchitecture, type SdArchitecture } from '../formats/sd/unet.ts';
import { swapsHalvesAt, type ModuleTable, type PartRows, type TableModule } from '../formats/table/module-table.ts';
import { fillIndex } from '../formats/table/template.ts';
import { CheckpointError } from './errors.ts';
import type { StoredTensor } from './form.ts';
import { unetNames, unetNamesOf, type UnetNames } from './unet-names.ts';

/** Rows [rowStart, rowStart + rows) of `tensor` are rows [at, at + rows) of the tensor it maps to. */
export interface RowMap {
  tensor: string;
  rowStart: number;
  rows: number;
  at: number;
}

/** One tensor assembled from (or split into) the rows of others. */
export interface Assembled {
  name: string;
  shape: number[];
  dtype: string;
  /** Rows of other tensors, in this tensor's row order. */
  rows: RowMap[];
}

const PARAMS = new Set(['weight', 'bias', 'scale']);

function split(name: string): { module: string; param: string } | undefined {
  const dot = name.lastIndexOf('.');
  if (dot < 0) return undefined;
  const param = name.slice(dot + 1);
  return PARAMS.has(param) ? { module: name.slice(0, dot), param } : undefined;
}

/** A diffusers tensor name's table hit, when it is a diffusers name of the table and not also an original one. */
function diffusersHit(table: ModuleTable, name: string) {
  const s = split(name);
  if (!s || s.param === 'scale') return undefined;
  const hit = table.match(s.module, 'dotted');
  if (!hit?.diffusersName || hit.layout) return undefined;
  return { ...hit, param: s.param };
}

/** Whether an original tensor name is spelled differently in diffusers (a fused weight's parts, a renamed module, a norm's scale). */
function renamedInDiffusers(table: ModuleTable, bare: string): boolean | undefined {
  const t = table.target(bare);
  if (!t) return undefined;
  const m = t.module;
  if (typeof m.diffusers !== 'string') return true;
  const param = m.kind === 'norm' && t.param === 'scale' ? 'weight' : t.param;
  return `${fillIndex(m.diffusers, t.block)}.${param}` !== bare;
}

/**
 * The family whose diffusers names `names` are, or undefined for an original-layout file. The
 * family is the one whose module table knows the most names (in either naming: tables share
 * names across families, so a partial match says little); its layout is diffusers when more names
 * are spelled only as diffusers spells them than only as the original does (names both layouts
 * share count for neither, and some families' two layouts are the same).
 */
export function diffusersFamily(names: readonly string[]): Family | undefined {
  let best: { family: Family; known: number; telling: number; diffusers: boolean } | undefined;
  for (const family of FAMILIES) {
    const table = family.table;
    if (!table) continue;
    let diffusersOnly = 0;
    let originalOnly = 0;
    let known = 0;
    for (const n of names) {
      if (diffusersHit(table, n)) {
        diffusersOnly++;
        known++;
        continue;
      }
      const renamed = renamedInDiffusers(table, n.replace(/^(model\.)?diffusion_model\./, ''));
      if (renamed === undefined) continue;
      known++;
      if (renamed) originalOnly++;
    }
    const telling = diffusersOnly + originalOnly;
    if (!best || known > best.known || (known === best.known && telling > best.telling)) best = { family, known, telling, diffusers: diffusersOnly > originalOnly };
  }
  return best && best.known > 0 && best.diffusers ? best.family : undefined;
}

/** The input width of a module's weight (biases take it from their weight), which is h where the table says so. */
function hiddenOf(m: TableModule, weightShape: readonly number[] | undefined): { inp?: number; hidden?: number } {
  const inp = weightShape?.[1];
  return { inp, hidden: m.shape[1] === 'h' ? inp : undefined };
}

/** Row segments of a whole-tensor map: identity, or the two halves swapped. */
function wholeRows(tensor: string, rows: number, swap: boolean): RowMap[] {
  if (!swap) return [{ tensor, rowStart: 0, rows, at: 0 }];
  const half = rows / 2;
  return [{ tensor, rowStart: half, rows: half, at: 0 }, { tensor, rowStart: 0, rows: half, at: half }];
}

const partLen = (rows: PartRows, h: number, total: number) => (rows.len === 'rest' ? total - rows.start * h : rows.len * h);

/**
 * Diffusers tensors → the original tensors they make up (names without any prefix), each with its
 * row segments; tensors that are no table module's diffusers name are listed apart, unchanged.
 * Refuses (naming file and tensor) a fused weight with a part missing or rows that do not add up.
 */
export function originalsFromDiffusers(path: string, tensors: readonly StoredTensor[], table: ModuleTable, fileOf: (name: string) => string): { assembled: Assembled[]; other: StoredTensor[] } {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const groups = new Map<string, { m: TableModule; block?: number; param: string; parts: { t: StoredTensor; part?: PartRows }[] }>();
  const other: StoredTensor[] = [];
  for (const t of tensors) {
    const hit = diffusersHit(table, t.name);
    if (!hit) {
      other.push(t);
      continue;
    }
    const m = hit.module;
    const param = m.kind === 'norm' && hit.param === 'weight' ? 'scale' : hit.param;
    const name = `${fillIndex(m.original, hit.block)}.${param}`;
    const g = groups.get(name) ?? { m, block: hit.block, param: hit.param, parts: [] };
    g.parts.push({ t, part: hit.part });
    groups.set(name, g);
  }
  const assembled: Assembled[] = [];
  for (const [name, { m, block, param, parts }] of groups) {
    const bad = (t: StoredTensor, why: string): never => {
      throw new CheckpointError('BAD_PARTS', fileOf(t.name), `${why} (the diffusers parts of ${name})`, t.name);
    };
    const first = parts[0]!.t;
    const trailing = first.shape.slice(1).join();
    for (const { t } of parts) {
      if (t.dtype !== first.dtype) bad(t, `is ${t.dtype} but ${first.name} is ${first.dtype}; the parts of one weight share a dtype`);
      if (t.shape.slice(1).join() !== trailing) bad(t, `has shape [${t.shape}] but ${first.name} [${first.shape}]; the parts of one weight share their width`);
    }
    const rowsOf = (t: StoredTensor) => t.shape[0] ?? 1;
    if (typeof m.diffusers === 'string') {
      const t = first;
      const weight = param === 'weight' ? t : byName.get(`${fillIndex(m.diffusers, block)}.weight`);
      const { inp, hidden } = hiddenOf(m, weight?.shape);
      const swap = swapsHalvesAt(m, rowsOf(t), inp, hidden);
      if (swap && rowsOf(t) % 2 !== 0) bad(t, `has ${rowsOf(t)} rows; its two halves swap between the layouts, so it needs an even count`);
      assembled.push({ name, shape: [...t.shape], dtype: t.dtype, rows: wholeRows(t.name, rowsOf(t), swap) });
      continue;
    }
    // a fused original weight: every part present, each at the rows the table gives it
    const expected = m.diffusers.map((p) => ({ name: `${fillIndex(p.diffusers, block)}.${param}`, rows: p.rows })).sort((a, b) => a.rows.start - b.rows.start);
    const got = new Map(parts.map((p) => [p.t.name, p.t]));
    for (const e of expected) if (!got.has(e.name)) bad(first, `${e.name} is missing: the original weight needs all of ${expected.map((x) => x.name).join(', ')}`);
    const unit = expected.find((e) => e.rows.len !== 'rest')!;
    const h = rowsOf(got.get(unit.name)!) / (unit.rows.len as number);
    const total = expected.reduce((s, e) => s + rowsOf(got.get(e.name)!), 0);
    const rows: RowMap[] = [];
    let at = 0;
    for (const e of expected) {
      const t = got.get(e.name)!;
      if (e.rows.start * h !== at || rowsOf(t) !== partLen(e.rows, h, total)) {
        bad(t, `has ${rowsOf(t)} rows where the table puts ${e.rows.len === 'rest' ? 'the rest' : partLen(e.rows, h, total)} rows at row ${e.rows.start * h} of the original`);
      }
      rows.push({ tensor: t.name, rowStart: 0, rows: rowsOf(t), at });
      at += rowsOf(t);
    }
    assembled.push({ name, shape: [total, ...first.shape.slice(1)], dtype: first.dtype, rows });
  }
  return { assembled, other };
}

/**
 * An original tensor (name without prefix) → its diffusers tensors, each with the rows of the
 * original it takes (`tensor` in each row map is the original's name); undefined when the table
 * has no diffusers name for it. `shapeOf` gives the shapes of the original's siblings (a bias
 * takes h from its weight).
 */
export function diffusersFromOriginal(original: StoredTensor, table: ModuleTable, shapeOf: (name: string) => readonly number[] | undefined): Assembled[] | undefined {
  const target = table.target(original.name);
  if (!target) return undefined;
  const m = target.module;
  const param = m.kind === 'norm' && target.param === 'scale' ? 'weight' : target.param;
  const rows = original.shape[0] ?? 1;
  const weightShape = target.param === 'weight' ? original.shape : shapeOf(`${target.path}.weight`);
  const { inp, hidden } = hiddenOf(m, weightShape);
  if (typeof m.diffusers === 'string') {
    const swap = swapsHalvesAt(m, rows, inp, hidden);
    return [{ name: `${fillIndex(m.diffusers, target.block)}.${param}`, shape: [...original.shape], dtype: original.dtype, rows: wholeRows(original.name, rows, swap) }];
  }
  const lens = m.diffusers.map((p) => p.rows.len);
  const h = hidden ?? (lens.includes('rest') ? undefined : rows / (lens as number[]).reduce((a, b) => a + b, 0));
  if (h === undefined || !Number.isInteger(h)) return undefined;
  return m.diffusers.map((p) => {
    const len = partLen(p.rows, h, rows);
    return { name: `${fillIndex(p.diffusers, target.block)}.${param}`, shape: [len, ...original.shape.slice(1)], dtype: original.dtype, rows: [{ tensor: original.name, rowStart: p.rows.start * h, rows: len, at: 0 }] };
  });
}

/**
 * How one family's diffusers names map onto its original names: a transformer family's module
 * table (fused and swapped rows included), or an SD UNet's one-to-one rename (unet-names.ts).
 * Readers and writers of the diffusers layout ask this and never which kind it is.
 */
export interface DiffusersNaming {
  family: Family;
  /** Diffusers tensors → the original tensors they make up, the rest apart (see originalsFromDiffusers). */
  originals(path: string, tensors: readonly StoredTensor[], fileOf: (name: string) => string): { assembled: Assembled[]; other: StoredTensor[] };
  /** An original tensor (no prefix) → its diffusers tensors, or undefined where it has no diffusers name. */
  diffusers(original: StoredTensor, shapeOf: (name: string) => readonly number[] | undefined): Assembled[] | undefined;
  /** Whether an original tensor name (no prefix) has a diffusers name. */
  knows(name: string): boolean;
}

function tableNaming(family: Family, table: ModuleTable): DiffusersNaming {
  return {
    family,
    originals: (path, tensors, fileOf) => originalsFromDiffusers(path, tensors, table, fileOf),
    diffusers: (original, shapeOf) => diffusersFromOriginal(original, table, shapeOf),
    knows: (name) => table.target(name) !== undefined,
  };
}

const whole = (t: StoredTensor, name: string): Assembled => ({ name, shape: [...t.shape], dtype: t.dtype, rows: [{ tensor: t.name, rowStart: 0, rows: t.shape[0] ?? 1, at: 0 }] });

function unetNaming(family: Family, names: UnetNames): DiffusersNaming {
  return {
    family,
    originals: (_path, tensors) => {
      const assembled: Assembled[] = [];
      const other: StoredTensor[] = [];
      for (const t of tensors) {
        const ldm = names.toLdm.get(t.name);
        if (ldm) assembled.push(whole(t, ldm));
        else other.push(t);
      }
      return { assembled, other };
    },
    diffusers: (original) => {
      const name = names.toDiffusers.get(original.name);
      return name ? [whole(original, name)] : undefined;
    },
    knows: (name) => names.toDiffusers.has(name),
  };
}

/** The diffusers naming a family's checkpoints are written with, or undefined where it has none. */
export function namingOfFamily(family: Family | undefined): DiffusersNaming | undefined {
  if (!family) return undefined;
  if (family.table) return tableNaming(family, family.table);
  return isSdArchitecture(family.id) ? unetNaming(family, unetNames(family.id)) : undefined;
}

/**
 * The naming of a diffusers-layout file's tensors, or undefined for an original-layout file: an
 * SD UNet when most names are diffusers UNet names (SD1.5 or SD2 then told apart by the shapes
 * under their LDM names, as for a single file), else the module-table family diffusersFamily finds.
 */
export function diffusersNamingOf(tensors: readonly StoredTensor[]): DiffusersNaming | undefined {
  const names = tensors.map((t) => t.name);
  const unet = unetNamesOf(names);
  if (unet) {
    const guess = checkpointArchitecture(tensors.map((t) => ({ name: unet.toLdm.get(t.name) ?? t.name, shape: t.shape })));
    const family = familyOf(isSdArchitecture(guess.architecture) ? guess.architecture : unet.arch);
    return family && unetNaming(family, unetNames(family.id as SdArchitecture));
  }
  return namingOfFamily(diffusersFamily(names));
}
