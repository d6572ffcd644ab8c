import { statSync } from 'node:fs';
import { z } from 'zod';
import { fileIdentity, outputPathProblem, type FileIdentity } from '../file-identity.ts';
import { migrateNodeDoc, migrateRecipeDoc } from './migrate.ts';
import type { NodeDefinition, PathParamInfo } from './node.ts';
import { overrideCandidates, parseExposePath, setAtPath } from './overrides.ts';
import { formatPortType, portAccepts } from './ports.ts';
import type { Problem } from './problems.ts';
import { EXPOSE_NAME_PATTERN, ExposeEntrySchema, LINK_PATTERN, NODE_ID_PATTERN, RecipeNodeSchema, RecipeSchema, exposePath } from './recipe.ts';
import type { NodeRegistry } from './registry.ts';
import type { PathResolver } from './roots.ts';
import { ancestors, findCycles, topologicalOrder } from './schedule.ts';

/**
 * Validation: the whole recipe is checked before anything runs and every problem is collected —
 * document shape, unknown node types, node versions, params (after `--set` overrides), links
 * (missing, dangling, wrongly typed), cycles, expose paths, targets, file paths (inside their roots,
 * inputs present, no output written twice or over an input). The result is a plan: the nodes the
 * targets need, in execution order, with validated params.
 */

export interface PlannedLink {
  nodeId: string;
  output: string;
  type: string;
}

export interface PlannedPath extends PathParamInfo {
  value: string;
  resolved: string;
}

export interface PlannedNode {
  id: string;
  def: NodeDefinition;
  title: string;
  /** Validated params: defaults filled, overrides applied. */
  params: Record<string, unknown>;
  /** Links per input, in order (at most one for non-list inputs). */
  inputs: Record<string, PlannedLink[]>;
  paths: PlannedPath[];
}

export interface Plan {
  /** The document after migrations (node versions updated), overrides not applied. */
  recipe: Record<string, unknown>;
  nodes: Map<string, PlannedNode>;
  order: string[];
  targets: string[];
  /** Override values as applied, by exposed name. */
  overrides: Record<string, unknown>;
  migrations: string[];
}

export interface ValidateOptions {
  /** `--set` values by exposed name (strings are tried as given, then as JSON). */
  overrides?: Readonly<Record<string, unknown>>;
  /** Resolves path params against the model roots; without it paths are not checked. */
  resolvePath?: PathResolver;
  /** Check that files read by the planned nodes exist (default true when `resolvePath` is given). */
  checkFiles?: boolean;
}

export type ValidateResult = { ok: true; plan: Plan; problems: [] } | { ok: false; problems: Problem[] };

const TopSchema = RecipeSchema.omit({ nodes: true, expose: true }).extend({
  nodes: z.record(z.string(), z.unknown()),
  expose: z.record(z.string(), z.unknown()).optional(),
});

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Entry {
  id: string;
  def?: NodeDefinition;
  type: string;
  title?: string;
  v: string;
  params: Record<string, unknown>;
  in: Record<string, string | string[]>;
  validParams?: Record<string, unknown>;
  /** Params with overrides applied, valid or not (paths are checked even when another param is bad). */
  givenParams?: Record<string, unknown>;
}

function issueMessage(issue: z.core.$ZodIssue): string {
  return issue.message;
}

