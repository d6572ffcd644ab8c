/** The params step: overrides applied (each `--set` string tried as given, then as JSON), then each node's params schema. */
import { overrideCandidates, setAtPath } from '../overrides.ts';
import { issueMessage, type Entry, type Validation } from './context.ts';
import type { Override } from './expose.ts';

/** Applies a node's overrides to its params; which exposed name set each param, and the values chosen. */
function applyOverrides(entry: Entry, overrides: readonly Override[], applied: Record<string, unknown>): { params: Record<string, unknown>; overriddenBy: Map<string, string> } {
  const def = entry.def!;
  let params = entry.params;
  const overriddenBy = new Map<string, string>();
  for (const o of overrides) {
    const candidates = overrideCandidates(o.raw);
    let chosen = candidates[candidates.length - 1];
    for (const c of candidates) {
      const r = def.params.safeParse(setAtPath(params, [o.param, ...o.rest], c));
      if (r.success || !r.error.issues.some((i) => i.path[0] === o.param)) {
        chosen = c;
        break;
      }
    }
    params = setAtPath(params, [o.param, ...o.rest], chosen);
    overriddenBy.set(o.param, o.name);
    applied[o.name] = chosen;
  }
  return { params, overriddenBy };
}

/** The override values as applied, by exposed name. */
export function checkParams(va: Validation, overridesByNode: ReadonlyMap<string, readonly Override[]>): Record<string, unknown> {
  const applied: Record<string, unknown> = {};
  for (const entry of va.entries.values()) {
    const def = entry.def;
    if (!def) continue;
    const { params, overriddenBy } = applyOverrides(entry, overridesByNode.get(entry.id) ?? [], applied);
    entry.givenParams = params;
    const r = def.params.safeParse(params);
    if (r.success) {
      entry.validParams = r.data as Record<string, unknown>;
      continue;
    }
    for (const issue of r.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          va.problems.push({ code: 'bad_param', nodeId: entry.id, nodeType: entry.type, param: key, message: `unknown param (${def.type} params: ${def.paramOrder.join(', ') || 'none'})` });
        }
        continue;
      }
      const param = issue.path.length > 0 ? String(issue.path[0]) : undefined;
      const deeper = issue.path.length > 1 ? ` at ${issue.path.slice(1).join('.')}` : '';
      const by = param && overriddenBy.has(param) ? ` (value from --set ${overriddenBy.get(param)})` : '';
      va.problems.push({ code: 'bad_param', nodeId: entry.id, nodeType: entry.type, param, message: `${issueMessage(issue)}${deeper}${by}` });
    }
  }
  return applied;
}
