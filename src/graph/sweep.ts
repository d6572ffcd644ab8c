/**
 * Sweeps: one recipe run over many override sets. This file is the pure part: parsing
 * `NAME=v1,v2,…`, the cartesian product of axes (combined with the explicit sets of a sweep file),
 * and the output-name templates (`out/{name}-{a}-{w}.safetensors`) filled per point. It knows
 * nothing about LoRAs, files or the registry (see sweep-plan.ts for globs and write checks,
 * sweep-run.ts for running the points).
 */
import { LoraflowError } from '../errors.ts';

/** A sweep the user asked for that cannot be expanded: their move (exit code 2). */
export class SweepError extends LoraflowError {
  constructor(message: string) {
    super('input', 'SWEEP', message);
    this.name = 'SweepError';
  }
}

export interface SweepAxis {
  /** An exposed name of the recipe. */
  name: string;
  /** Its values, in order (strings from the command line are converted like `--set` values). */
  values: unknown[];
}

export interface SweepSpec {
  /** Overrides every point shares (`--set`). */
  base?: Readonly<Record<string, unknown>>;
  /** Cartesian product, first axis outermost: points sharing its value run back to back, so its upstream results stay cached. */
  axes?: readonly SweepAxis[];
  /** Explicit override sets (a sweep file); each one is combined with every point of the product. */
  points?: readonly Readonly<Record<string, unknown>>[];
  /** Exposed name → the template its value is filled from at each point. */
  templates?: Readonly<Record<string, string>>;
}

export interface SweepPoint {
  /** 1-based, in run order. */
  index: number;
  /** What varies at this point, by exposed name (what the summary table shows). */
  values: Record<string, unknown>;
  /** Everything this point runs with: base, values, then the filled templates. */
  overrides: Record<string, unknown>;
  /** `a=x w=0.5`: the values in one line. */
  label: string;
}

export interface TemplateContext {
  /** `{name}`: the recipe's name (e.g. its file name without extension). */
  name: string;
  /** Exposed names whose values are file paths: `{a}` is then the file's name without folder and extension. */
  pathNames?: ReadonlySet<string>;
}

/** The most points one sweep may have: a typo in a glob or an axis should not queue a million runs. */
export const MAX_SWEEP_POINTS = 10_000;

const OPEN = new Set(['[', '{']);
const CLOSE: Record<string, string> = { ']': '[', '}': '{' };

/**
 * `1,[1,0.5],"a,b"` → `["1", "[1,0.5]", "\"a,b\""]`: commas split only outside brackets and quotes,
 * so JSON lists and objects are single values.
 */
export function splitList(text: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  let quote = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === '"') quote = false;
    } else if (c === '"') quote = true;
    else if (OPEN.has(c)) stack.push(c);
    else if (c in CLOSE && stack.at(-1) === CLOSE[c]) stack.pop();
    else if (c === ',' && stack.length === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

/** `--sweep NAME=v1,v2,…` → an axis; throws naming the bad argument. */
export function parseSweepArg(arg: string): SweepAxis {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new SweepError(`--sweep "${arg}": expected NAME=VALUE1,VALUE2,… (or NAME=GLOB for a file param)`);
  const values = splitList(arg.slice(eq + 1));
  if (values.some((v) => v === '')) throw new SweepError(`--sweep "${arg}": an empty value (two commas in a row, or a trailing comma)`);
  return { name: arg.slice(0, eq), values };
}

/** `["output=out/{a}.safetensors"]` → `{ output: "out/{a}.safetensors" }`. */
export function parseTemplateArgs(list: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    list.map((item): [string, string] => {
      const eq = item.indexOf('=');
      if (eq <= 0 || eq === item.length - 1) throw new SweepError(`--template "${item}": expected NAME=TEMPLATE, e.g. output=out/{name}-{w}.safetensors`);
      return [item.slice(0, eq), item.slice(eq + 1)];
    }),
  );
}