export function validateRecipe(input: unknown, registry: NodeRegistry, options: ValidateOptions = {}): ValidateResult {
  const problems: Problem[] = [];
  const fail = (): ValidateResult => ({ ok: false, problems });
  if (!isPlainObject(input)) {
    problems.push({ code: 'bad_recipe', message: `a recipe is an object with format "loraflow.recipe" and nodes, got ${Array.isArray(input) ? 'an array' : typeof input}` });
    return fail();
  }
  if (input.format !== 'loraflow.recipe') {
    const hint = Array.isArray(input.nodes) && Array.isArray(input.links) ? ' (this looks like a ComfyUI/litegraph workflow, not a loraflow recipe)' : '';
    problems.push({ code: 'bad_format', path: ['format'], message: `format must be "loraflow.recipe", got ${JSON.stringify(input.format)}${hint}` });
    if (!isPlainObject(input.nodes)) return fail();
  }
  const migrated = migrateRecipeDoc({ ...input, schemaVersion: input.schemaVersion });
  if (!migrated.ok) {
    problems.push({ code: 'unsupported_schema_version', path: ['schemaVersion'], message: migrated.message });
    return fail();
  }
  const doc = migrated.value;
  const migrations = [...migrated.applied];

  const top = TopSchema.safeParse(doc);
  if (!top.success) {
    for (const issue of top.error.issues) {
      if (issue.path[0] === 'format') continue;
      problems.push({ code: 'bad_recipe', path: issue.path as (string | number)[], message: issueMessage(issue) });
    }
  }

  // Nodes: shape, type, version.
  const entries = new Map<string, Entry>();
  const rawNodes = isPlainObject(doc.nodes) ? doc.nodes : {};
  for (const [id, raw] of Object.entries(rawNodes)) {
    if (!NODE_ID_PATTERN.test(id)) {
      problems.push({ code: 'bad_node', nodeId: id, message: 'node ids are identifiers: letters, digits, _ and - (no dots; links use "<id>.<output>")' });
      continue;
    }
    const parsed = RecipeNodeSchema.safeParse(raw);
    if (!parsed.success) {
      const type = isPlainObject(raw) && typeof raw.type === 'string' ? raw.type : undefined;
      for (const issue of parsed.error.issues) {
        const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
        problems.push({ code: 'bad_node', nodeId: id, nodeType: type, path: ['nodes', id, ...(issue.path as (string | number)[])], message: `${where}${issueMessage(issue)}` });
      }
      continue;
    }
    const node = parsed.data;
    const def = registry.get(node.type);
    const entry: Entry = { id, type: node.type, title: node.title, v: node.v ?? def?.v ?? '', params: node.params ?? {}, in: node.in ?? {} };
    entries.set(id, entry);
    if (!def) {
      problems.push({ code: 'unknown_node_type', nodeId: id, nodeType: node.type, message: `unknown node type "${node.type}" (this loraflow has: ${registry.types().join(', ')})` });
      continue;
    }
    const m = migrateNodeDoc(def, { v: entry.v, params: entry.params, in: entry.in });
    if (!m.ok) {
      problems.push({ code: 'node_version', nodeId: id, nodeType: node.type, message: m.message });
      continue;
    }
    migrations.push(...m.applied.map((a) => `node "${id}": ${a}`));
    Object.assign(entry, { def, v: m.value.v, params: m.value.params, in: m.value.in });
  }

  // Expose entries and overrides.
  const expose = isPlainObject(doc.expose) ? doc.expose : {};
  const exposeTargets = new Map<string, { nodeId: string; param: string; rest: (string | number)[] }>();
  for (const [name, rawEntry] of Object.entries(expose)) {
    const parsed = ExposeEntrySchema.safeParse(rawEntry);
    if (!EXPOSE_NAME_PATTERN.test(name)) {
      problems.push({ code: 'bad_expose', expose: name, message: 'exposed names are identifiers (letters, digits, _ and -)' });
      continue;
    }
    const parts = parsed.success ? parseExposePath(exposePath(parsed.data)) : undefined;
    if (!parsed.success || !parts) {
      problems.push({ code: 'bad_expose', expose: name, message: `expected "<node id>.params.<param>", got ${JSON.stringify(rawEntry)}` });
      continue;
    }
    const entry = entries.get(parts.nodeId);
    if (!entry) {
      const known = Object.hasOwn(rawNodes, parts.nodeId);
      if (!known) problems.push({ code: 'bad_expose', expose: name, message: `path "${exposePath(parsed.data)}" names node "${parts.nodeId}", which does not exist` });
      continue;
    }
    if (entry.def && !Object.hasOwn(entry.def.params.shape, parts.param)) {
      problems.push({
        code: 'bad_expose',
        expose: name,
        nodeId: entry.id,
        nodeType: entry.type,
        param: parts.param,
        message: `path "${exposePath(parsed.data)}": ${entry.type} has no param "${parts.param}" (params: ${entry.def.paramOrder.join(', ') || 'none'})`,
      });
      continue;
    }
    exposeTargets.set(name, parts);
  }
  const overridesByNode = new Map<string, { name: string; param: string; rest: (string | number)[]; raw: unknown }[]>();
  for (const [name, raw] of Object.entries(options.overrides ?? {})) {
    if (!Object.hasOwn(expose, name)) {
      const names = Object.keys(expose);
      problems.push({ code: 'unknown_override', expose: name, message: `--set ${name}: the recipe exposes no such name (exposed: ${names.length > 0 ? names.join(', ') : 'none'})` });
      continue;
    }
    const t = exposeTargets.get(name);
    if (!t) continue;
    const list = overridesByNode.get(t.nodeId) ?? [];
    list.push({ name, param: t.param, rest: t.rest, raw });
    overridesByNode.set(t.nodeId, list);
  }

  // Params.
  const appliedOverrides: Record<string, unknown> = {};
  for (const entry of entries.values()) {
    const def = entry.def;
    if (!def) continue;
    let params = entry.params;
    const overriddenBy = new Map<string, string>();
    for (const o of overridesByNode.get(entry.id) ?? []) {
      const candidates = overrideCandidates(o.raw);
      let chosen = candidates[candidates.length - 1];
      for (const c of candidates) {
        const trial = setAtPath(params, [o.param, ...o.rest], c);
        const r = def.params.safeParse(trial);
        if (r.success || !r.error.issues.some((i) => i.path[0] === o.param)) {
          chosen = c;
          break;
        }
      }
      params = setAtPath(params, [o.param, ...o.rest], chosen);
      overriddenBy.set(o.param, o.name);
      appliedOverrides[o.name] = chosen;
    }
    entry.givenParams = params;
    const r = def.params.safeParse(params);
    if (r.success) {
      entry.validParams = r.data as Record<string, unknown>;
      continue;
    }
    for (const issue of r.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          problems.push({ code: 'bad_param', nodeId: entry.id, nodeType: entry.type, param: key, message: `unknown param (${def.type} params: ${def.paramOrder.join(', ') || 'none'})` });
        }
        continue;
      }
      const param = issue.path.length > 0 ? String(issue.path[0]) : undefined;
      const deeper = issue.path.length > 1 ? ` at ${issue.path.slice(1).join('.')}` : '';
      const by = param && overriddenBy.has(param) ? ` (value from --set ${overriddenBy.get(param)})` : '';
      problems.push({ code: 'bad_param', nodeId: entry.id, nodeType: entry.type, param, message: `${issueMessage(issue)}${deeper}${by}` });
    }
  }

  // Links.
  const deps = new Map<string, string[]>();
  const plannedInputs = new Map<string, Record<string, PlannedLink[]>>();
  for (const entry of entries.values()) {
    const def = entry.def;
    const nodeDeps: string[] = [];
    deps.set(entry.id, nodeDeps);
    const inputs: Record<string, PlannedLink[]> = {};
    const at = { nodeId: entry.id, nodeType: entry.type };
    for (const [name, value] of Object.entries(entry.in)) {
      const links = Array.isArray(value) ? value : [value];
      const port = def?.inputs[name];
      if (def && !port) {
        problems.push({ ...at, code: 'unknown_input', input: name, message: `${def.type} has no input "${name}" (inputs: ${Object.keys(def.inputs).join(', ') || 'none'})` });
      }
      if (port && !port.list && Array.isArray(value)) {
        problems.push({ ...at, code: 'bad_link', input: name, message: `takes one link, got a list of ${value.length}` });
      }
      const planned: PlannedLink[] = [];
      for (const link of links) {
        const m = LINK_PATTERN.exec(link);
        if (!m) {
          problems.push({ ...at, code: 'bad_link', input: name, message: `link "${link}" is not "<node id>.<output name>"` });
          continue;
        }
        const [, srcId, outName] = m as unknown as [string, string, string];
        if (!Object.hasOwn(rawNodes, srcId)) {
          problems.push({ ...at, code: 'link_to_missing_node', input: name, message: `link "${link}": there is no node "${srcId}"` });
          continue;
        }
        nodeDeps.push(srcId);
        const src = entries.get(srcId);
        const srcDef = src?.def;
        if (!srcDef) continue;
        const out = srcDef.outputs[outName];
        if (!out) {
          problems.push({ ...at, code: 'link_to_missing_output', input: name, message: `link "${link}": ${srcDef.type} node "${srcId}" has no output "${outName}" (outputs: ${Object.keys(srcDef.outputs).join(', ') || 'none'})` });
          continue;
        }
        if (port && !portAccepts(port.type, out.type)) {
          problems.push({ ...at, code: 'type_mismatch', input: name, message: `link "${link}" carries ${out.type}, but the input accepts ${formatPortType(port.type)}` });
          continue;
        }
        planned.push({ nodeId: srcId, output: outName, type: out.type });
      }
      if (port) inputs[name] = planned;
    }
    if (def) {
      for (const [name, port] of Object.entries(def.inputs)) {
        const given = entry.in[name];
        const count = given === undefined ? 0 : Array.isArray(given) ? given.length : 1;
        if (count === 0 && !port.optional) {
          problems.push({ ...at, code: 'missing_input', input: name, message: `required input is not linked (expects ${formatPortType(port.type)})` });
        }
        inputs[name] ??= [];
      }
      if (entry.validParams && def.check) {
        const counts = Object.fromEntries(Object.keys(def.inputs).map((k) => [k, inputs[k]!.length]));
        for (const p of def.check(entry.validParams, counts)) problems.push({ ...at, code: 'node_check', input: p.input, param: p.param, message: p.message });
      }
    }
    plannedInputs.set(entry.id, inputs);
  }

  const cycles = findCycles([...entries.keys()], deps);
  for (const cycle of cycles) {
    const first = entries.get(cycle[0]!)!;
    problems.push({ code: 'cycle', nodeId: first.id, nodeType: first.type, message: `nodes form a cycle: ${[...cycle, cycle[0]].join(' → ')}` });
  }

  // Targets.
  let targets: string[];
  if (Array.isArray(doc.outputs)) {
    targets = [];
    for (const t of doc.outputs as unknown[]) {
      if (typeof t === 'string' && Object.hasOwn(rawNodes, t)) targets.push(t);
      else problems.push({ code: 'bad_output_target', path: ['outputs'], message: `outputs names ${JSON.stringify(t)}, which is not a node of this recipe` });
    }
  } else {
    targets = [...entries.values()].filter((e) => e.def?.output).map((e) => e.id).sort();
  }
  if (targets.length === 0 && problems.every((p) => p.code !== 'bad_output_target')) {
    problems.push({ code: 'no_outputs', path: ['outputs'], message: 'nothing to run: the recipe has no output node (save-lora, save-model, …) and no "outputs" list' });
  }

  const needed = ancestors(targets, deps);

  // Paths of the nodes that will run.
  const plannedPaths = new Map<string, PlannedPath[]>();
  if (options.resolvePath) {
    const checkFiles = options.checkFiles ?? true;
    // keyed by what the path names on disk, so no alias of an input can be written over
    const writers = new Map<FileIdentity, { id: string; resolved: string }>();
    const readers = new Map<FileIdentity, { id: string; resolved: string }>();
    for (const id of [...needed].sort()) {
      const entry = entries.get(id);
      if (!entry?.def || !entry.givenParams) continue;
      const at = { nodeId: entry.id, nodeType: entry.type };
      const paths: PlannedPath[] = [];
      for (const pp of entry.def.pathParams) {
        const value = entry.givenParams[pp.name];
        // A non-string path is already reported as a bad param.
        if (typeof value !== 'string' || value === '') continue;
        let resolved: string;
        try {
          resolved = options.resolvePath(value, pp.kind);
        } catch (e) {
          problems.push({ ...at, code: 'bad_path', param: pp.name, message: (e as Error).message });
          continue;
        }
        paths.push({ ...pp, value, resolved });
        let identity: FileIdentity;
        try {
          identity = fileIdentity(resolved, pp.mode === 'read' ? 'input' : 'output');
        } catch (e) {
          problems.push({ ...at, code: 'bad_path', param: pp.name, message: (e as Error).message });
          continue;
        }
        if (pp.mode === 'read') {
          readers.set(identity, { id, resolved });
          if (checkFiles) {
            let st;
            try {
              st = statSync(resolved);
            } catch {
              st = undefined;
            }
            if (!st) problems.push({ ...at, code: 'file_not_found', param: pp.name, message: `${resolved}: no such file` });
            else if (!st.isFile()) problems.push({ ...at, code: 'file_not_found', param: pp.name, message: `${resolved}: not a file` });
          }
        } else {
          const notAFile = outputPathProblem(value, resolved);
          if (notAFile) problems.push({ ...at, code: 'bad_path', param: pp.name, message: notAFile });
          const other = writers.get(identity);
          if (other) problems.push({ ...at, code: 'output_conflict', param: pp.name, message: `${resolved} is also written by node "${other.id}"${other.resolved === resolved ? '' : ` (as ${other.resolved})`}` });
          writers.set(identity, { id, resolved });
        }
      }
      plannedPaths.set(id, paths);
    }
    for (const [identity, writer] of writers) {
      const reader = readers.get(identity);
      if (reader) {
        const e = entries.get(writer.id)!;
        const alias = reader.resolved === writer.resolved ? '' : ` (the same file as ${writer.resolved})`;
        problems.push({ code: 'output_conflict', nodeId: writer.id, nodeType: e.type, message: `would overwrite ${reader.resolved}${alias}, which node "${reader.id}" reads (inputs are never modified)` });
      }
    }
  }

  if (problems.length > 0) return fail();

  const nodes = new Map<string, PlannedNode>();
  for (const id of needed) {
    const e = entries.get(id)!;
    nodes.set(id, { id, def: e.def!, title: e.title ?? e.def!.title, params: e.validParams!, inputs: plannedInputs.get(id)!, paths: plannedPaths.get(id) ?? [] });
  }
  const recipe: Record<string, unknown> = { ...doc, nodes: Object.fromEntries(Object.entries(rawNodes).map(([id, raw]) => [id, migratedNode(raw as Record<string, unknown>, entries.get(id)!)])) };
  return { ok: true, problems: [], plan: { recipe, nodes, order: topologicalOrder(needed, deps), targets, overrides: appliedOverrides, migrations } };
}

function migratedNode(raw: Record<string, unknown>, e: Entry): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw, v: e.v };
  if (raw.params !== undefined || Object.keys(e.params).length > 0) out.params = e.params;
  if (raw.in !== undefined || Object.keys(e.in).length > 0) out.in = e.in;
  return out;
}
