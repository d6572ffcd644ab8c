import { UsageError, type Command } from '../command.ts';
import { dtypeArg, formatArg } from '../recipes/args.ts';
import { convertRecipe } from '../recipes/convert.ts';
import { LORA_INPUT_OPTIONS, LORA_INPUT_OPTIONS_HELP, loraInputArgs } from '../recipes/lora-options.ts';
import { RUN_OPTIONS_HELP } from '../recipes/execute.ts';
import { runRecipeCommand } from '../recipe-command.ts';

export const convert: Command = {
  name: 'convert',
  summary: 'Convert a LoRA to another layout (kohya, diffusers, comfyui), losslessly',
  usage: `loraflow convert IN OUT --to FORMAT [--dtype DTYPE] [--allow-non-finite] [--dry-run] [--json-events]

Reads IN in any layout and writes OUT in FORMAT: kohya (sd-scripts, ComfyUI, Forge), diffusers
(PEFT, ai-toolkit) or comfyui (BFL names); aliases sd-scripts, ai-toolkit, peft, bfl work too.
Runs the recipe load-lora → convert → save-lora.

Options:
  --to FORMAT      target layout (required)
  --dtype DTYPE    store tensors as fp32, fp16, bf16, fp8_e4m3fn, fp8_e5m2 (default: keep)
${LORA_INPUT_OPTIONS_HELP}
${RUN_OPTIONS_HELP}`,

  run: (args) => runRecipeCommand(args, { ...LORA_INPUT_OPTIONS, to: { type: 'string' }, dtype: { type: 'string' } }, ({ values, positionals, paths }) => {
    if (positionals.length !== 2) throw new UsageError(`convert takes IN and OUT, got ${positionals.length} argument(s)`);
    if (!values.to) throw new UsageError('convert needs --to FORMAT (kohya, diffusers or comfyui)');
    return convertRecipe({
      input: paths.add(positionals[0]!, 'loras'),
      output: paths.add(positionals[1]!, 'output'),
      to: formatArg(values.to)!,
      dtype: dtypeArg(values.dtype),
      ...loraInputArgs(values),
    });
  }),
};
