/**
 * Writes schema/recipe.schema.json from the zod schema in src/graph/recipe.ts (the single source).
 * Run: node --import tsx schema/generate.ts   (test/graph-recipe.test.ts fails when the file is stale)
 */
import { writeFileSync } from 'node:fs';
import { recipeJsonSchema } from '../src/graph/recipe.ts';

export const SCHEMA_FILE = new URL('./recipe.schema.json', import.meta.url);

export function recipeSchemaText(): string {
  return `${JSON.stringify(recipeJsonSchema(), null, 2)}\n`;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  writeFileSync(SCHEMA_FILE, recipeSchemaText());
  process.stdout.write(`wrote ${SCHEMA_FILE.pathname}\n`);
}
