import { parseArgs } from '../parse-args.ts';
import { UsageError, type Command } from '../command.ts';
import { LOW_RANK_OPTIONS, lowRankArgs } from '../recipes/args.ts';
import { CliPaths, RUN_OPTIONS, RUN_OPTIONS_HELP, executeRecipe, parseWeighted, runFlags } from '../recipes/execute.ts';
import { mergeRecipe } from '../recipes/merge.ts';

export const merge: Command = {
  name: 'merge',
  summary: 'Merge LoRAs (any mix of formats) into one: exact concat or optimal SVD',
  usage: `loraflow merge OUT A[:w] B[:w] … [--method concat|svd] [--rank N | --energy F] [--to FORMAT] [--block-weights SPEC]

Merges the LoRAs (each with weight w, default 1; negative subtracts) into OUT. concat is exact
(ΔW = Σ wᵢ·ΔWᵢ, ranks add up); svd gives the optimal rank-N (or energy-F) approximation of the same
sum and reports its error. Inputs may be in different layouts (e.g. ai-toolkit + kohya).

Options:
  --method M            concat (default) or svd
  --rank N              target rank for svd
  --energy F            keep this fraction of ‖ΔW‖² for svd (e.g. 0.9)
  --to FORMAT           output layout: kohya (default), diffusers, comfyui
  --dtype DTYPE         output precision (default: keep)
  --block-weights SPEC  weight every input per FLUX block: 61 numbers or ID=value pairs
                        (e.g. "D00-D18=0.5,S00-S37=1")
${RUN_OPTIONS_HELP}`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { ...RUN_OPTIONS, ...LOW_RANK_OPTIONS, method: { type: 'string', default: 'concat' }, 'block-weights': { type: 'string' } },
    });
    if (positionals.length < 2) throw new UsageError('merge takes OUT and at least one LoRA');
    if (values.method !== 'concat' && values.method !== 'svd') throw new UsageError(`--method must be concat or svd, got "${values.method}"`);
    const paths = new CliPaths();
    const [out, ...inputs] = positionals as [string, ...string[]];
    const recipe = mergeRecipe({
      output: paths.add(out, 'output'),
      inputs: inputs.map((arg) => {
        const { path, weight } = parseWeighted(arg);
        return { path: paths.add(path, 'loras'), weight };
      }),
      method: values.method,
      ...lowRankArgs(values),
      blockWeights: values['block-weights'],
    });
    return executeRecipe(recipe, { ...runFlags(values), roots: paths.roots() });
  },
};
