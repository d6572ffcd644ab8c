import { UsageError, type Command } from '../command.ts';
import { dtypeArg, numberOption } from '../recipes/args.ts';
import { RUN_OPTIONS_HELP } from '../recipes/execute.ts';
import { runRecipeCommand } from '../recipe-command.ts';
import { mergeCheckpointsRecipe } from '../recipes/merge-checkpoints.ts';
import { METHOD_OPTIONS, METHOD_OPTIONS_HELP, methodArgs } from '../recipes/method-options.ts';
import { CHECKPOINT_METHODS, isCheckpointMethod } from '../../lora/checkpoint-methods.ts';

const MERGE_CHECKPOINTS_OPTIONS = {
  ...METHOD_OPTIONS,
  method: { type: 'string', default: 'weighted' },
  alpha: { type: 'string' },
  weights: { type: 'string' },
  base: { type: 'string' },
  blocks: { type: 'string' },
  dtype: { type: 'string' },
} as const;

export const mergeCheckpoints: Command = {
  name: 'merge-checkpoints',
  summary: 'Merge two or three checkpoints tensor by tensor: weighted sum, add difference, TIES / DARE over task vectors',
  usage: `loraflow merge-checkpoints OUT A B [C] [--method M] [--alpha α] [--weights w1,w2[,w3]] [--base BASE] [--density D] [--drop P --seed S] [--blocks SPEC] [--dtype DTYPE]

Merges checkpoints of one model family (any \`loraflow families\` lists; single files with or without the
model.diffusion_model. prefix, bf16/fp16/fp32/fp8) one tensor at a time into OUT, which keeps A's
tensor order, dtypes and metadata. Tensors that are not float, or identical in every input, are
copied byte for byte; shape, dtype, missing-tensor and family mismatches are refused up front.

  weighted         Σ wᵢ·Aᵢ with --weights, else (1 − α)·A + α·B (three models: (1 − α)·A + α/2·(B + C));
                   α default 0.5
  add-difference   A + α·(B − C), three models; α default 1
  ties             τᵢ = wᵢ·(Mᵢ − BASE) trimmed to its top --density by magnitude, sign elected per
                   entry, disjoint mean; OUT = BASE + α·merged (Yadav et al. 2023); α default 1
  dare             each entry of τᵢ dropped with probability --drop, the rest rescaled by 1/(1 − drop),
                   summed; seeded by --seed, per tensor as the LoRA methods (Yu et al. 2023)
  dare-ties        dare's drop and rescale, then ties' sign election and disjoint mean
  magnitude-prune  τᵢ trimmed to its top --density by magnitude, summed
e.g. loraflow merge-checkpoints out.safetensors a.safetensors b.safetensors c.safetensors --method add-difference --alpha 0.7
     loraflow merge-checkpoints out.safetensors ft1.safetensors ft2.safetensors --method ties --base base.safetensors --density 0.3

Options:
  --method M        ${CHECKPOINT_METHODS.join(', ')} (default weighted)
  --alpha α         see above; with --blocks, the α of tensors in blocks the spec does not name
  --weights LIST    weighted: one weight per model; ties/dare/…: the weight of each task vector (default 1)
  --base BASE       ties, dare, dare-ties, magnitude-prune: the checkpoint the task vectors are relative to
${METHOD_OPTIONS_HELP}
  --blocks SPEC     α per block of the family's ids (\`loraflow families\` lists them): ID=value pairs
                    with ranges, e.g. "D00-D18=0.3,OUT=1", "IN04-IN08=0,MID=0.5", "B00-B19=0.5"
  --dtype DTYPE     precision of the written float tensors (default keep: as in A)
${RUN_OPTIONS_HELP}`,

  run: (args) => runRecipeCommand(args, MERGE_CHECKPOINTS_OPTIONS, ({ values, positionals, paths }) => {
    if (positionals.length < 3 || positionals.length > 4) throw new UsageError(`merge-checkpoints takes OUT and two or three checkpoints A B [C], got ${positionals.length} paths`);
    if (!isCheckpointMethod(values.method)) throw new UsageError(`--method must be one of ${CHECKPOINT_METHODS.join(', ')}, got "${values.method}"`);
    const weights = values.weights === undefined ? undefined : values.weights.split(/[,\s]+/).filter((w) => w !== '').map((w, i) => numberOption(w, `weights (value ${i + 1})`)!);
    const [out, ...models] = positionals as [string, ...string[]];
    const recipe = mergeCheckpointsRecipe({
      output: paths.add(out, 'output'),
      models: models.map((m) => paths.add(m, 'checkpoints')),
      base: values.base === undefined ? undefined : paths.add(values.base, 'checkpoints'),
      method: values.method,
      alpha: numberOption(values.alpha, 'alpha'),
      weights,
      blocks: values.blocks,
      dtype: dtypeArg(values.dtype),
      ...methodArgs(values),
    });
    return recipe;
  }),
};
