import { z } from 'zod';
import { defineNode, pathParam } from '../src/graph/node.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import type { ModelValue } from './types.ts';
import { checkpointArchitecture } from '../src/formats/index.ts';

export const loadModel = defineNode({
  type: 'load-model',
  v: '1.0.0',
  title: 'Load checkpoint',
  category: 'load',
  description: 'Opens a base or fine-tuned checkpoint (.safetensors). Only the header is read here; operations stream the tensors one at a time, so a 24 GB model needs no more memory than one tensor.',
  inputs: {},
  outputs: { model: { type: 'MODEL', description: 'The checkpoint (header only).' } },
  params: z.object({ path: pathParam('checkpoints', 'read', 'Checkpoint file (.safetensors), relative to the checkpoints root.') }),
  async run(ctx, _inputs, p) {
    const path = ctx.resolvePath(p.path, 'checkpoints');
    const file = await SafetensorsFile.open(path);
    try {
      const dtypes: Record<string, number> = {};
      let bytes = 0;
      for (const t of file.tensors) {
        dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
        bytes += t.end - t.begin;
      }
      // every registered family's checkpoint signals tell single files apart by key names (and a few shapes)
      const { architecture } = checkpointArchitecture(file.tensors);
      const model: ModelValue = { path, tensors: file.tensors.length, bytes, dtypes, metadata: { ...(file.metadata ?? {}) }, architecture };
      return { model };
    } finally {
      await file.close();
    }
  },
  summarize: ({ model }) => ({ path: model.path, tensors: model.tensors, bytes: model.bytes, dtypes: model.dtypes, architecture: model.architecture }),
});
