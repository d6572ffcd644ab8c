import { z } from 'zod';
import { defineNode, pathParam } from '../src/graph/node.ts';
import { CanonicalView } from '../src/checkpoint/canonical.ts';
import { describeForm } from '../src/checkpoint/describe.ts';
import type { ModelValue } from './types.ts';
import { checkpointArchitecture } from '../src/formats/index.ts';

export const loadModel = defineNode({
  type: 'load-model',
  v: '1.1.0',
  title: 'Load checkpoint',
  category: 'load',
  description: 'Opens a base or fine-tuned checkpoint in any form: a .safetensors file (original or diffusers names; bf16/fp16/fp32/fp8, ComfyUI scaled fp8; all-in-one files with text encoders and VAE), a diffusers model folder (give its diffusion_pytorch_model.safetensors.index.json, or its one diffusion_pytorch_model.safetensors), or a GGUF file. Only the headers are read here; operations stream the tensors one at a time, so a 24 GB model needs no more memory than one tensor.',
  inputs: {},
  outputs: { model: { type: 'MODEL', description: 'The checkpoint (headers only).' } },
  params: z.object({ path: pathParam('checkpoints', 'read', 'Checkpoint file (.safetensors, .gguf, or a diffusers folder\'s index .json), relative to the checkpoints root.') }),
  async run(ctx, _inputs, p) {
    const path = ctx.resolvePath(p.path, 'checkpoints');
    const view = await CanonicalView.open(path);
    try {
      const dtypes: Record<string, number> = {};
      let bytes = 0;
      for (const t of view.reader.tensors) {
        dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
        bytes += t.byteLength;
      }
      // every registered family's checkpoint signals tell checkpoints apart by their (canonical) key names and a few shapes
      const { architecture } = checkpointArchitecture(view.tensors);
      const model: ModelValue = { path, tensors: view.reader.tensors.length, bytes, dtypes, metadata: { ...(view.metadata ?? {}) }, architecture, form: describeForm(view) };
      return { model };
    } finally {
      await view.close();
    }
  },
  summarize: ({ model }) => ({ path: model.path, tensors: model.tensors, bytes: model.bytes, dtypes: model.dtypes, architecture: model.architecture, form: model.form }),
});
