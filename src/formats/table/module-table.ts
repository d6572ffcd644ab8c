/**
 * A transformer family's base-weight module table as data: every LoRA-able weight under its
 * original (ComfyUI / single-file) name, its diffusers name(s) and, for a fused original weight,
 * the row span each diffusers part covers. Readers match LoRA module names against it, writers
 * name modules from it, and fused⇄split conversion takes its row maps from it.
 *
 * Shapes and row spans are expressions in the family's named widths (`h`, `3h+mlp`, …). Readers
 * and writers take the widths from the file's own shapes, never from one model size's numbers,
 * so shrunk fixtures and every size of a family share one table.
 */
import type { LoraAdapter, Patch } from '../../adapter/model.ts';
import { fillIndex, templateRegex, type Spelling } from './template.ts';

/** Rows of a fused weight covered by one diffusers part: `start` and `len` in units of h; `rest` = to the end. */
export interface PartRows {
  start: number;
  len: number | 'rest';
}

export interface TablePart {
  diffusers: string;
  rows: PartRows;
}

/** A fused q | k | v weight's three diffusers parts, each h rows. */
export const qkvParts = (q: string, k: string, v: string): TablePart[] => [
  { diffusers: q, rows: { start: 0, len: 1 } },
  { diffusers: k, rows: { start: 1, len: 1 } },
  { diffusers: v, rows: { start: 2, len: 1 } },
];

/**
 * Copies of the entries of `modules` with these original names, in this order: a family whose
 * weights are another's under the same names (HunyuanVideo's and FLUX.2's FLUX.1 weights) takes
 * them from that family's table instead of stating them again.
 */
export function entriesNamed<M extends TableModule>(modules: readonly M[], originals: readonly string[]): M[] {
  return originals.map((original) => {
    const m = modules.find((x) => x.original === original);
    if (!m) throw new Error(`no table entry "${original}"`);
    return { ...m };
  });
}

export interface TableModule {
  /** Original (ComfyUI / single-file checkpoint) module path; `{i}` is the block index. */
  original: string;
  /** The block kind it sits in (`double`, `single`, `block`, `embedder`, `final`, …). */
  group: string;
  /** `linear`: a `.weight` (+ `.bias`); `norm`: an RMSNorm `scale` (diffusers calls it `weight`). */
  kind: 'linear' | 'norm';
  /** The diffusers module (1:1), or the parts of a fused original weight. */
  diffusers: string | readonly TablePart[];
  /** The original stores (shift, scale), diffusers (scale, shift): row halves are swapped between the two. */
  swapHalves?: boolean;
  /** `[out, in]` of the base weight (`[len]` for norms), as width expressions (`h`, `3h+mlp`, `in`). */
  shape: readonly string[];
  /** Other shapes the weight has in some blocks, each with its own half order (see `TableVariant`). */
  variants?: readonly TableVariant[];
}

/**
 * A shape a table weight has in some blocks instead of its `shape`: SD3's last joint block is
 * context-pre-only, so its `context_block.adaLN_modulation.1` is [2h, h] (shift, scale), swapped
 * against diffusers' (scale, shift), where every other block's is [6h, h] and not swapped. Names
 * do not tell them apart, the row count does: readers and writers pick the variant whose rows the
 * weight has (`swapsHalvesAt`); `blocks` says where it sits, for sample checkpoints.
 */
export interface TableVariant {
  shape: readonly string[];
  swapHalves?: boolean;
  /** The model's last block of the module's group, or the blocks a table group has (its count from the start). */
  blocks: 'last' | { group: string };
}

/** Module names that exist only in LoRA files (XLabs processors, ComfyUI's USO qkv), mapped onto table weights. */
export interface TableAlias {
  name: string;
  original: string;
  rows?: PartRows;
  layout: string;
}

/** A canonical target's table entry and block index. */
export interface TableTarget {
  module: TableModule;
  block?: number;
  /** The module path (target without `.weight` / `.bias` / `.scale`). */
  path: string;
  param: 'weight' | 'bias' | 'scale';
}

/** A module name matched against the table, in one naming. */
export interface TableHit {
  module: TableModule;
  block?: number;
  /** Rows of the original weight the name covers (a diffusers part, an alias). */
  part?: PartRows;
  swapHalves?: boolean;
  /** The name is a diffusers name (a bare diffusers file is a diffusers file without its prefix). */
  diffusersName: boolean;
  /** Set when the name is an alias of one trainer's own layout. */
  layout?: string;
}

/** The widths a set's shapes give, and those assumed from the family's defaults. */
export interface SetDims {
  values: Readonly<Record<string, number>>;
  /** Widths not in the file, taken from the table's defaults. */
  assumed: readonly string[];
}

