/**
 * Provenance: every file a save node writes carries the recipe that made it (canonical, without
 * `ui`), the `--set` overrides and the loraflow version, as JSON under the metadata key
 * `loraflow.recipe`. `loraflow recipe FILE` and the server's recipe-from-file turn it back into a
 * runnable recipe. The file itself is someone else's business: this sees only the metadata string.
 */
import { z } from 'zod';
import { LoraflowError } from '../errors.ts';
import type { Provenance } from './node.ts';
import { parseExposePath, setAtPath } from './overrides.ts';
import { RecipeSchema, exposePath, type ExposeEntry } from './recipe.ts';

export const PROVENANCE_KEY = 'loraflow.recipe';

/** What is stored: `node` rather than `nodeId`, and extra keys tolerated, so newer writers still read. */
const StoredProvenanceSchema = z.looseObject({
  recipe: z.unknown(),
  overrides: z.record(z.string(), z.unknown()).default({}),
  version: z.string().optional(),
  /** The node that wrote the file. */
  node: z.string().optional(),
});

export interface RecoveredRecipe {
  /** The recipe with the run's overrides written into the params they name: runs to the same file. */
  recipe: Record<string, unknown>;
  /** The overrides the original run used (already applied above). */
  overrides: Record<string, unknown>;
  version?: string;
  /** The node that wrote the file. */
  nodeId?: string;
}

/** Stored provenance that cannot be turned back into a recipe; the user's file is at fault. */
export class ProvenanceError extends LoraflowError {
  constructor(
    message: string,
    /** Set when the schema check failed, so an API can point at the field. */
    readonly zodError?: z.ZodError,
  ) {
    super('input', 'BAD_PROVENANCE', message);
    this.name = 'ProvenanceError';
  }
}

/** The metadata entry a save node adds to the file it writes. */
export function provenanceMetadata(ctx: { provenance(): Provenance }): Record<string, string> {
  const p = ctx.provenance();
  return { [PROVENANCE_KEY]: JSON.stringify({ recipe: p.recipe, overrides: p.overrides, version: p.version, node: p.nodeId }) };
}

/** The stored provenance text of a file's metadata map, if it has one. */
export function storedProvenance(metadata: Readonly<Record<string, string>> | undefined): string | undefined {
  return metadata?.[PROVENANCE_KEY];
}

/** The recipe with the run's overrides written into the params they named, so it runs as it ran. */
export function bakeOverrides(recipe: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const expose = (recipe.expose ?? {}) as Record<string, ExposeEntry>;
  const nodes = { ...(recipe.nodes as Record<string, Record<string, unknown>>) };
  for (const [name, value] of Object.entries(overrides)) {
    const entry = expose[name];
    const parts = entry ? parseExposePath(exposePath(entry)) : undefined;
    if (!parts || !nodes[parts.nodeId]) throw new Error(`provenance names override "${name}", which the embedded recipe does not expose`);
    const n = nodes[parts.nodeId]!;
    nodes[parts.nodeId] = { ...n, params: setAtPath((n.params ?? {}) as Record<string, unknown>, [parts.param, ...parts.rest], value) };
  }
  return { ...recipe, nodes };
}

/**
 * Turns stored provenance back into a runnable recipe. The overrides of the original run are folded
 * into the params their `expose` entries name, so running the recipe as it is (editor or
 * `loraflow run`, no `--set`) reproduces the file. `source` names the file in errors.
 */
export function decodeProvenance(stored: string, source: string): RecoveredRecipe {
  let raw: unknown;
  try {
    raw = JSON.parse(stored);
  } catch (e) {
    throw new ProvenanceError(`${source}: the "${PROVENANCE_KEY}" metadata is not JSON (${(e as Error).message})`);
  }
  const p = StoredProvenanceSchema.safeParse(raw);
  if (!p.success) throw new ProvenanceError(`${source}: the "${PROVENANCE_KEY}" metadata has an unexpected shape`, p.error);
  const r = RecipeSchema.safeParse(p.data.recipe);
  if (!r.success) throw new ProvenanceError(`${source}: the stored recipe does not match the recipe schema`, r.error);
  let recipe: Record<string, unknown>;
  try {
    recipe = bakeOverrides(r.data as Record<string, unknown>, p.data.overrides);
  } catch (e) {
    throw new ProvenanceError(`${source}: ${(e as Error).message}`);
  }
  return { recipe, overrides: p.data.overrides, version: p.data.version, nodeId: p.data.node };
}
