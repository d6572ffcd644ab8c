import { parseArgs } from '../parse-args.ts';
import { UsageError, type Command } from '../command.ts';
import { dtypeArg } from '../recipes/args.ts';
import { applyRecipe } from '../recipes/apply.ts';
import { LORA_INPUT_OPTIONS, LORA_INPUT_OPTIONS_HELP, loraInputArgs } from '../recipes/lora-options.ts';
import { METHODS_HELP, METHOD_OPTIONS, METHOD_OPTIONS_HELP, methodArgs } from '../recipes/method-options.ts';
import { isDenseMethod } from '../../lora/merge-methods.ts';
import { CliPaths, RUN_OPTIONS, RUN_OPTIONS_HELP, executeRecipe, parseWeighted, runFlags } from '../recipes/execute.ts';

export const apply: Command = {
  name: 'apply',
  summary: 'Merge LoRAs into a base checkpoint (streamed; memory independent of model size)',
  usage: `loraflow apply BASE OUT LORA[:w] … [--dtype keep|bf16|fp16|fp8_e4m3fn] [--method M [--density D | --drop P --seed S]] [--clip-l IN --clip-l-out OUT] [--t5 IN --t5-out OUT]

Writes OUT = BASE + Σ wᵢ·ΔWᵢ one tensor at a time. Every LoRA module is checked against BASE
before anything is written. Text-encoder modules go into the CLIP-L / T5 files when given.

With --method other than linear, the LoRAs' ΔW are first merged per base weight by that method (as
\`loraflow merge --method … --exact\` does) and OUT = BASE + the merged ΔW:
${METHODS_HELP}
e.g. loraflow apply base.safetensors out.safetensors a.safetensors b.safetensors --method dare --drop 0.5 --seed 1

Options:
  --dtype DTYPE        precision of the written weights (default keep: as in BASE)
  --method M           linear (default), ties, dare, dare-ties, magnitude-prune
${METHOD_OPTIONS_HELP}
  --clip-l IN          CLIP-L text encoder to patch; --clip-l-out OUT names the result
  --t5 IN              T5-XXL text encoder to patch; --t5-out OUT names the result
  --ignore-text-encoders  leave text-encoder modules out (they are listed) instead of failing
${LORA_INPUT_OPTIONS_HELP}
${RUN_OPTIONS_HELP}`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        ...RUN_OPTIONS,
        ...LORA_INPUT_OPTIONS,
        ...METHOD_OPTIONS,
        method: { type: 'string', default: 'linear' },
        dtype: { type: 'string' },
        'clip-l': { type: 'string' },
        'clip-l-out': { type: 'string' },
        t5: { type: 'string' },
        't5-out': { type: 'string' },
        'ignore-text-encoders': { type: 'boolean', default: false },
      },
    });
    if (positionals.length < 3) throw new UsageError('apply takes BASE, OUT and at least one LORA');
    if (!isDenseMethod(values.method)) throw new UsageError(`--method must be one of linear, ties, dare, dare-ties, magnitude-prune, got "${values.method}"`);
    const pair = (a: string | undefined, b: string | undefined, name: string) => {
      if ((a === undefined) !== (b === undefined)) throw new UsageError(`--${name} and --${name}-out go together`);
      return a !== undefined && b !== undefined ? { in: paths.add(a, 'checkpoints'), out: paths.add(b, 'output') } : undefined;
    };
    const paths = new CliPaths();
    const [base, out, ...loras] = positionals as [string, string, ...string[]];
    const recipe = applyRecipe({
      base: paths.add(base, 'checkpoints'),
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
    return executeRecipe(recipe, { ...runFlags(values), roots: paths.roots() });
  },
};
