import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import YAML from 'yaml';
import { LoraflowError } from '../errors.ts';
import { SEMVER_PATTERN } from './semver.ts';

/**
 * The recipe document: one canonical JSON file (YAML accepted on input) that is both what the editor
 * saves and what runs headless. Nodes are keyed by readable ids, params are by name, links are by
 * output name (`"merge.lora"`), node versions are pinned per node, `expose` names the knobs a
 * headless run may override (`--set name=value`), and `ui` (positions, colours, viewport) never
 * affects execution or caching.
 */

export const RECIPE_FORMAT = 'loraflow.recipe';
export const RECIPE_SCHEMA_VERSION = 1;

export const NODE_ID_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/;
export const LINK_PATTERN = /^([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)$/;
export const EXPOSE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** `node.params.name`, optionally deeper into the value (`node.params.weights.0`). */
export const EXPOSE_PATH_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*\.params\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*$/;

const Link = z.string().regex(LINK_PATTERN, 'a link is "<node id>.<output name>", e.g. "merge.lora"');

export const RecipeNodeSchema = z
  .strictObject({
    type: z.string().min(1).describe('Node type id, e.g. "merge-loras" (see `loraflow nodes`).'),
    v: z
      .string()
      .regex(SEMVER_PATTERN, 'v must be a major.minor.patch version')
      .optional()
      .describe('Version of the node type this recipe was written for; omitted in a hand-written recipe, it means the installed version. Saved recipes always carry it.'),
    title: z.string().optional().describe('Display name; not used by execution.'),
    params: z.record(z.string(), z.unknown()).optional().describe('Param values by name; missing params take their defaults.'),
    in: z
      .record(z.string(), z.union([Link, z.array(Link)]))
      .optional()
      .describe('Links by input name: "<node id>.<output name>", or a list of them for list inputs.'),
  })
  .describe('One node of the graph.');

export const ExposeEntrySchema = z.union([
  z.string().regex(EXPOSE_PATH_PATTERN, 'an expose path is "<node id>.params.<param>[.<sub>…]"'),
  z.strictObject({
    path: z.string().regex(EXPOSE_PATH_PATTERN, 'an expose path is "<node id>.params.<param>[.<sub>…]"'),
    description: z.string().optional(),
  }),
]);

export const RecipeMetaSchema = z
  .looseObject({
    name: z.string().optional(),
    description: z.string().optional(),
    author: z.string().optional(),
    tags: z.array(z.string()).optional(),
  })
  .describe('Free-form information about the recipe; not used by execution.');

export const RecipeSchema = z
  .strictObject({
    $schema: z.string().optional(),
    format: z.literal(RECIPE_FORMAT),
    schemaVersion: z.literal(RECIPE_SCHEMA_VERSION).describe('Version of this document format; older versions are migrated on load.'),
    meta: RecipeMetaSchema.optional(),
    nodes: z.record(z.string().regex(NODE_ID_PATTERN, 'node ids are identifiers (letters, digits, _ and -)'), RecipeNodeSchema),
    outputs: z
      .array(z.string().regex(NODE_ID_PATTERN))
      .optional()
      .describe('Node ids to run (with what they need). Default: every output node (the ones that write files).'),
    expose: z
      .record(z.string().regex(EXPOSE_NAME_PATTERN), ExposeEntrySchema)
      .optional()
      .describe('Names for params a headless run may override: `loraflow run recipe.json --set name=value`.'),
    ui: z.record(z.string(), z.unknown()).optional().describe('Editor state (positions, colours, viewport); ignored by execution and caching.'),
  })
  .describe('A loraflow recipe: a graph of LoRA operations that runs headless or in the editor.');

export type Recipe = z.infer<typeof RecipeSchema>;
export type RecipeNode = z.infer<typeof RecipeNodeSchema>;
export type ExposeEntry = z.infer<typeof ExposeEntrySchema>;

export function exposePath(entry: ExposeEntry): string {
  return typeof entry === 'string' ? entry : entry.path;
}

/** The published JSON Schema of the current recipe format. */
export function recipeJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(RecipeSchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  return { title: 'loraflow recipe', ...schema };
}

export class RecipeParseError extends LoraflowError {
  constructor(
    readonly source: string,
    message: string,
  ) {
    super('input', 'RECIPE_PARSE', `${source}: ${message}`);
    this.name = 'RecipeParseError';
  }
}

/** JSON when it looks like JSON (or the name says so), YAML otherwise; `source` names the file in errors. */
export function parseRecipeText(text: string, source = 'recipe'): unknown {
  const body = text.replace(/^\uFEFF/, '');
  const looksJson = /\.json$/i.test(source) || /^\s*[{[]/.test(body);
  if (looksJson) {
    try {
      return JSON.parse(body);
    } catch (e) {
      if (/\.json$/i.test(source)) throw new RecipeParseError(source, `not valid JSON: ${(e as Error).message}`);
    }
  }
  try {
    const doc = YAML.parseDocument(body, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) throw new RecipeParseError(source, `not valid YAML/JSON: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    if (e instanceof RecipeParseError) throw e;
    throw new RecipeParseError(source, `not valid YAML/JSON: ${(e as Error).message}`);
  }
}

export async function readRecipeFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new RecipeParseError(path, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message);
  }
  return parseRecipeText(text, path);
}
