import { UsageError, type Command } from '../command.ts';
import { LOW_RANK_OPTIONS, lowRankArgs } from '../recipes/args.ts';
import { RUN_OPTIONS_HELP } from '../recipes/execute.ts';
import { runRecipeCommand } from '../recipe-command.ts';
import { extractRecipe } from '../recipes/extract.ts';
import { entryFile } from '../../checkpoint/diffusers-folder.ts';

export const extract: Command = {
  name: 'extract',
  summary: 'Extract a LoRA from a fine-tuned checkpoint and its base',
  usage: `loraflow extract BASE TUNED OUT (--rank N | --energy F) [--to FORMAT] [--dtype DTYPE] [--biases keep|drop]

Factors TUNED − BASE tensor by tensor (randomized SVD) into a LoRA of rank N, or per module the
smallest rank keeping fraction F of the difference's energy. BASE and TUNED may each be in any
form (a .safetensors file, a diffusers model folder, GGUF, scaled fp8): tensors are paired by
their original names and compared as values.

Options:
  --rank N       rank of every module (an upper bound with --energy)
  --energy F     retained energy per module (e.g. 0.9)
  --to FORMAT    output layout: kohya (default), diffusers, comfyui
  --dtype DTYPE  output precision (default: keep, i.e. float32 factors)
  --biases B     changed biases (and other 1-D tensors): keep (default) writes them as full
                 diffs (.diff_b), which ComfyUI applies but diffusers and sd-scripts drop
                 without a word; drop leaves them out. The save notes say which happened.
${RUN_OPTIONS_HELP}`,

  run: (args) => runRecipeCommand(args, { ...LOW_RANK_OPTIONS, biases: { type: 'string' } }, async ({ values, positionals, paths }) => {
    if (values.biases !== undefined && values.biases !== 'keep' && values.biases !== 'drop') throw new UsageError(`--biases must be keep or drop, got "${values.biases}"`);
    if (positionals.length !== 3) throw new UsageError(`extract takes BASE, TUNED and OUT, got ${positionals.length} argument(s)`);
    return extractRecipe({
      base: paths.add(await entryFile(positionals[0]!), 'checkpoints'),
      tuned: paths.add(await entryFile(positionals[1]!), 'checkpoints'),
      output: paths.add(positionals[2]!, 'output'),
      ...lowRankArgs(values, 'extract'),
      keepBiases: values.biases === undefined ? undefined : values.biases === 'keep',
    });
  }),
};
