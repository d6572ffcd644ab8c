import { z } from 'zod';
import { defineNode } from '../src/graph/node.ts';
import { castSet } from './cast.ts';
import { LORA_FORMATS, dtypeOf, dtypeParam } from './params.ts';
import { summarizeLora } from './types.ts';

export const convert = defineNode({
  type: 'convert',
  v: '1.0.0',
  title: 'Convert LoRA',
  category: 'lora',
  description: 'Chooses the layout (kohya = sd-scripts/ComfyUI/Forge, diffusers = PEFT/ai-toolkit, comfyui = BFL names) and optionally the precision a LoRA is saved in. Lossless: fused⇄split conversions are exact (a save node with format auto writes this layout).',
  inputs: { lora: { type: 'LORA' } },
  outputs: { lora: { type: 'LORA' } },
  params: z.object({
    to: z.enum(LORA_FORMATS).describe('Target layout.'),
    dtype: dtypeParam('Storage precision of the tensors (keep: as they are).'),
  }),
  async run(ctx, { lora }, p) {
    const dtype = dtypeOf(p.dtype);
    const base = { ...lora, format: p.to };
    ctx.log(`${lora.format} → ${p.to}${dtype ? ` (${dtype})` : ''}`);
    return { lora: dtype ? castSet(base, dtype) : base };
  },
  summarize: (o) => summarizeLora(o.lora),
});