interface Term {
  k: number;
  sym: string;
}

/** `3h+mlp` → [{3,h},{1,mlp}]. */
function terms(expr: string): Term[] {
  return expr.split('+').map((t) => {
    const m = /^(\d*)([a-z_]+)$/.exec(t.trim());
    if (!m) throw new Error(`bad width expression "${expr}"`);
    return { k: m[1] ? Number(m[1]) : 1, sym: m[2]! };
  });
}

/** Value of a width expression, or undefined when it needs a width `values` lacks. */
export function evalWidth(expr: string, values: Readonly<Record<string, number>>): number | undefined {
  let sum = 0;
  for (const t of terms(expr)) {
    const v = values[t.sym];
    if (v === undefined) return undefined;
    sum += t.k * v;
  }
  return sum;
}

/** The one unknown of `expr` with coefficient 1, solved from its total; undefined otherwise. */
function solve(expr: string, total: number, values: Record<string, number>): [string, number] | undefined {
  const ts = terms(expr);
  const unknown = ts.filter((t) => values[t.sym] === undefined);
  if (unknown.length !== 1 || unknown[0]!.k !== 1) return undefined;
  const known = ts.filter((t) => t !== unknown[0]).reduce((s, t) => s + t.k * values[t.sym]!, 0);
  return total - known > 0 ? [unknown[0]!.sym, total - known] : undefined;
}

export interface TableOptions {
  aliases?: readonly TableAlias[];
  /** Widths a file may not show, from those it does (FLUX: mlp = 4h), with the note a writer adds when one is assumed. */
  defaults?: Readonly<Record<string, { from: (values: Readonly<Record<string, number>>) => number | undefined; note: (values: Readonly<Record<string, number>>) => string }>>;
}

export class ModuleTable {
  readonly modules: readonly TableModule[];
  readonly aliases: readonly TableAlias[];
  private readonly defaults: NonNullable<TableOptions['defaults']>;
  private readonly targets: { m: TableModule; re: RegExp }[];
  private readonly byOriginal: Map<string, TableModule>;
  private readonly matcherCache = new Map<Spelling, { re: RegExp; hit: (i: number | undefined) => TableHit }[]>();

  constructor(modules: readonly TableModule[], opts: TableOptions = {}) {
    this.modules = modules;
    this.aliases = opts.aliases ?? [];
    this.defaults = opts.defaults ?? {};
    this.targets = modules.map((m) => ({ m, re: new RegExp(`^${m.original.replace(/\./g, '\\.').replace('{i}', '(\\d+)')}\\.(weight|bias|scale)$`) }));
    this.byOriginal = new Map(modules.map((m) => [m.original, m]));
  }

  /** The module of an original path template. */
  module(original: string): TableModule {
    const m = this.byOriginal.get(original);
    if (!m) throw new Error(`no module ${original} in the table`);
    return m;
  }

  /** A canonical target (`double_blocks.3.img_attn.qkv.weight`) → its entry and block index. */
  target(target: string): TableTarget | undefined {
    for (const { m, re } of this.targets) {
      const hit = re.exec(target);
      if (!hit) continue;
      const indexed = m.original.includes('{i}');
      return { module: m, block: indexed ? Number(hit[1]) : undefined, path: target.slice(0, target.lastIndexOf('.')), param: hit[indexed ? 2 : 1] as TableTarget['param'] };
    }
    return undefined;
  }

  /** A module name (prefix removed) in either naming, dotted or with `.` → `_`. */
  match(rest: string, spelling: Spelling): TableHit | undefined {
    // underscore spellings seen in the wild: a leading `_` (VideoX-Fun `lora_unet__blocks_0_…`), dots left in (`lora_unet_blocks_12.self_attn.k`)
    const name = spelling === 'underscore' ? rest.replace(/^_+/, '').replaceAll('.', '_') : rest;
    for (const m of this.matchers(spelling)) {
      const hit = m.re.exec(name);
      if (hit) return m.hit(hit[1] === undefined ? undefined : Number(hit[1]));
    }
    return undefined;
  }

