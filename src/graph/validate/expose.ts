/** The expose step: each exposed name points at a real param, and each `--set` override at an exposed name. */
import { parseExposePath } from '../overrides.ts';
import { EXPOSE_NAME_PATTERN, ExposeEntrySchema, exposePath } from '../recipe.ts';
import { isPlainObject, type Validation } from './context.ts';

export interface Override {
  name: string;
  param: string;
  rest: (string | number)[];
  raw: unknown;
}

type ExposeTarget = { nodeId: string; param: string; rest: (string | number)[] };

function exposeTargets(va: Validation, expose: Record<string, unknown>): Map<string, ExposeTarget> {
  const targets = new Map<string, ExposeTarget>();
  for (const [name, rawEntry] of Object.entries(expose)) {
    const parsed = ExposeEntrySchema.safeParse(rawEntry);
    if (!EXPOSE_NAME_PATTERN.test(name)) {
      va.problems.push({ code: 'bad_expose', expose: name, message: 'exposed names are identifiers (letters, digits, _ and -)' });
      continue;
    }
    const parts = parsed.success ? parseExposePath(exposePath(parsed.data)) : undefined;
    if (!parsed.success || !parts) {
      va.problems.push({ code: 'bad_expose', expose: name, message: `expected "<node id>.params.<param>", got ${JSON.stringify(rawEntry)}` });
      continue;
    }
    const entry = va.entries.get(parts.nodeId);
    if (!entry) {
      const known = Object.hasOwn(va.rawNodes, parts.nodeId);
      if (!known) va.problems.push({ code: 'bad_expose', expose: name, message: `path "${exposePath(parsed.data)}" names node "${parts.nodeId}", which does not exist` });
      continue;
    }
    if (entry.def && !Object.hasOwn(entry.def.params.shape, parts.param)) {
      va.problems.push({
        code: 'bad_expose',
        expose: name,
        nodeId: entry.id,
        nodeType: entry.type,
        param: parts.param,
        message: `path "${exposePath(parsed.data)}": ${entry.type} has no param "${parts.param}" (params: ${entry.def.paramOrder.join(', ') || 'none'})`,
      });
      continue;
    }
    targets.set(name, parts);
  }
  return targets;
}

/** The overrides per node id they change. */
export function checkExpose(va: Validation, overrides: Readonly<Record<string, unknown>>): Map<string, Override[]> {
  const expose = isPlainObject(va.doc.expose) ? va.doc.expose : {};
  const targets = exposeTargets(va, expose);
  const byNode = new Map<string, Override[]>();
  for (const [name, raw] of Object.entries(overrides)) {
    if (!Object.hasOwn(expose, name)) {
      const names = Object.keys(expose);
      va.problems.push({ code: 'unknown_override', expose: name, message: `--set ${name}: the recipe exposes no such name (exposed: ${names.length > 0 ? names.join(', ') : 'none'})` });
      continue;
    }
    const t = targets.get(name);
    if (!t) continue;
    const list = byNode.get(t.nodeId) ?? [];
    list.push({ name, param: t.param, rest: t.rest, raw });
    byNode.set(t.nodeId, list);
  }
  return byNode;
}
