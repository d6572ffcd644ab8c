import { z } from 'zod';
import { defineNode, pathParam } from '../src/graph/node.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { SafetensorsWriter } from '../src/safetensors/writer.ts';
import { encodeFromF32, isCodecDType, isFloatDType } from '../src/tensor/dtype.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { dtypeOf, dtypeParam, modelFormatParam, modelLayoutParam } from './params.ts';
import { provenanceMetadata } from '../src/graph/provenance.ts';

export const saveModel = defineNode({
  type: 'save-model',
  v: '1.1.0',
  title: 'Save checkpoint',
  category: 'save',
  description: 'Writes a checkpoint, optionally in another precision or form, streaming one tensor at a time. Tensors keep their order and the metadata is carried over; the recipe is added as provenance. Integer tensors, and 1-D tensors when the target is fp8, keep their dtype. format / layout change the form: a diffusers folder (shards + index) ⇄ one safetensors file, diffusers ⇄ original key names (split ⇄ fused q/k/v, from the family\'s module table), GGUF to safetensors (give a dtype); a scaled fp8 checkpoint is decoded when a dtype is given.',
  output: true,
  inputs: { model: { type: 'MODEL' } },
  outputs: { report: { type: 'REPORT' } },
  params: z.object({
    path: pathParam('output', 'write', 'Output checkpoint, relative to the output root.'),
    dtype: dtypeParam('Precision of floating-point tensors (keep: unchanged, copied byte for byte).'),
    format: modelFormatParam,
    layout: modelLayoutParam,
  }),
  async run(ctx, { model }, p) {
    const target = dtypeOf(p.dtype);
    const out = await ctx.outputPath(p.path);
    const plainFile = !model.form || (model.form.container === 'safetensors' && model.form.layout === 'original' && model.form.encoding === 'plain');
    if (!plainFile || p.format !== 'keep' || p.layout !== 'keep') {
      // another form in or out: the apply machinery with no LoRA (every tensor streamed, re-laid as the output form says)
      const report = await applyToBase({ base: model.path, out, loras: [], dtype: p.dtype, format: p.format, layout: p.layout, metadata: provenanceMetadata(ctx), ctx: ctx.op });
      const f = report.files[0]!;
      return { report: { path: p.path, tensors: f.tensors, converted: f.converted, copied: f.copied, dtype: p.dtype, format: p.format, layout: p.layout, notes: report.notes } };
    }
    const file = await SafetensorsFile.open(model.path);
    let converted = 0;
    try {
      const dtypeFor = (dtype: string, shape: readonly number[]) =>
        target && isCodecDType(dtype) && isFloatDType(dtype) && !(target.startsWith('F8') && shape.length < 2) ? target : dtype;
      const specs = file.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: dtypeFor(t.dtype, t.shape) }));
      const writer = await SafetensorsWriter.create(out, specs, { order: 'given', metadata: { ...(file.metadata ?? {}), ...provenanceMetadata(ctx) } });
      try {
        for (const [i, spec] of writer.order.entries()) {
          ctx.progress(i, specs.length, spec.name);
          const info = file.info(spec.name);
          let bytes: Uint8Array;
          if (spec.dtype === info.dtype) bytes = await file.readBytes(spec.name);
          else {
            bytes = encodeFromF32(await file.readF32(spec.name), spec.dtype as Parameters<typeof encodeFromF32>[1]);
            converted++;
          }
          await writer.write(spec.name, bytes);
        }
        ctx.progress(specs.length, specs.length);
        await writer.commit();
      } catch (e) {
        await writer.abort();
        throw e;
      }
      return { report: { path: p.path, tensors: specs.length, converted, copied: specs.length - converted, dtype: p.dtype } };
    } finally {
      await file.close();
    }
  },
  summarize: (o) => o.report,
});
