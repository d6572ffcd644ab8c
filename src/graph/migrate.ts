import type { NodeDefinition } from './node.ts';
import { RECIPE_SCHEMA_VERSION } from './recipe.ts';
import { formatSemver, parseSemver } from './semver.ts';

/**
 * Migrations keep old recipes running. Two tables:
 *  - `RECIPE_MIGRATIONS[n]` rewrites a whole document from `schemaVersion` n to n+1 (pure functions,
 *    applied in order on load: the chaiNNer pattern);
 *  - each node definition's `migrate[m]` rewrites one node's params and links from major version m to
 *    m+1. Within a major version nothing is rewritten: newer minors only add params with defaults.
 *    A recipe needing a newer major than this loraflow has, or a missing step, is a validation
 *    problem naming the node (InvokeAI's rule: never guess across a major version).
 */

export type RecipeMigration = (doc: Record<string, unknown>) => Record<string, unknown>;

/** Version 1 is the first published format; add `n: (doc) => doc'` here when version n+1 appears. */
export const RECIPE_MIGRATIONS: Readonly<Record<number, RecipeMigration>> = {};

export type MigrateResult<T> = { ok: true; value: T; applied: string[] } | { ok: false; message: string };

export function migrateRecipeDoc(
  doc: Record<string, unknown>,
  table: Readonly<Record<number, RecipeMigration>> = RECIPE_MIGRATIONS,
  current: number = RECIPE_SCHEMA_VERSION,
): MigrateResult<Record<string, unknown>> {
  const from = doc.schemaVersion;
  if (typeof from !== 'number' || !Number.isInteger(from) || from < 1) {
    return { ok: false, message: `schemaVersion must be a positive integer (this loraflow writes ${current}), got ${JSON.stringify(from)}` };
  }
  if (from > current) {
    return { ok: false, message: `schemaVersion ${from} is newer than this loraflow understands (${current}); upgrade loraflow` };
  }
  let out = doc;
  const applied: string[] = [];
  for (let v = from; v < current; v++) {
    const step = table[v];
    if (!step) return { ok: false, message: `no migration from schemaVersion ${v} to ${v + 1}` };
    out = { ...step(out), schemaVersion: v + 1 };
    applied.push(`recipe schemaVersion ${v} → ${v + 1}`);
  }
  return { ok: true, value: out, applied };
}

export interface NodeDoc {
  v: string;
  params: Record<string, unknown>;
  in: Record<string, string | string[]>;
}

export function migrateNodeDoc(def: NodeDefinition, node: NodeDoc): MigrateResult<NodeDoc> {
  const have = parseSemver(def.v)!;
  const want = parseSemver(node.v);
  if (!want) return { ok: false, message: `v "${node.v}" is not a major.minor.patch version` };
  if (want.major > have.major) {
    return { ok: false, message: `recipe needs ${def.type} v${node.v}, this loraflow has v${def.v}; upgrade loraflow` };
  }
  let { params, in: links } = node;
  const applied: string[] = [];
  for (let m = want.major; m < have.major; m++) {
    const step = def.migrate[m];
    if (!step) {
      return { ok: false, message: `${def.type} v${node.v} cannot be upgraded to v${def.v} (no migration from major ${m} to ${m + 1}); re-add the node` };
    }
    ({ params, in: links } = step({ params, in: links }));
    applied.push(`${def.type} v${m}.x → v${m + 1}.x`);
  }
  return { ok: true, value: { v: formatSemver(have), params, in: links }, applied };
}
