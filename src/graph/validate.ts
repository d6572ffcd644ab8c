import type { NodeDefinition, PathParamInfo } from './node.ts';
import type { Problem } from './problems.ts';
import type { NodeRegistry } from './registry.ts';
import type { PathResolver } from './roots.ts';
import { ancestors, topologicalOrder } from './schedule.ts';
import { isPlainObject, type Entry, type Validation } from './validate/context.ts';
import { checkDocument } from './validate/document.ts';
import { checkExpose } from './validate/expose.ts';
import { checkLinks, checkTargets } from './validate/links.ts';
import { checkNodes } from './validate/nodes.ts';
import { checkParams } from './validate/params.ts';
import { checkPaths } from './validate/paths.ts';

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

/**
 * Validates a recipe as a whole, in named steps sharing one problems collector (validate/): the
 * document, its nodes, expose entries and overrides, params, links and cycles, targets, the paths
 * of the nodes that will run; then the plan.
 */
export function validateRecipe(input: unknown, registry: NodeRegistry, options: ValidateOptions = {}): ValidateResult {
  const problems: Problem[] = [];
  const document = checkDocument(input, problems);
  if (!document) return { ok: false, problems };
  const { doc, migrations } = document;
  const va: Validation = { problems, registry, doc, rawNodes: isPlainObject(doc.nodes) ? doc.nodes : {}, entries: new Map(), migrations };
  checkNodes(va);
  const overrides = checkParams(va, checkExpose(va, options.overrides ?? {}));
  const links = checkLinks(va);
  const targets = checkTargets(va);
  const needed = ancestors(targets, links.deps);
  const paths = options.resolvePath ? checkPaths(va, needed, options.resolvePath, options.checkFiles ?? true) : new Map<string, PlannedPath[]>();
  if (problems.length > 0) return { ok: false, problems };

  const nodes = new Map<string, PlannedNode>();
  for (const id of needed) {
    const e = va.entries.get(id)!;
    nodes.set(id, { id, def: e.def!, title: e.title ?? e.def!.title, params: e.validParams!, inputs: links.inputs.get(id)!, paths: paths.get(id) ?? [] });
  }
  const recipe: Record<string, unknown> = { ...doc, nodes: Object.fromEntries(Object.entries(va.rawNodes).map(([id, raw]) => [id, migratedNode(raw as Record<string, unknown>, va.entries.get(id)!)])) };
  return { ok: true, problems: [], plan: { recipe, nodes, order: topologicalOrder(needed, links.deps), targets, overrides, migrations } };
}

function migratedNode(raw: Record<string, unknown>, e: Entry): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw, v: e.v };
  if (raw.params !== undefined || Object.keys(e.params).length > 0) out.params = e.params;
  if (raw.in !== undefined || Object.keys(e.in).length > 0) out.in = e.in;
  return out;
}
