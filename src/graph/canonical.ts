/**
 * Canonical serialisation: the same recipe always saves to the same bytes, so recipes diff cleanly
 * in git. Keys are sorted (the document's and each node's structural keys in a fixed reading order,
 * everything else alphabetically), arrays keep their order (link order is meaningful) except
 * `outputs`, which is a set; 2-space indentation, newline at the end, `ui` last.
 */

const TOP_ORDER = ['$schema', 'format', 'schemaVersion', 'meta', 'nodes', 'outputs', 'expose'];
const NODE_ORDER = ['type', 'v', 'title', 'in', 'params'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function orderKeys(keys: string[], fixed: readonly string[]): string[] {
  const known = fixed.filter((k) => keys.includes(k));
  const rest = keys.filter((k) => !fixed.includes(k) && k !== 'ui').sort();
  return [...known, ...rest, ...(keys.includes('ui') ? ['ui'] : [])];
}

/** A copy with every object's keys sorted (recursively); `undefined` members dropped. */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) if (value[k] !== undefined) out[k] = sortKeysDeep(value[k]);
  return out;
}

export function canonicalRecipe(doc: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of orderKeys(Object.keys(doc), TOP_ORDER)) {
    const v = doc[k];
    if (v === undefined) continue;
    if (k === 'nodes' && isPlainObject(v)) {
      const nodes: Record<string, unknown> = {};
      for (const id of Object.keys(v).sort()) {
        const node = v[id];
        if (!isPlainObject(node)) {
          nodes[id] = node;
          continue;
        }
        const n: Record<string, unknown> = {};
        for (const nk of orderKeys(Object.keys(node), NODE_ORDER)) if (node[nk] !== undefined) n[nk] = sortKeysDeep(node[nk]);
        nodes[id] = n;
      }
      out[k] = nodes;
    } else if (k === 'outputs' && Array.isArray(v)) {
      out[k] = [...v].sort();
    } else out[k] = sortKeysDeep(v);
  }
  return out;
}

/** The canonical text of a recipe (what `save` writes). */
export function recipeToJson(doc: Record<string, unknown>): string {
  return `${JSON.stringify(canonicalRecipe(doc), null, 2)}\n`;
}

/** The recipe without its editor state: what execution, caching and provenance see. */
export function withoutUi(doc: Record<string, unknown>): Record<string, unknown> {
  const { ui: _ui, ...rest } = doc;
  return rest;
}

/** Compact sorted-key JSON, the input of content hashes. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(sortKeysDeep(value));
}
