import { z } from 'zod';
import { parseFormatName, writeLora } from '../src/formats/index.ts';
import { LoraFormatError } from '../src/adapter/errors.ts';
import { defineNode, pathParam } from '../src/graph/node.ts';
import { LORA_FORMATS, dtypeOf, dtypeParam, type LoraFormatChoice } from './params.ts';
import { provenanceMetadata } from '../src/graph/provenance.ts';
import type { LoraValue } from './types.ts';

/** The layout `auto` writes: the LoRA's own when loraflow writes it, else kohya (the most widely loaded). */
function autoFormat(lora: LoraValue): { format: LoraFormatChoice; why: string } {
  try {
    const f = parseFormatName(lora.format) as LoraFormatChoice;
    if ((LORA_FORMATS as readonly string[]).includes(f)) return { format: f, why: `its own layout (${lora.format})` };
  } catch {
    // A layout loraflow reads but does not write (or a computed set): fall through to kohya.
  }
  return { format: 'kohya', why: `kohya, since "${lora.format}" is not a layout loraflow writes` };
}

export const saveLora = defineNode({
  type: 'save-lora',
  v: '1.0.0',
  title: 'Save LoRA',
  category: 'save',
  description: 'Writes a LoRA file in the chosen layout (auto: the layout it was read or converted to, kohya for merged/extracted LoRAs). The recipe is embedded as provenance (metadata key loraflow.recipe); nothing appears until the whole run has succeeded.',
  output: true,
  inputs: { lora: { type: 'LORA' } },
  outputs: { report: { type: 'REPORT' } },
  params: z.object({
    path: pathParam('output', 'write', 'Output file (.safetensors), relative to the output root.'),
    format: z.enum(['auto', ...LORA_FORMATS]).default('auto').describe('Layout: auto, kohya, diffusers or comfyui.'),
    dtype: dtypeParam('Storage precision (keep: as the tensors are).'),
  }),
  async run(ctx, { lora }, p) {
    const chosen = p.format === 'auto' ? autoFormat(lora) : { format: p.format, why: 'as asked' };
    if (p.format === 'auto') ctx.log(`writing ${chosen.why}`);
    if (lora.patches.length === 0) {
      throw new LoraFormatError('NO_MODULES', `${p.path}: nothing to write: this ${lora.format} LoRA has no modules${lora.notes.length ? ` (${lora.notes.slice(0, 3).join('; ')})` : ''}; no file was written`);
    }
    const out = await ctx.outputPath(p.path);
    const result = await writeLora(out, lora, { format: chosen.format, dtype: dtypeOf(p.dtype), metadata: provenanceMetadata(ctx), operation: 'save-lora', ctx: ctx.op });
    return {
      report: {
        path: p.path, format: chosen.format, tensors: result.tensors, modules: result.modules, bytes: result.bytes, notes: result.notes,
        ...(result.nonFinite.length > 0 ? { nonFinite: result.nonFinite } : {}),
      },
    };
  },
  summarize: (o) => o.report,
});
