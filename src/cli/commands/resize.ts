import { UsageError, type Command } from '../command.ts';
import { LOW_RANK_OPTIONS, lowRankArgs } from '../recipes/args.ts';
import { LORA_INPUT_OPTIONS, LORA_INPUT_OPTIONS_HELP, loraInputArgs } from '../recipes/lora-options.ts';
import { RUN_OPTIONS_HELP } from '../recipes/execute.ts';
import { runRecipeCommand } from '../recipe-command.ts';
import { resizeRecipe } from '../recipes/resize.ts';

export const resize: Command = {
  name: 'resize',
  summary: 'Lower a LoRA\'s rank optimally, keeping its strength',
  usage: `loraflow resize IN OUT (--rank N | --energy F) [--to FORMAT] [--dtype DTYPE]

Replaces every module by the optimal rank-N approximation of its own ΔW (or the smallest rank
keeping fraction F of its energy); reports the error per module and overall.

Options:
  --rank N       target rank (an upper bound with --energy)
  --energy F     retained energy per module (e.g. 0.9)
  --to FORMAT    output layout (default: the input's own layout when loraflow writes it, else kohya)
  --dtype DTYPE  output precision (default: keep)
${LORA_INPUT_OPTIONS_HELP}
${RUN_OPTIONS_HELP}`,

  run: (args) => runRecipeCommand(args, { ...LORA_INPUT_OPTIONS, ...LOW_RANK_OPTIONS }, ({ values, positionals, paths }) => {
    if (positionals.length !== 2) throw new UsageError(`resize takes IN and OUT, got ${positionals.length} argument(s)`);
    return resizeRecipe({
      input: paths.add(positionals[0]!, 'loras'),
      output: paths.add(positionals[1]!, 'output'),
      ...lowRankArgs(values, 'resize'),
      ...loraInputArgs(values),
    });
  }),
};
