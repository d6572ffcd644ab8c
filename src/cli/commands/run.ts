import { basename, extname } from 'node:path';
import { readFile } from 'node:fs/promises';
import { parseSetArgs } from '../../graph/overrides.ts';
import { parseRecipeText, readRecipeFile } from '../../graph/recipe.ts';
import { parseSweepArg, parseTemplateArgs, sweepFilePoints, type SweepSpec } from '../../graph/sweep.ts';
import { UsageError, type Command } from '../command.ts';
import { RUN_OPTIONS_HELP, executeRecipe, parseRoots, runFlags } from '../recipes/execute.ts';
import { parseRunArgs } from '../recipe-command.ts';
import { executeSweep } from '../recipes/execute-sweep.ts';

export const run: Command = {
  name: 'run',
  summary: 'Run a recipe (JSON or YAML) headless, once or as a sweep over many values',
  usage: `loraflow run RECIPE [--set NAME=VALUE …] [--root KIND=DIR …] [--dry-run] [--json-events] [--backend NAME]
loraflow run RECIPE --sweep NAME=V1,V2,… [--sweep NAME=GLOB …] [--sweep-file FILE] [--template NAME=TEMPLATE …] [options]

Validates the whole recipe (every problem is listed, with node ids), then runs what its outputs
need. Output files appear only when the whole run has succeeded: a failed or cancelled (Ctrl+C)
run leaves none behind.

Options:
  --set NAME=VALUE  override a param the recipe exposes (see its "expose" block); repeatable.
                    VALUE is used as text, or as JSON when the param needs a number, list, …
  --root KIND=DIR   where file params of that kind resolve (loras, checkpoints, output);
                    default: the current directory; repeatable (a kind may have several)
${RUN_OPTIONS_HELP}

Sweeps (one run per point, in this process; results shared between points are computed once):
  --sweep NAME=V1,V2,…   values of an exposed name; several --sweep give the cartesian product
                         (the first one varies slowest). Commas inside [..] or {..} stay in a
                         value: --sweep weights=[1,0.5],[0.5,1]
  --sweep NAME=GLOB      for a file param: one point per matching file under its root,
                         e.g. --sweep a='*.safetensors' (quote it so the shell leaves it)
  --sweep-file FILE      JSON/YAML list of override sets ([{"w": 0.5, "a": "x.safetensors"}, …]);
                         combined with every --sweep point
  --template NAME=TEXT   the value of NAME at each point, e.g. output=out/{name}-{a}-{w}.safetensors:
                         {NAME} is that point's value of an exposed name (a file by its stem),
                         {name} the recipe's file name, {index} the point number. Without it a
                         written path that is exposed gets "-{value}…" added before its extension.
  A summary table (point, values, status, outputs, seconds, error) ends the sweep; a failed point
  does not stop the others.

Exit codes: 0 ok, 1 the run (or a point of the sweep) failed or was cancelled, 2 invalid recipe,
arguments or files.`,

  async run(args) {
    const { values, positionals } = parseRunArgs(args, {
      set: { type: 'string', multiple: true, default: [] },
      root: { type: 'string', multiple: true, default: [] },
      sweep: { type: 'string', multiple: true, default: [] },
      'sweep-file': { type: 'string' },
      template: { type: 'string', multiple: true, default: [] },
    });
    if (positionals.length !== 1) throw new UsageError(`run takes exactly one RECIPE file, got ${positionals.length}`);
    const file = positionals[0]!;
    const sweeping = values.sweep.length > 0 || values['sweep-file'] !== undefined;
    if (!sweeping && values.template.length > 0) throw new UsageError('--template names the outputs of a sweep: give --sweep or --sweep-file too');
    let recipe: unknown;
    let overrides: Record<string, string>;
    let spec: SweepSpec | undefined;
    try {
      recipe = await readRecipeFile(file);
      overrides = parseSetArgs(values.set);
      if (sweeping) {
        const sweepFile = values['sweep-file'];
        const points = sweepFile === undefined ? undefined : sweepFilePoints(parseRecipeText(await readSweepFile(sweepFile), sweepFile), sweepFile);
        spec = { base: overrides, axes: values.sweep.map(parseSweepArg), points, templates: parseTemplateArgs(values.template) };
      }
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const flags = { ...runFlags(values), overrides, roots: parseRoots(values.root) };
    if (spec) return executeSweep(recipe, spec, { ...flags, name: basename(file, extname(file)) });
    return executeRecipe(recipe, flags);
  },
};

async function readSweepFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--sweep-file ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}
