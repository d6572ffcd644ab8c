import { z } from 'zod';
import { PROVENANCE_KEY } from '../nodes/provenance.ts';
import { RecipeSchema, exposePath, parseExposePath } from '../src/graph/index.ts';
import { setAtPath } from '../src/graph/overrides.ts';
import { ApiError, zodDetails } from './errors.ts';

export { PROVENANCE_KEY };

const ProvenanceSchema = z.looseObject({
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

/**
 * Turns the stored provenance back into a runnable recipe. The overrides of the original run are
 * folded into the params their `expose` entries name, so loading and running the recipe as it is
 * (editor or `loraflow run`, no `--set`) reproduces the file.
 */
export function recipeFromProvenance(stored: string, source: string): RecoveredRecipe {
  let raw: unknown;
  try {
    raw = JSON.parse(stored);
  } catch (e) {
    throw new ApiError(422, 'bad_provenance', `${source}: the "${PROVENANCE_KEY}" metadata is not JSON (${(e as Error).message})`);
  }
  const p = ProvenanceSchema.safeParse(raw);
  if (!p.success) throw new ApiError(422, 'bad_provenance', `${source}: the "${PROVENANCE_KEY}" metadata has an unexpected shape`, zodDetails(p.error));
  const r = RecipeSchema.safeParse(p.data.recipe);
  if (!r.success) throw new ApiError(422, 'bad_provenance', `${source}: the stored recipe does not match the recipe schema`, zodDetails(r.error));
  const recipe = structuredClone(p.data.recipe) as Record<string, unknown> & { nodes: Record<string, { params?: Record<string, unknown> }> };
  for (const [name, value] of Object.entries(p.data.overrides)) {
    const entry = r.data.expose?.[name];
    const parts = entry === undefined ? undefined : parseExposePath(exposePath(entry));
    const node = parts ? recipe.nodes[parts.nodeId] : undefined;
    if (!parts || !node) throw new ApiError(422, 'bad_provenance', `${source}: override "${name}" names no exposed param of the stored recipe`);
    node.params = setAtPath(node.params ?? {}, [parts.param, ...parts.rest], value);
  }
  return { recipe, overrides: p.data.overrides, version: p.data.version, nodeId: p.data.node };
}
