/**
 * What the commands that run a recipe share: their options plus the run options, parsed with
 * positionals allowed; and for the single-operation commands, the paths they name kept under
 * their roots and the one recipe they build run with the run flags.
 */
import type { ParseArgsConfig } from 'node:util';
import { parseArgs } from './parse-args.ts';
import { CliPaths, RUN_OPTIONS, executeRecipe, runFlags } from './recipes/execute.ts';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof RUN_OPTIONS & O }>>;

/** `args` parsed against the run options and the command's own `options`. */
export function parseRunArgs<O extends Options>(args: string[], options: O): Parsed<O> {
  return parseArgs({ args, allowPositionals: true, options: { ...RUN_OPTIONS, ...options } }) as Parsed<O>;
}

export interface RecipeCommandLine<O extends Options> {
  values: Parsed<O>['values'];
  positionals: string[];
  /** Where the recipe's paths go: `paths.add(path, kind)` names a path under a root of its kind. */
  paths: CliPaths;
}

/** Parses `args`, builds the command's recipe from them and runs it; returns the exit code. */
export async function runRecipeCommand<O extends Options>(args: string[], options: O, build: (line: RecipeCommandLine<O>) => unknown): Promise<number> {
  const { values, positionals } = parseRunArgs(args, options);
  const paths = new CliPaths();
  const recipe = await build({ values, positionals, paths });
  return executeRecipe(recipe, { ...runFlags(values as Parsed<typeof RUN_OPTIONS>['values']), roots: paths.roots() });
}
