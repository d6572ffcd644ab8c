import { z } from 'zod';
import { defineNode, pathParam } from '../src/graph/node.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { dtypeParam, modelFormatParam, modelLayoutParam, weightsCheck, weightsParam } from './params.ts';
import { provenanceMetadata } from '../src/graph/provenance.ts';
import { densityParam, dropParam, methodParamProblems, seedParam } from './method-params.ts';
import { compactReport, loadedFrom } from './types.ts';

const optionalPath = (kind: string, mode: 'read' | 'write', description: string) => pathParam(kind, mode, description).optional();

export const mergeIntoBase = defineNode({
  type: 'merge-into-base',
  v: '1.2.0',
  title: 'Merge LoRAs into checkpoint',
  category: 'model',
  description: 'Writes a new checkpoint W + Σ wᵢ·ΔWᵢ, streaming the base one tensor at a time (memory independent of model size; bf16/fp16/fp32/fp8 bases, ComfyUI scaled fp8, GGUF, diffusers folders, all-in-one files whose text encoders take the LoRA\'s text-encoder modules). The output keeps the base\'s form unless format / layout say otherwise. Every module is checked against the base before anything is written. Text-encoder modules go to the CLIP-L / T5 files when given. method linear (default) adds Σ wᵢ·ΔWᵢ; ties, dare, dare-ties, magnitude-prune merge the LoRAs\' ΔW per base weight first (as merge-loras does) and add that.',
  output: true,
  inputs: {
    base: { type: 'MODEL', description: 'Base checkpoint in any form (with or without the model.diffusion_model. prefix; a diffusers folder; GGUF; scaled fp8).' },
    loras: { type: 'LORA', list: true, description: 'LoRAs to merge in, in order (weights follow this order).' },
  },
  outputs: { report: { type: 'REPORT' } },
  params: z.object({
    path: pathParam('output', 'write', 'Output checkpoint, relative to the output root.'),
    weights: weightsParam,
    dtype: dtypeParam('Precision of the written weights (keep: as in the base; fp8 keeps 1-D tensors at their precision).'),
    format: modelFormatParam,
    layout: modelLayoutParam,
    stochasticFp8: z.boolean().default(false).describe('fp8 outputs: stochastic rounding seeded by the tensor name (reproducible) instead of round-to-nearest.'),
    clipLIn: optionalPath('checkpoints', 'read', 'CLIP-L text encoder to patch with the LoRAs\' clip_l modules.'),
    clipLOut: optionalPath('output', 'write', 'Where the patched CLIP-L goes.'),
    t5In: optionalPath('checkpoints', 'read', 'T5-XXL text encoder to patch with the LoRAs\' t5 modules.'),
    t5Out: optionalPath('output', 'write', 'Where the patched T5 goes.'),
    ignoreTextEncoders: z.boolean().default(false).describe('Leave text-encoder modules out (listed in the report) when no encoder file is given.'),
    method: z.enum(['linear', 'ties', 'dare', 'dare-ties', 'magnitude-prune']).default('linear').describe('linear: W + Σ wᵢ·ΔWᵢ; the others merge the LoRAs per base weight first (see merge-loras).'),
    density: densityParam,
    drop: dropParam,
    seed: seedParam,
  }),
  check(p, links) {
    const problems = [...weightsCheck(p.weights, links.loras, 'LoRAs'), ...methodParamProblems(p.method, p)];
    if (links.loras < 1) problems.push({ input: 'loras', message: 'link at least one LoRA' });
    for (const [a, b] of [['clipLIn', 'clipLOut'], ['t5In', 't5Out']] as const) {
      if ((p[a] === undefined) !== (p[b] === undefined)) problems.push({ param: p[a] === undefined ? a : b, message: `${a} and ${b} go together` });
    }
    return problems;
  },
  async run(ctx, { base, loras }, p) {
    // The library writes to staging names; the report should name the files the user will see.
    const finalOf = new Map<string, string>();
    const output = async (value: string) => {
      const staged = await ctx.outputPath(value);
      finalOf.set(staged, ctx.resolvePath(value, 'output'));
      return staged;
    };
    const pair = async (inPath?: string, outPath?: string) =>
      inPath && outPath ? { in: ctx.resolvePath(inPath, 'checkpoints'), out: await output(outPath) } : undefined;
    const report = await applyToBase({
      base: base.path,
      out: await output(p.path),
      loras: loras.map((set, i) => ({ set, weight: p.weights?.[i] ?? 1, path: loadedFrom(set) })),
      dtype: p.dtype,
      format: p.format,
      layout: p.layout,
      stochasticFp8: p.stochasticFp8,
      clipL: await pair(p.clipLIn, p.clipLOut),
      t5: await pair(p.t5In, p.t5Out),
      ignoreTextEncoders: p.ignoreTextEncoders,
      method: p.method,
      density: p.density,
      drop: p.drop,
      seed: p.seed,
      metadata: provenanceMetadata(ctx),
      ctx: ctx.op,
    });
    ctx.log(`patched ${report.modules} module(s) into ${p.path} in ${report.seconds.toFixed(1)} s (backend ${report.backend})`);
    const files = report.files.map((f) => ({ ...f, out: finalOf.get(f.out) ?? f.out }));
    return { report: { path: p.path, ...report, files } };
  },
  summarize: (o) => compactReport(o.report, ['files']),
});
