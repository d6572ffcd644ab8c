/**
 * The links step: every input's links name an existing node and output of an accepted type, required
 * inputs are linked, the node's own cross-checks pass, and the links form no cycle.
 */
import { formatPortType, portAccepts } from '../ports.ts';
import { LINK_PATTERN } from '../recipe.ts';
import { findCycles } from '../schedule.ts';
import type { PlannedLink } from '../validate.ts';
import type { Entry, Validation } from './context.ts';

export interface LinkCheck {
  /** Node ids each node depends on. */
  deps: Map<string, string[]>;
  /** Links per input, per node. */
  inputs: Map<string, Record<string, PlannedLink[]>>;
}

/** The planned link of one `"<id>.<output>"` string, or undefined after reporting why it is not one. */
function checkLink(va: Validation, entry: Entry, input: string, link: string, deps: string[]): PlannedLink | undefined {
  const at = { nodeId: entry.id, nodeType: entry.type, input };
  const m = LINK_PATTERN.exec(link);
  if (!m) {
    va.problems.push({ ...at, code: 'bad_link', message: `link "${link}" is not "<node id>.<output name>"` });
    return undefined;
  }
  const [, srcId, outName] = m as unknown as [string, string, string];
  if (!Object.hasOwn(va.rawNodes, srcId)) {
    va.problems.push({ ...at, code: 'link_to_missing_node', message: `link "${link}": there is no node "${srcId}"` });
    return undefined;
  }
  deps.push(srcId);
  const srcDef = va.entries.get(srcId)?.def;
  if (!srcDef) return undefined;
  const out = srcDef.outputs[outName];
  if (!out) {
    va.problems.push({ ...at, code: 'link_to_missing_output', message: `link "${link}": ${srcDef.type} node "${srcId}" has no output "${outName}" (outputs: ${Object.keys(srcDef.outputs).join(', ') || 'none'})` });
    return undefined;
  }
  const port = entry.def?.inputs[input];
  if (port && !portAccepts(port.type, out.type)) {
    va.problems.push({ ...at, code: 'type_mismatch', message: `link "${link}" carries ${out.type}, but the input accepts ${formatPortType(port.type)}` });
    return undefined;
  }
  return { nodeId: srcId, output: outName, type: out.type };
}

/** Required inputs linked, and the node definition's own check of its params against its link counts. */
function checkNodeInputs(va: Validation, entry: Entry, inputs: Record<string, PlannedLink[]>): void {
  const def = entry.def!;
  const at = { nodeId: entry.id, nodeType: entry.type };
  for (const [name, port] of Object.entries(def.inputs)) {
    const given = entry.in[name];
    const count = given === undefined ? 0 : Array.isArray(given) ? given.length : 1;
    if (count === 0 && !port.optional) {
      va.problems.push({ ...at, code: 'missing_input', input: name, message: `required input is not linked (expects ${formatPortType(port.type)})` });
    }
    inputs[name] ??= [];
  }
  if (entry.validParams && def.check) {
    const counts = Object.fromEntries(Object.keys(def.inputs).map((k) => [k, inputs[k]!.length]));
    for (const p of def.check(entry.validParams, counts)) va.problems.push({ ...at, code: 'node_check', input: p.input, param: p.param, message: p.message });
  }
}

export function checkLinks(va: Validation): LinkCheck {
  const deps = new Map<string, string[]>();
  const planned = new Map<string, Record<string, PlannedLink[]>>();
  for (const entry of va.entries.values()) {
    const def = entry.def;
    const nodeDeps: string[] = [];
    deps.set(entry.id, nodeDeps);
    const inputs: Record<string, PlannedLink[]> = {};
    for (const [name, value] of Object.entries(entry.in)) {
      const port = def?.inputs[name];
      const at = { nodeId: entry.id, nodeType: entry.type, input: name };
      if (def && !port) va.problems.push({ ...at, code: 'unknown_input', message: `${def.type} has no input "${name}" (inputs: ${Object.keys(def.inputs).join(', ') || 'none'})` });
      if (port && !port.list && Array.isArray(value)) va.problems.push({ ...at, code: 'bad_link', message: `takes one link, got a list of ${value.length}` });
      const links = (Array.isArray(value) ? value : [value]).flatMap((link) => checkLink(va, entry, name, link, nodeDeps) ?? []);
      if (port) inputs[name] = links;
    }
    if (def) checkNodeInputs(va, entry, inputs);
    planned.set(entry.id, inputs);
  }
  for (const cycle of findCycles([...va.entries.keys()], deps)) {
    const first = va.entries.get(cycle[0]!)!;
    va.problems.push({ code: 'cycle', nodeId: first.id, nodeType: first.type, message: `nodes form a cycle: ${[...cycle, cycle[0]].join(' → ')}` });
  }
  return { deps, inputs: planned };
}

/** The target nodes: the document's `outputs` list, else every output node. */
export function checkTargets(va: Validation): string[] {
  let targets: string[];
  if (Array.isArray(va.doc.outputs)) {
    targets = [];
    for (const t of va.doc.outputs as unknown[]) {
      if (typeof t === 'string' && Object.hasOwn(va.rawNodes, t)) targets.push(t);
      else va.problems.push({ code: 'bad_output_target', path: ['outputs'], message: `outputs names ${JSON.stringify(t)}, which is not a node of this recipe` });
    }
  } else {
    targets = [...va.entries.values()].filter((e) => e.def?.output).map((e) => e.id).sort();
  }
  if (targets.length === 0 && va.problems.every((p) => p.code !== 'bad_output_target')) {
    va.problems.push({ code: 'no_outputs', path: ['outputs'], message: 'nothing to run: the recipe has no output node (save-lora, save-model, …) and no "outputs" list' });
  }
  return targets;
}
