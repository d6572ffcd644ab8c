/**
 * Provenance: every file a save node writes carries the recipe that made it (without `ui`), the
 * `--set` overrides and the loraflow version, as JSON under the metadata key `loraflow.recipe`.
 * `loraflow recipe FILE` turns it back into a runnable recipe.
 */
import type { RunContext } from '../src/graph/node.ts';

export const PROVENANCE_KEY = 'loraflow.recipe';

export function provenanceMetadata(ctx: RunContext): Record<string, string> {
  const p = ctx.provenance();
  return { [PROVENANCE_KEY]: JSON.stringify({ recipe: p.recipe, overrides: p.overrides, version: p.version, node: p.nodeId }) };
}