  private matchers(spelling: Spelling) {
    let list = this.matcherCache.get(spelling);
    if (list) return list;
    list = [];
    for (const mod of this.modules) {
      list.push({ re: templateRegex(mod.original, spelling), hit: (block) => ({ module: mod, block, diffusersName: false }) });
      if (typeof mod.diffusers === 'string') {
        // a module whose variant swaps may swap: the weight's rows decide (swapsHalvesAt)
        const swapHalves = mod.variants ? mod.swapHalves || mod.variants.some((v) => v.swapHalves) : mod.swapHalves;
        list.push({ re: templateRegex(mod.diffusers, spelling), hit: (block) => ({ module: mod, block, swapHalves, diffusersName: true }) });
      } else {
        for (const part of mod.diffusers) list.push({ re: templateRegex(part.diffusers, spelling), hit: (block) => ({ module: mod, block, part: part.rows, diffusersName: true }) });
      }
    }
    for (const alias of this.aliases) {
      const mod = this.module(alias.original);
      list.push({ re: templateRegex(alias.name, spelling), hit: (block) => ({ module: mod, block, part: alias.rows, diffusersName: false, layout: alias.layout }) });
    }
    this.matcherCache.set(spelling, list);
    return list;
  }

  /** Widths from whatever modules the set patches (never one model size's numbers). */
  inferDims(patches: readonly Patch[], component: string): SetDims {
    const values: Record<string, number> = {};
    const weights: { t: TableTarget; out: number; inp: number; rows?: readonly [number, number] }[] = [];
    for (const p of patches) {
      if (p.component !== component || p.adapter.kind !== 'lora') continue;
      const t = this.target(p.target);
      if (!t || t.param !== 'weight') continue;
      const a = p.adapter as LoraAdapter;
      weights.push({ t, out: a.up.shape[0]!, inp: a.down.shape[1]!, rows: p.rows });
    }
    const single = (expr: string) => (/^[a-z_]+$/.test(expr) ? expr : undefined);
    for (const w of weights) {
      const [outExpr, inExpr] = w.t.module.shape;
      const i = inExpr && single(inExpr);
      if (i) values[i] ??= w.inp;
      const o = outExpr && single(outExpr);
      if (o && !w.rows) values[o] ??= w.out;
    }
    // compound widths with one unknown (h+mlp, 3h+mlp), and a part that starts where the known terms end
    for (let changed = true; changed; ) {
      changed = false;
      for (const w of weights) {
        const [outExpr, inExpr] = w.t.module.shape;
        const found = [inExpr && solve(inExpr, w.inp, values), outExpr && !w.rows && solve(outExpr, w.out, values), outExpr && w.rows && this.restPart(outExpr, w.rows, values)];
        for (const f of found) {
          if (f && values[f[0]] === undefined) {
            values[f[0]] = f[1];
            changed = true;
          }
        }
      }
    }
    const assumed: string[] = [];
    for (const [sym, d] of Object.entries(this.defaults)) {
      if (values[sym] !== undefined || Object.keys(values).length === 0) continue;
      const v = d.from(values);
      if (v !== undefined) {
        values[sym] = v;
        assumed.push(sym);
      }
    }
    return { values, assumed };
  }

  /** A row slice that starts exactly where the known terms of `expr` end covers the one unknown term. */
  private restPart(expr: string, rows: readonly [number, number], values: Record<string, number>): [string, number] | undefined {
    const ts = terms(expr);
    const unknown = ts.filter((t) => values[t.sym] === undefined);
    if (unknown.length !== 1 || unknown[0]!.k !== 1 || ts.at(-1) !== unknown[0]) return undefined;
    const known = ts.slice(0, -1).reduce((s, t) => s + t.k * values[t.sym]!, 0);
    return rows[0] === known ? [unknown[0]!.sym, rows[1]] : undefined;
  }

  /** The note a writer adds when a row-sliced patch's weight height needed an assumed width. */
  assumedNote(dims: SetDims, patches: readonly Patch[]): string | undefined {
    const needed = dims.assumed.filter((sym) =>
      patches.some((p) => {
        const out = p.rows ? this.target(p.target)?.module.shape[0] : undefined;
        return out !== undefined && terms(out).some((t) => t.sym === sym);
      }),
    );
    return needed.length === 0 ? undefined : needed.map((s) => this.defaults[s]!.note(dims.values)).join('; ');
  }
}

/**
 * Whether one weight of `m` keeps its row halves in the other order in diffusers naming, by its row
 * count: the variant with that many rows decides, else the module's own `swapHalves`. `inp` is the
 * weight's input width (a bias has none), `hidden` the file's h; without variants only `m.swapHalves` counts.
 */
export function swapsHalvesAt(m: TableModule, rows: number, inp: number | undefined, hidden: number | undefined): boolean {
  if (!m.variants) return m.swapHalves ?? false;
  const values: Record<string, number> = hidden === undefined ? {} : { h: hidden };
  const inExpr = m.shape[1];
  if (inp !== undefined && inExpr !== undefined && /^[a-z_]+$/.test(inExpr)) values[inExpr] = inp;
  const v = m.variants.find((x) => evalWidth(x.shape[0]!, values) === rows);
  return (v ? v.swapHalves : m.swapHalves) ?? false;
}

export { fillIndex };
