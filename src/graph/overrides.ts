/**
 * Headless overrides: `expose` gives names to param paths (`"alpha": "merge.params.alpha"`), and
 * `--set alpha=0.5` sets them. Values from the command line are strings; each is tried as given and
 * then as JSON (`0.5`, `true`, `[1, 0.5]`), and the first that the node's param schema accepts wins,
 * so `--set name=123` stays a string for a string param and becomes a number for a number param.
 */

export interface ExposePathParts {
  nodeId: string;
  param: string;
  /** Deeper segments into the param's value (array indices as numbers). */
  rest: (string | number)[];
}

export function parseExposePath(path: string): ExposePathParts | undefined {
  const parts = path.split('.');
  if (parts.length < 3 || parts[1] !== 'params' || parts.some((p) => p === '')) return undefined;
  const [nodeId, , param, ...rest] = parts;
  return { nodeId: nodeId!, param: param!, rest: rest.map((s) => (/^\d+$/.test(s) ? Number(s) : s)) };
}

/** `["a=1", "b=x=y"]` → `{ a: "1", b: "x=y" }`; throws naming the bad entry. */
export function parseSetArgs(list: readonly string[]): Record<string, string> {
  const entries = list.map((item): [string, string] => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`--set "${item}": expected name=value`);
    return [item.slice(0, eq), item.slice(eq + 1)];
  });
  // fromEntries defines own properties: `--set __proto__=1` is a name like any other (and then unknown), not the prototype
  return Object.fromEntries(entries);
}

/** Values to try for an override, in order. */
export function overrideCandidates(raw: unknown): unknown[] {
  if (typeof raw !== 'string') return [raw];
  try {
    const parsed: unknown = JSON.parse(raw);
    return parsed === raw ? [raw] : [raw, parsed];
  } catch {
    return [raw];
  }
}

/** A copy of `root` with `value` placed at `path` (objects and arrays created as needed). */
export function setAtPath(root: Record<string, unknown>, path: readonly (string | number)[], value: unknown): Record<string, unknown> {
  const clone = (v: unknown): unknown => (Array.isArray(v) ? [...v] : typeof v === 'object' && v !== null ? { ...v } : v);
  const out = clone(root) as Record<string, unknown>;
  let cur: Record<string | number, unknown> = out;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    const next = cur[key];
    const made = next === undefined || next === null || typeof next !== 'object' ? (typeof path[i + 1] === 'number' ? [] : {}) : clone(next);
    cur[key] = made;
    cur = made as Record<string | number, unknown>;
  }
  cur[path[path.length - 1]!] = value;
  return out;
}
