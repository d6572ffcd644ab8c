/** The recipes behind the single-operation commands: each command is sugar for one of these. */
import { RECIPE_FORMAT, RECIPE_SCHEMA_VERSION } from '../../graph/recipe.ts';
import { registry } from '../../../nodes/index.ts';

export interface RecipeNodeDoc {
  type: string;
  v: string;
  params?: Record<string, unknown>;
  in?: Record<string, string | string[]>;
}

/** A node of the current version of `type`, with only the params that are set. */
export function node(type: string, params: Record<string, unknown> = {}, links: Record<string, string | string[]> = {}): RecipeNodeDoc {
  const def = registry.get(type);
  if (!def) throw new Error(`built-in recipe uses unknown node type "${type}"`);
  const set = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined));
  return { type, v: def.v, ...(Object.keys(links).length > 0 ? { in: links } : {}), ...(Object.keys(set).length > 0 ? { params: set } : {}) };
}

export function recipeDoc(name: string, description: string, nodes: Record<string, RecipeNodeDoc>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { format: RECIPE_FORMAT, schemaVersion: RECIPE_SCHEMA_VERSION, meta: { name, description }, nodes, ...extra };
}
