import { parseArgs } from '../parse-args.ts';
import { parseSetArgs } from '../../graph/overrides.ts';
import { readRecipeFile } from '../../graph/recipe.ts';
import { UsageError, type Command } from '../command.ts';
import { RUN_OPTIONS, RUN_OPTIONS_HELP, executeRecipe, parseRoots, runFlags } from '../recipes/execute.ts';

export const run: Command = {
  name: 'run',
  summary: 'Run a recipe (JSON or YAML) headless',
  usage: `loraflow run RECIPE [--set NAME=VALUE …] [--root KIND=DIR …] [--dry-run] [--json-events] [--backend NAME]

Validates the whole recipe (every problem is listed, with node ids), then runs what its outputs
need. Output files appear only when the whole run has succeeded: a failed or cancelled (Ctrl+C)
run leaves none behind.

Options:
  --set NAME=VALUE  override a param the recipe exposes (see its "expose" block); repeatable.
                    VALUE is used as text, or as JSON when the param needs a number, list, …
  --root KIND=DIR   where file params of that kind resolve (loras, checkpoints, output);
                    default: the current directory; repeatable (a kind may have several)
${RUN_OPTIONS_HELP}

Exit codes: 0 ok, 1 the run failed or was cancelled, 2 invalid recipe, arguments or files.`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { ...RUN_OPTIONS, set: { type: 'string', multiple: true, default: [] }, root: { type: 'string', multiple: true, default: [] } },
    });
    if (positionals.length !== 1) throw new UsageError(`run takes exactly one RECIPE file, got ${positionals.length}`);
    let recipe: unknown;
    let overrides: Record<string, string>;
    try {
      recipe = await readRecipeFile(positionals[0]!);
      overrides = parseSetArgs(values.set);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return executeRecipe(recipe, { ...runFlags(values), overrides, roots: parseRoots(values.root) });
  },
};
