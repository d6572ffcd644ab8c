import { UsageError, type Command } from '../command.ts';
import { dtypeArg } from '../recipes/args.ts';
import { applyRecipe } from '../recipes/apply.ts';
import { LORA_INPUT_OPTIONS, LORA_INPUT_OPTIONS_HELP, loraInputArgs } from '../recipes/lora-options.ts';
import { METHODS_HELP, METHOD_OPTIONS, METHOD_OPTIONS_HELP, methodArgs } from '../recipes/method-options.ts';
import { isDenseMethod } from '../../lora/merge-methods.ts';
import { RUN_OPTIONS_HELP, parseWeighted } from '../recipes/execute.ts';
import { runRecipeCommand } from '../recipe-command.ts';
import { entryFile } from '../../checkpoint/diffusers-folder.ts';
import { FORMAT_CHOICES, LAYOUT_CHOICES } from '../../checkpoint/output-plan.ts';

const APPLY_OPTIONS = {
  ...LORA_INPUT_OPTIONS,
  ...METHOD_OPTIONS,
  method: { type: 'string', default: 'linear' },
  dtype: { type: 'string' },
  format: { type: 'string', default: 'keep' },
  layout: { type: 'string', default: 'keep' },
  'clip-l': { type: 'string' },
  'clip-l-out': { type: 'string' },
  t5: { type: 'string' },
  't5-out': { type: 'string' },
  'ignore-text-encoders': { type: 'boolean', default: false },
} as const;

export const apply: Command = {
  name: 'apply',
  summary: 'Merge LoRAs into a base checkpoint (streamed; memory independent of model size)',
  usage: `loraflow apply BASE OUT LORA[:w] … [--dtype keep|bf16|fp16|fp8_e4m3fn] [--format F] [--layout L] [--method M [--density D | --drop P --seed S]] [--clip-l IN --clip-l-out OUT] [--t5 IN --t5-out OUT]

Writes OUT = BASE + Σ wᵢ·ΔWᵢ one tensor at a time. Every LoRA module is checked against BASE
before anything is written. Text-encoder modules go into the CLIP-L / T5 files when given, else
into the text encoders of an all-in-one BASE.

BASE may be a .safetensors file (original or diffusers names, ComfyUI scaled fp8, all-in-one), a
diffusers model folder (transformer/ or unet/ with its shards and index, or the pipeline folder
above it) or a GGUF file. OUT keeps BASE's form unless --format / --layout say otherwise.

With --method other than linear, the LoRAs' ΔW are first merged per base weight by that method (as
\`loraflow merge --method … --exact\` does) and OUT = BASE + the merged ΔW:
${METHODS_HELP}
e.g. loraflow apply base.safetensors out.safetensors a.safetensors b.safetensors --method dare --drop 0.5 --seed 1

Options:
  --dtype DTYPE        precision of the written weights (default keep: as in BASE)
  --format F           keep (default), safetensors (one file), diffusers (a model folder:
                       shards + index, staged then renamed), gguf (a GGUF BASE's own quant types)
  --layout L           keep (default), original (BFL/ComfyUI names, fused q/k/v), diffusers
  --method M           linear (default), ties, dare, dare-ties, magnitude-prune
${METHOD_OPTIONS_HELP}
  --clip-l IN          CLIP-L text encoder to patch; --clip-l-out OUT names the result
  --t5 IN              T5-XXL text encoder to patch; --t5-out OUT names the result
  --ignore-text-encoders  leave text-encoder modules out (they are listed) instead of failing
${LORA_INPUT_OPTIONS_HELP}
${RUN_OPTIONS_HELP}`,

  run: (args) => runRecipeCommand(args, APPLY_OPTIONS, async ({ values, positionals, paths }) => {
    if (positionals.length < 3) throw new UsageError('apply takes BASE, OUT and at least one LORA');
    if (!(FORMAT_CHOICES as readonly string[]).includes(values.format)) throw new UsageError(`--format must be one of ${FORMAT_CHOICES.join(', ')}, got "${values.format}"`);
    if (!(LAYOUT_CHOICES as readonly string[]).includes(values.layout)) throw new UsageError(`--layout must be one of ${LAYOUT_CHOICES.join(', ')}, got "${values.layout}"`);
    if (!isDenseMethod(values.method)) throw new UsageError(`--method must be one of linear, ties, dare, dare-ties, magnitude-prune, got "${values.method}"`);
    const pair = (a: string | undefined, b: string | undefined, name: string) => {
      if ((a === undefined) !== (b === undefined)) throw new UsageError(`--${name} and --${name}-out go together`);
      return a !== undefined && b !== undefined ? { in: paths.add(a, 'checkpoints'), out: paths.add(b, 'output') } : undefined;
    };
    const [base, out, ...loras] = positionals as [string, string, ...string[]];
    const recipe = applyRecipe({
      // a model folder is named in the recipe by its index (recipe paths name files)
      base: paths.add(await entryFile(base), 'checkpoints'),
      output: paths.add(out, 'output'),
      loras: loras.map((arg) => {
        const { path, weight } = parseWeighted(arg);
        return { path: paths.add(path, 'loras'), weight };
      }),
      dtype: dtypeArg(values.dtype),
      clipL: pair(values['clip-l'], values['clip-l-out'], 'clip-l'),
      t5: pair(values.t5, values['t5-out'], 't5'),
      ignoreTextEncoders: values['ignore-text-encoders'],
      method: values.method,
      ...methodArgs(values),
      ...loraInputArgs(values),
    });
    const node = (recipe.nodes as Record<string, { params?: Record<string, unknown> }>).apply!;
    if (values.format !== 'keep') node.params = { ...node.params, format: values.format };
    if (values.layout !== 'keep') node.params = { ...node.params, layout: values.layout };
    return recipe;
  }),
};
