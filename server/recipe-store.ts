import { mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RecipeParseError, RecipeSchema, parseRecipeText, recipeToJson } from '../src/graph/index.ts';
import { ApiError, zodDetails } from './errors.ts';
import { isInside } from './paths.ts';

/** A recipe name is a file stem: letters, digits, `_`, `-` and inner dots; no separators, no `..`. */
export const RECIPE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,99}$/;

export interface RecipeListing {
  name: string;
  file: string;
  size: number;
  mtime: string;
  title?: string;
  description?: string;
}

export function checkRecipeName(name: string): string {
  if (!RECIPE_NAME.test(name) || name.endsWith('.')) {
    throw new ApiError(400, 'bad_recipe_name', `recipe name "${name}" is not allowed: use letters, digits, "_", "-" and inner dots (at most 100 characters)`);
  }
  return name;
}

/** Structural check of a recipe document (the recipe zod schema); node-level checks are the engine's. */
export function parseRecipeDoc(doc: unknown, source: string): Record<string, unknown> {
  const r = RecipeSchema.safeParse(doc);
  if (!r.success) {
    throw new ApiError(400, 'invalid_recipe', `${source} is not a loraflow recipe: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`, { issues: zodDetails(r.error) });
  }
  return doc as Record<string, unknown>;
}

export function parseRecipeTextOr400(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseRecipeText(text, source);
  } catch (e) {
    if (e instanceof RecipeParseError) throw new ApiError(400, 'recipe_parse_error', e.message);
    throw e;
  }
  return parseRecipeDoc(doc, source);
}

/**
 * A folder of recipes, one canonical JSON file per name. Reads accept the folder's `.json`, `.yaml`
 * and `.yml` files; saves always write canonical JSON (temp file + rename, so a crash never leaves
 * half a recipe). Every path is built from a validated name and re-checked after following links.
 */
export class RecipeStore {
  static readonly EXTENSIONS = ['.json', '.yaml', '.yml'];

  constructor(
    readonly dir: string,
    /** Examples are shipped with loraflow and read-only. */
    readonly readOnly = false,
  ) {}

  async list(): Promise<RecipeListing[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: RecipeListing[] = [];
    const seen = new Set<string>();
    for (const file of names.sort()) {
      const ext = path.extname(file).toLowerCase();
      const stem = file.slice(0, file.length - ext.length);
      if (!RecipeStore.EXTENSIONS.includes(ext) || !RECIPE_NAME.test(stem) || seen.has(stem)) continue;
      const found = await this.locate(stem).catch(() => undefined);
      if (!found) continue;
      seen.add(stem);
      const st = await stat(found);
      const entry: RecipeListing = { name: stem, file: path.basename(found), size: st.size, mtime: st.mtime.toISOString() };
      try {
        const doc = parseRecipeText(await readFile(found, 'utf8'), found) as { meta?: { name?: unknown; description?: unknown } };
        if (typeof doc?.meta?.name === 'string') entry.title = doc.meta.name;
        if (typeof doc?.meta?.description === 'string') entry.description = doc.meta.description;
      } catch {
        // A broken file is still listed; reading it reports why.
      }
      out.push(entry);
    }
    return out;
  }

  async read(name: string): Promise<Record<string, unknown>> {
    const file = await this.locate(checkRecipeName(name));
    if (!file) throw new ApiError(404, 'unknown_recipe', `no recipe named "${name}"`);
    return parseRecipeTextOr400(await readFile(file, 'utf8'), path.basename(file));
  }

  async save(name: string, recipe: unknown): Promise<{ name: string; file: string }> {
    this.writable();
    const doc = parseRecipeDoc(recipe, `recipe "${checkRecipeName(name)}"`);
    await mkdir(this.dir, { recursive: true });
    const target = await this.target(`${name}.json`);
    const tmp = path.join(this.dir, `.${name}.json.${process.pid}.${Date.now()}.tmp`);
    try {
      await writeFile(tmp, recipeToJson(doc));
      await rename(tmp, target);
    } finally {
      await rm(tmp, { force: true });
    }
    return { name, file: path.basename(target) };
  }

  async remove(name: string): Promise<void> {
    this.writable();
    const file = await this.locate(checkRecipeName(name));
    if (!file) throw new ApiError(404, 'unknown_recipe', `no recipe named "${name}"`);
    await rm(file);
  }

  private writable(): void {
    if (this.readOnly) throw new ApiError(405, 'read_only', 'example recipes are read-only; save a copy under a new name');
  }

  /** The existing file for a name (first of .json, .yaml, .yml), proven to be inside the folder. */
  private async locate(name: string): Promise<string | undefined> {
    for (const ext of RecipeStore.EXTENSIONS) {
      const p = path.join(this.dir, `${name}${ext}`);
      const st = await stat(p).catch(() => undefined);
      if (!st) continue;
      await this.assertInside(p);
      if (!st.isFile()) throw new ApiError(400, 'not_a_file', `recipe "${name}" is not a file`);
      return p;
    }
    return undefined;
  }

  private async target(file: string): Promise<string> {
    const p = path.join(this.dir, file);
    if (await stat(p).catch(() => undefined)) await this.assertInside(p);
    return p;
  }

  private async assertInside(p: string): Promise<void> {
    const [realDir, real] = await Promise.all([realpath(this.dir), realpath(p)]);
    if (!isInside(realDir, real)) throw new ApiError(403, 'path_escapes_root', `"${path.basename(p)}" links outside the recipes folder`);
  }
}