/** How a value reads inside a file name: a path by its stem, a list joined by "_", nothing that would make a folder. */
export function templateValue(value: unknown, isPath = false): string {
  let text: string;
  // A command-line value that is JSON (`[1,0.5]`, `0.5`) reads as the value it stands for.
  if (typeof value === 'string' && !isPath && /^\s*[[{]/.test(value)) {
    try {
      return templateValue(JSON.parse(value) as unknown);
    } catch {
      // not JSON: the text itself
    }
  }
  if (typeof value === 'string') {
    text = value;
    if (isPath) {
      const base = value.split(/[\\/]/).pop() ?? value;
      const dot = base.lastIndexOf('.');
      text = dot > 0 ? base.slice(0, dot) : base;
    }
  } else if (Array.isArray(value)) text = value.map((v) => templateValue(v)).join('_');
  else if (typeof value === 'object' && value !== null) text = JSON.stringify(value);
  else text = String(value);
  // Keep file names portable; a separator from a value must never create a folder.
  return text.replace(/[^A-Za-z0-9._=+-]+/g, '_').replace(/^\.+/, '_') || '_';
}

/**
 * Fills `{var}` placeholders; `{{` and `}}` are literal braces. An unknown placeholder is an error
 * that lists the known ones (a typo would otherwise write every point to the same file).
 */
export function fillTemplate(template: string, vars: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, name: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    const v = Object.hasOwn(vars, name!) ? vars[name!] : undefined;
    if (v === undefined) throw new SweepError(`template "${template}": no value for {${name}}; known: ${Object.keys(vars).map((k) => `{${k}}`).join(', ')}`);
    return v;
  });
}

function product(axes: readonly SweepAxis[]): Record<string, unknown>[] {
  let sets: Record<string, unknown>[] = [{}];
  for (const axis of axes) {
    const next: Record<string, unknown>[] = [];
    for (const s of sets) for (const v of axis.values) next.push({ ...s, [axis.name]: v });
    sets = next;
    if (sets.length > MAX_SWEEP_POINTS) throw new SweepError(`the sweep has more than ${MAX_SWEEP_POINTS} points`);
  }
  return sets;
}

function label(values: Record<string, unknown>): string {
  return Object.entries(values).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') || '(base)';
}

/** Every point of the sweep, in run order, with its overrides and filled templates. */
export function expandSweep(spec: SweepSpec, ctx: TemplateContext): SweepPoint[] {
  const axes = spec.axes ?? [];
  const seen = new Set<string>();
  for (const a of axes) {
    if (seen.has(a.name)) throw new SweepError(`--sweep ${a.name} is given twice: list all its values in one --sweep ${a.name}=v1,v2,…`);
    seen.add(a.name);
    if (a.values.length === 0) throw new SweepError(`--sweep ${a.name} has no values`);
  }
  const fileSets = spec.points && spec.points.length > 0 ? spec.points : [{}];
  for (const [i, p] of fileSets.entries()) {
    const both = Object.keys(p).filter((k) => seen.has(k));
    if (both.length > 0) throw new SweepError(`sweep file entry ${i + 1} sets ${both.join(', ')}, which --sweep also varies`);
  }
  const templates = spec.templates ?? {};
  for (const name of Object.keys(templates)) {
    if (seen.has(name) || fileSets.some((p) => Object.hasOwn(p, name))) throw new SweepError(`${name} has a --template and is swept too: give one or the other`);
  }
  const combos = product(axes);
  if (combos.length * fileSets.length > MAX_SWEEP_POINTS) throw new SweepError(`the sweep has more than ${MAX_SWEEP_POINTS} points`);
  const total = combos.length * fileSets.length;
  const width = String(total).length;
  const points: SweepPoint[] = [];
  for (const set of fileSets) {
    for (const combo of combos) {
      const index = points.length + 1;
      const values = { ...set, ...combo };
      const overrides: Record<string, unknown> = { ...spec.base, ...values };
      const vars: Record<string, string> = { name: templateValue(ctx.name), index: String(index).padStart(width, '0') };
      for (const [k, v] of Object.entries(overrides)) vars[k] = templateValue(v, ctx.pathNames?.has(k));
      for (const [k, t] of Object.entries(templates)) overrides[k] = fillTemplate(t, vars);
      points.push({ index, values, overrides, label: label(values) });
    }
  }
  return points;
}

/**
 * A sweep file's content (JSON or YAML, parsed) → its override sets: a list of objects, each
 * `{ exposed name: value }`, or `{ points: [ … ] }`.
 */
export function sweepFilePoints(doc: unknown, source = 'sweep file'): Record<string, unknown>[] {
  const list = typeof doc === 'object' && doc !== null && !Array.isArray(doc) && 'points' in doc ? (doc as { points: unknown }).points : doc;
  if (!Array.isArray(list) || list.length === 0) throw new SweepError(`${source}: expected a non-empty list of override sets, e.g. [{"w": 0.5}, {"w": 1}]`);
  return list.map((p, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new SweepError(`${source}: entry ${i + 1} is not an object of exposed name → value`);
    return { ...(p as Record<string, unknown>) };
  });
}
