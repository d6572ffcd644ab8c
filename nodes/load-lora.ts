import { z } from 'zod';
import { MEMBER_NAMES } from '../src/formats/members.ts';
import { openLora } from '../src/formats/read.ts';
import { defineNode, pathParam } from '../src/graph/node.ts';
import { markLoaded, summarizeLora } from './types.ts';

export const loadLora = defineNode({
  type: 'load-lora',
  v: '1.1.0',
  title: 'Load LoRA',
  category: 'load',
  description: 'Reads a LoRA in any layout (kohya, diffusers/PEFT, ai-toolkit, ComfyUI, OneTrainer, XLabs, LyCORIS, …) into the canonical model. Only the header and alphas are read; tensors load when an operation needs them.',
  inputs: {},
  outputs: { lora: { type: 'LORA', description: 'The LoRA, tensors still in the file.' } },
  params: z.object({
    path: pathParam('loras', 'read', 'LoRA file (.safetensors), relative to the loras root.'),
    allowNonFinite: z
      .boolean()
      .default(false)
      .describe('Use the file even if a tensor holds NaN or ±Inf (by default the first operation to read such a tensor fails, naming file, key and count); results then report their non-finite values by tensor.'),
    member: z
      .enum(MEMBER_NAMES as [string, ...string[]])
      .optional()
      .describe(`For a file holding the LoRAs of both models of a pair (ai-toolkit's combined experts): the member whose keys to read (${MEMBER_NAMES.join(', ')}); the other member's keys are reported, not read.`),
  }),
  async run(ctx, _inputs, p) {
    const file = await openLora(ctx.resolvePath(p.path, 'loras'), { allowNonFinite: p.allowNonFinite, member: p.member });
    // the tensors stay in the file: it closes when this output leaves the cache
    ctx.onDispose(file.close);
    const lora = markLoaded(file.set, file.path);
    if (p.allowNonFinite) ctx.log(`${p.path}: allowNonFinite: tensors holding NaN or ±Inf are not refused`);
    if (lora.unknownKeys.length > 0) ctx.log(`${p.path}: ${lora.unknownKeys.length} key(s) not understood: ${lora.unknownKeys.slice(0, 5).join(', ')}${lora.unknownKeys.length > 5 ? ', …' : ''}`);
    for (const note of lora.notes) ctx.log(`${p.path}: ${note}`);
    return { lora };
  },
  summarize: (o) => summarizeLora(o.lora),
});
