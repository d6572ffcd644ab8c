import { z } from 'zod';
import { PROVENANCE_KEY } from '../nodes/provenance.ts';
import { bakeOverrides } from '../src/cli/commands/recipe.ts';
import { RecipeSchema } from '../src/graph/index.ts';
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
  let recipe: Record<string, unknown>;
  try {
    recipe = bakeOverrides(r.data as Record<string, unknown>, p.data.overrides);
  } catch (e) {
    throw new ApiError(422, 'bad_provenance', `${source}: ${(e as Error).message}`);
  }
  return { recipe, overrides: p.data.overrides, version: p.data.version, nodeId: p.data.node };
}
