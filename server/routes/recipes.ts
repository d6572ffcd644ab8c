import { Router } from 'express';
import YAML from 'yaml';
import { z } from 'zod';
import { canonicalRecipe, formatProblems, recipeToJson } from '../../src/graph/index.ts';
import type { Engine } from '../engine.ts';
import { parseOr400 } from '../errors.ts';
import { parseRecipeDoc, parseRecipeTextOr400, type RecipeStore } from '../recipe-store.ts';

const saveBody = z.strictObject({ recipe: z.unknown() });
const parseBody = z.strictObject({ text: z.string().max(4 * 1024 * 1024), source: z.string().max(200).optional() });
const exportBody = z.strictObject({ recipe: z.unknown(), format: z.enum(['json', 'yaml']).default('json') });
const validateBody = z.strictObject({ recipe: z.unknown(), overrides: z.record(z.string(), z.unknown()).default({}) });

/** Problems of a recipe the editor holds, as data and as the text the CLI prints. */
function report(engine: Engine, recipe: unknown, overrides: Record<string, unknown> = {}) {
  const problems = engine.validate(recipe, overrides);
  return { ok: problems.length === 0, problems, report: problems.length > 0 ? formatProblems(problems) : '' };
}

/**
 * Saved recipes (`/api/recipes`, read-write), shipped examples (`/api/examples`, read-only) and
 * recipe text tools for the editor (`/api/recipe/*`: parse JSON/YAML, export canonical JSON/YAML,
 * validate). Saving stores what the user has even when it would not run yet, and says what is wrong.
 */
export function recipesRouter(engine: Engine, store: RecipeStore, examples: RecipeStore): Router {
  const r = Router();

  r.get('/recipes', async (_req, res) => {
    res.json({ dir: store.dir, recipes: await store.list() });
  });
  r.get('/recipes/:name', async (req, res) => {
    res.json({ name: req.params.name, recipe: await store.read(req.params.name) });
  });
  r.put('/recipes/:name', async (req, res) => {
    const body = parseOr400(saveBody, req.body, 'body');
    const saved = await store.save(req.params.name, body.recipe);
    res.json({ ...saved, ...report(engine, body.recipe) });
  });
  r.delete('/recipes/:name', async (req, res) => {
    await store.remove(req.params.name);
    res.json({ deleted: req.params.name });
  });

  r.get('/examples', async (_req, res) => {
    res.json({ recipes: await examples.list() });
  });
  r.get('/examples/:name', async (req, res) => {
    res.json({ name: req.params.name, recipe: await examples.read(req.params.name) });
  });

  r.post('/recipe/parse', (req, res) => {
    const body = parseOr400(parseBody, req.body, 'body');
    res.json({ recipe: parseRecipeTextOr400(body.text, body.source ?? 'uploaded recipe') });
  });
  r.post('/recipe/export', (req, res) => {
    const body = parseOr400(exportBody, req.body, 'body');
    const doc = parseRecipeDoc(body.recipe, 'recipe');
    const text = body.format === 'yaml' ? YAML.stringify(canonicalRecipe(doc), { lineWidth: 0 }) : recipeToJson(doc);
    res.json({ format: body.format, text });
  });
  r.post('/recipe/validate', (req, res) => {
    const body = parseOr400(validateBody, req.body, 'body');
    res.json(report(engine, body.recipe, body.overrides));
  });
  return r;
}
