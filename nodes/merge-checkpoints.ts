import { z } from 'zod';
import { defineNode, pathParam, type NodeProblemSpec } from '../src/graph/node.ts';
import { checkBlockWeightSpec } from '../src/lora/blocks.ts';
import { mergeCheckpoints } from '../src/lora/checkpoint-merge.ts';
import { CHECKPOINT_METHODS, resolveCheckpointMethod } from '../src/lora/checkpoint-methods.ts';
import { dtypeParam } from './params.ts';
import { densityParam, dropParam, seedParam } from './method-params.ts';
import { provenanceMetadata } from '../src/graph/provenance.ts';
import { compactReport } from './types.ts';

const PARAMS = ['alpha', 'weights', 'density', 'drop', 'seed', 'blocks'] as const;

export const mergeCheckpointsNode = defineNode({
  type: 'merge-checkpoints',
  v: '1.0.0',
  title: 'Merge checkpoints',
  category: 'model',
  description: 'Merges two or three checkpoints of one family tensor by tensor, streamed (memory a few tensors, never the model; bf16/fp16/fp32/fp8, with or without the model.diffusion_model. prefix). weighted: Σ wᵢ·Aᵢ (weights, or (1 − α)·A + α·B); add-difference: A + α·(B − C); ties, dare, dare-ties, magnitude-prune: base + α·merge of the task vectors wᵢ·(Mᵢ − base), as merge-loras does per module. blocks sets α per block of the family\'s ids (as `loraflow families` lists them). The output keeps the first model\'s tensor order, dtypes and metadata; non-float and identical tensors are copied byte for byte.',
  output: true,
  inputs: {
    models: { type: 'MODEL', list: true, description: 'Two or three checkpoints A, B[, C], in order (weights follow this order).' },
    base: { type: 'MODEL', optional: true, description: 'ties, dare, dare-ties, magnitude-prune: the base the task vectors are taken from.' },
  },
  outputs: { report: { type: 'REPORT' } },
  params: z.object({
    path: pathParam('output', 'write', 'Output checkpoint, relative to the output root.'),
    method: z.enum(CHECKPOINT_METHODS).default('weighted').describe('weighted: Σ wᵢ·Aᵢ; add-difference: A + α·(B − C); ties, dare, dare-ties, magnitude-prune: over task vectors relative to base.'),
    alpha: z.number().finite().optional().describe('weighted: weights (1 − α, α) or (1 − α, α/2, α/2) (default 0.5); add-difference and the task-vector methods: strength of the change (default 1).'),
    weights: z.array(z.number().finite()).optional().describe('weighted: one weight per model (Σ wᵢ·Aᵢ, instead of alpha); task-vector methods: the weight of each task vector (default 1).'),
    density: densityParam,
    drop: dropParam,
    seed: seedParam,
    blocks: z.string().min(1).optional().describe('α per block, ID=value pairs with ranges ("D00-D18=0.3,OUT=1", "IN04-IN08=0,MID=0.5") or a full vector; blocks not named take alpha.'),
    dtype: dtypeParam('Precision of the written float tensors (keep: as in the first model; fp8 keeps 1-D tensors at their precision).'),
  }),
  check(p, links) {
    const problems: NodeProblemSpec[] = [];
    if (links.models < 2 || links.models > 3) problems.push({ input: 'models', message: `link two or three checkpoints (${links.models} linked)` });
    else {
      try {
        resolveCheckpointMethod(p, links.models, links.base > 0);
      } catch (e) {
        const message = (e as Error).message.replace(/^merge-checkpoints: [^:]*: /, '');
        const base = /base/.test(message);
        problems.push(base ? { input: 'base', message } : { param: PARAMS.find((k) => message.startsWith(k) || message.includes(` ${k} `)) ?? 'method', message });
      }
    }
    if (p.blocks !== undefined) {
      const bad = checkBlockWeightSpec(p.blocks);
      if (bad) problems.push({ param: 'blocks', message: bad });
    }
    return problems;
  },
  async run(ctx, { models, base }, p) {
    const out = await ctx.outputPath(p.path);
    const report = await mergeCheckpoints({
      models: models.map((m) => m.path),
      base: base?.path,
      out,
      method: p.method,
      alpha: p.alpha,
      weights: p.weights,
      density: p.density,
      drop: p.drop,
      seed: p.seed,
      blocks: p.blocks,
      dtype: p.dtype,
      metadata: provenanceMetadata(ctx),
      ctx: ctx.op,
    });
    ctx.log(`${report.method} merge of ${models.length} checkpoints into ${p.path}: ${report.merged} tensors merged, ${report.identical + report.nonFloat} copied, in ${report.seconds.toFixed(1)} s`);
    return { report: { ...report, out: p.path } };
  },
  summarize: (o) => compactReport(o.report),
});
