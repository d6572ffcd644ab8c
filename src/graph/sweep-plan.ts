import { parseExposePath } from './overrides.ts';
import type { PathParamInfo } from './node.ts';
import type { NodeRegistry } from './registry.ts';
import { createPathResolver, rootsFor, type RootsConfig } from './roots.ts';
import { expandGlob, isGlob } from './sweep-glob.ts';
import { SweepError, expandSweep, type SweepAxis, type SweepPoint, type SweepSpec } from './sweep.ts';
import { validateRecipe } from './validate.ts';

/**
 * Planning a sweep against a recipe: which exposed names are file params (a glob over their root
 * becomes one point per file; a written path gets a per-point name), and a check that no two
 * points write the same file, all before anything runs. Shared by `loraflow run --sweep` and the
 * server's sweep submissions.
 */

export interface SweepPlanContext {
  registry: NodeRegistry;
  roots?: RootsConfig;
  /** What relative roots resolve against (default: process.cwd()). */
  cwd?: string;
  /** `{name}` in templates: the recipe's name. */
  name: string;
}

export interface ExposedParam {
  nodeId: string;
  param: string;
  /** The file param behind the name, when it names one whole (not a part of a list). */
  path?: PathParamInfo;
  /** The recipe's own value of the param. */
  value: unknown;
}

export interface SweepPlan {
  points: SweepPoint[];
  /** Templates in force, the user's and the derived ones (`output` → `out/x-{w}.safetensors`). */
  templates: Record<string, string>;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The recipe's exposed names with what they point at; entries that are malformed are left to validation. */
export function exposedParams(recipe: unknown, registry: NodeRegistry): Map<string, ExposedParam> {
  const out = new Map<string, ExposedParam>();
  if (!isRecord(recipe) || !isRecord(recipe.expose) || !isRecord(recipe.nodes)) return out;
  for (const [name, entry] of Object.entries(recipe.expose)) {
    const raw = typeof entry === 'string' ? entry : isRecord(entry) && typeof entry.path === 'string' ? entry.path : undefined;
    const parts = raw === undefined ? undefined : parseExposePath(raw);
    if (!parts) continue;
    const node = recipe.nodes[parts.nodeId];
    const type = isRecord(node) && typeof node.type === 'string' ? node.type : undefined;
    const def = type === undefined ? undefined : registry.get(type);
    const path = parts.rest.length === 0 ? def?.pathParams.find((p) => p.name === parts.param) : undefined;
    const value = isRecord(node) && isRecord(node.params) ? node.params[parts.param] : undefined;
    out.set(name, { nodeId: parts.nodeId, param: parts.param, ...(path ? { path } : {}), value });
  }
  return out;
}

/** Glob values of file params → one value per matching file under the param's root. */
async function expandGlobs(axes: readonly SweepAxis[], exposed: Map<string, ExposedParam>, ctx: SweepPlanContext): Promise<SweepAxis[]> {
  const cwd = ctx.cwd ?? process.cwd();
  const out: SweepAxis[] = [];
  for (const axis of axes) {
    const path = exposed.get(axis.name)?.path;
    if (!path || path.mode !== 'read') {
      out.push(axis);
      continue;
    }
    const root = rootsFor(ctx.roots ?? {}, path.kind, cwd)[0]!;
    const values: unknown[] = [];
    for (const v of axis.values) {
      if (typeof v !== 'string' || !isGlob(v)) values.push(v);
      else {
        const files = await expandGlob(v, root);
        if (files.length === 0) throw new SweepError(`--sweep ${axis.name}=${v}: no file matches under the ${path.kind} root (${root})`);
        values.push(...files);
      }
    }
    out.push({ name: axis.name, values: [...new Set(values)] });
  }
  return out;
}

/** `out/x.safetensors` swept over a and w → `out/x-{a}-{w}.safetensors` (braces in the name kept literal). */
function derivedTemplate(value: string, varying: readonly string[]): string {
  const escaped = value.replace(/[{}]/g, (c) => c + c);
  const slash = Math.max(escaped.lastIndexOf('/'), escaped.lastIndexOf('\\'));
  const dot = escaped.lastIndexOf('.');
  const cut = dot > slash + 1 ? dot : escaped.length;
  return `${escaped.slice(0, cut)}-${varying.map((n) => `{${n}}`).join('-')}${escaped.slice(cut)}`;
}

/** Expands the sweep into its points and checks them; throws SweepError for anything the user must change. */
export async function planSweep(recipe: unknown, spec: SweepSpec, ctx: SweepPlanContext): Promise<SweepPlan> {
  const exposed = exposedParams(recipe, ctx.registry);
  const known = [...exposed.keys()].sort();
  const named = [...(spec.axes ?? []).map((a) => a.name), ...(spec.points ?? []).flatMap((p) => Object.keys(p)), ...Object.keys(spec.templates ?? {})];
  for (const name of new Set(named)) {
    if (!exposed.has(name)) throw new SweepError(`"${name}" is not exposed by the recipe (it exposes: ${known.join(', ') || 'nothing'})`);
  }
  const axes = await expandGlobs(spec.axes ?? [], exposed, ctx);
  const varying = [...new Set([...axes.map((a) => a.name), ...(spec.points ?? []).flatMap((p) => Object.keys(p))])];
  const count = axes.reduce((n, a) => n * a.values.length, 1) * Math.max(1, spec.points?.length ?? 0);

  // Each point writes its own files: a written path that is exposed and not set per point gets a derived name.
  const templates: Record<string, string> = { ...spec.templates };
  if (count > 1) {
    // Names every point sets (a sweep-file entry may set a name the others leave alone).
    const everywhere = varying.filter((n) => (spec.points ?? []).every((p) => Object.hasOwn(p, n)) || axes.some((a) => a.name === n));
    const inName = everywhere.filter((n) => exposed.get(n)?.path?.mode !== 'write');
    for (const [name, e] of exposed) {
      if (e.path?.mode !== 'write' || varying.includes(name) || Object.hasOwn(templates, name)) continue;
      const value = spec.base?.[name] ?? e.value;
      if (typeof value === 'string' && value !== '' && inName.length > 0) templates[name] = derivedTemplate(value, inName);
    }
  }
  const pathNames = new Set([...exposed].filter(([, e]) => e.path).map(([n]) => n));
  const points = expandSweep({ ...spec, axes, templates }, { name: ctx.name, pathNames });

  // Two points writing one file would overwrite each other's result: refuse before anything runs.
  const resolvePath = createPathResolver(ctx.roots ?? {}, ctx.cwd ?? process.cwd());
  const writers = new Map<string, number>();
  for (const p of points) {
    const v = validateRecipe(recipe, ctx.registry, { overrides: p.overrides, resolvePath, checkFiles: false });
    if (!v.ok) continue; // reported as that point's failure when it runs
    for (const node of v.plan.nodes.values()) {
      for (const path of node.paths) {
        if (path.mode !== 'write') continue;
        const other = writers.get(path.resolved);
        if (other !== undefined && other !== p.index) {
          throw new SweepError(
            `points ${other} and ${p.index} both write ${path.resolved}: give the output a per-point name, e.g. --template NAME=out/{name}-{${varying[0] ?? 'index'}}.safetensors (NAME: the exposed output param)`,
          );
        }
        writers.set(path.resolved, p.index);
      }
    }
  }
  return { points, templates };
}
