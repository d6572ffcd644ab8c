/** The document step: format marker, schema-version migration, top-level shape. */
import { z } from 'zod';
import { migrateRecipeDoc } from '../migrate.ts';
import type { Problem } from '../problems.ts';
import { RecipeSchema } from '../recipe.ts';
import { isPlainObject, issueMessage } from './context.ts';

const TopSchema = RecipeSchema.omit({ nodes: true, expose: true }).extend({
  nodes: z.record(z.string(), z.unknown()),
  expose: z.record(z.string(), z.unknown()).optional(),
});

/** The migrated document and the migrations applied, or undefined when nothing further can be checked. */
export function checkDocument(input: unknown, problems: Problem[]): { doc: Record<string, unknown>; migrations: string[] } | undefined {
  if (!isPlainObject(input)) {
    problems.push({ code: 'bad_recipe', message: `a recipe is an object with format "loraflow.recipe" and nodes, got ${Array.isArray(input) ? 'an array' : typeof input}` });
    return undefined;
  }
  if (input.format !== 'loraflow.recipe') {
    const hint = Array.isArray(input.nodes) && Array.isArray(input.links) ? ' (this looks like a ComfyUI/litegraph workflow, not a loraflow recipe)' : '';
    problems.push({ code: 'bad_format', path: ['format'], message: `format must be "loraflow.recipe", got ${JSON.stringify(input.format)}${hint}` });
    if (!isPlainObject(input.nodes)) return undefined;
  }
  const migrated = migrateRecipeDoc({ ...input, schemaVersion: input.schemaVersion });
  if (!migrated.ok) {
    problems.push({ code: 'unsupported_schema_version', path: ['schemaVersion'], message: migrated.message });
    return undefined;
  }
  const doc = migrated.value;
  const top = TopSchema.safeParse(doc);
  if (!top.success) {
    for (const issue of top.error.issues) {
      if (issue.path[0] === 'format') continue;
      problems.push({ code: 'bad_recipe', path: issue.path as (string | number)[], message: issueMessage(issue) });
    }
  }
  return { doc, migrations: [...migrated.applied] };
}
