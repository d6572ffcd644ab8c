import { UsageError, type Command } from '../command.ts';
import { LOW_RANK_OPTIONS, lowRankArgs } from '../recipes/args.ts';
import { LORA_INPUT_OPTIONS, LORA_INPUT_OPTIONS_HELP, loraInputArgs } from '../recipes/lora-options.ts';
import { RUN_OPTIONS_HELP, parseWeighted } from '../recipes/execute.ts';
import { runRecipeCommand } from '../recipe-command.ts';
import { mergeRecipe } from '../recipes/merge.ts';
import { node, type RecipeNodeDoc } from '../recipes/build.ts';
import { METHODS_HELP, METHOD_OPTIONS, METHOD_OPTIONS_HELP, methodArgs } from '../recipes/method-options.ts';
import { isDenseMethod } from '../../lora/merge-methods.ts';

const METHODS = ['concat', 'svd', 'linear', 'ties', 'dare', 'dare-ties', 'magnitude-prune'];

const MERGE_OPTIONS = {
  ...LORA_INPUT_OPTIONS,
  ...LOW_RANK_OPTIONS,
  ...METHOD_OPTIONS,
  method: { type: 'string', default: 'concat' },
  exact: { type: 'boolean', default: false },
  'block-weights': { type: 'string' },
  report: { type: 'string' },
} as const;

export const merge: Command = {
  name: 'merge',
  summary: 'Merge LoRAs (any mix of formats) into one: exact concat, optimal SVD, or TIES / DARE / …',
  usage: `loraflow merge OUT A[:w] B[:w] … [--method M] [--rank N | --energy F | --exact] [--density D] [--drop P --seed S] [--to FORMAT] [--block-weights SPEC] [--report OUT.html]

Merges the LoRAs (each with weight w, default 1; negative subtracts) into OUT. concat is exact
(ΔW = Σ wᵢ·ΔWᵢ, ranks add up); svd gives the optimal rank-N (or energy-F) approximation of the same
sum and reports its error. Inputs may be in different layouts (e.g. ai-toolkit + kohya).

The interference-aware methods work module by module (one base weight at a time) on the dense ΔW,
and write a LoRA at --rank / --energy (optimal SVD, error reported per module) or, with --exact,
the merged ΔW itself as full diffs (.diff keys; layout comfyui unless --to says otherwise):
${METHODS_HELP}
e.g. loraflow merge out.safetensors a.safetensors b.safetensors:0.8 --method ties --density 0.3 --rank 32

Options:
  --method M            concat (default), svd, linear, ties, dare, dare-ties, magnitude-prune
  --rank N              target rank (svd and the dense methods)
  --energy F            keep this fraction of ‖ΔW‖² (e.g. 0.9) instead of a fixed rank
  --exact               dense methods: write the merged ΔW as full diffs instead of a LoRA
${METHOD_OPTIONS_HELP}
  --to FORMAT           output layout: kohya (default), diffusers, comfyui
  --dtype DTYPE         output precision (default: keep)
  --block-weights SPEC  weight every input per block of its family (\`loraflow families\` lists each family's ids): a full vector or ID=value pairs
                        (e.g. "D00-D18=0.5,S00-S37=1")
  --report OUT.html     also write what the merge did as a self-contained HTML page (or OUT.svg): relative error
                        per module, energy kept against rank (to choose a rank by eye), what each input
                        contributed per block and where the inputs agree or fight (cosine per block)
${LORA_INPUT_OPTIONS_HELP}
${RUN_OPTIONS_HELP}`,

  run: (args) => runRecipeCommand(args, MERGE_OPTIONS, ({ values, positionals, paths }) => {
    if (positionals.length < 2) throw new UsageError('merge takes OUT and at least one LoRA');
    const method = values.method;
    if (method !== 'concat' && method !== 'svd' && !isDenseMethod(method)) throw new UsageError(`--method must be one of ${METHODS.join(', ')}, got "${method}"`);
    if (values.exact && !isDenseMethod(method)) throw new UsageError(`--exact is for the dense methods (linear, ties, dare, dare-ties, magnitude-prune); ${method} writes a LoRA`);
    const low = lowRankArgs(values);
    const [out, ...inputs] = positionals as [string, ...string[]];
    const recipe = mergeRecipe({
      output: paths.add(out, 'output'),
      inputs: inputs.map((arg) => {
        const { path, weight } = parseWeighted(arg);
        return { path: paths.add(path, 'loras'), weight };
      }),
      method,
      ...low,
      ...methodArgs(values),
      ...(values.exact ? { exact: true, to: low.to ?? 'comfyui' } : {}),
      blockWeights: values['block-weights'],
      ...loraInputArgs(values),
    });
    if (values.report !== undefined) {
      if (!/\.(html?|svg)$/i.test(values.report)) throw new UsageError(`--report writes an .html (or .svg) file, got "${values.report}"`);
      // one more output node: the plot of the merge's report, with the merge's inputs and result
      const nodes = recipe.nodes as Record<string, RecipeNodeDoc>;
      const loras = nodes.merge!.in!.loras!;
      nodes.report = node('plot', { path: paths.add(values.report, 'output'), weights: inputs.map((arg) => parseWeighted(arg).weight), inline: false }, { loras, report: 'merge.report', result: 'merge.lora' });
    }
    return recipe;
  }),
};
