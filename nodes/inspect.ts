import { z } from 'zod';
import { detectFormat, type Detection } from '../src/formats/detect.ts';
import { patchKey } from '../src/formats/model.ts';
import { defineNode } from '../src/graph/node.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { summarizeLora, type LoraValue } from './types.ts';

/** Detection of the file a LoRA was read from: header keys and shapes, metadata, 0-d alphas. */
async function detectFile(path: string): Promise<Detection> {
  const file = await SafetensorsFile.open(path);
  try {
    const scalars = new Map<string, number>();
    for (const t of file.tensors) if (t.shape.length === 0 || (t.shape.length === 1 && t.shape[0] === 1 && t.name.endsWith('alpha'))) scalars.set(t.name, (await file.readF32(t.name))[0]!);
    return detectFormat(file.tensors.map((t) => ({ name: t.name, shape: t.shape })), file.metadata, scalars);
  } finally {
    await file.close();
  }
}

function modulesOf(set: LoraValue) {
  return set.patches.map((p) => ({
    module: p.source.module,
    target: patchKey(p),
    kind: p.adapter.kind,
    ...(p.adapter.kind === 'lora' ? { rank: p.adapter.down.shape[0], scale: p.adapter.scale } : {}),
    ...(p.dora ? { dora: p.dora.axis } : {}),
  }));
}

export const inspect = defineNode({
  type: 'inspect',
  v: '1.0.0',
  title: 'Inspect LoRA',
  category: 'inspect',
  description: 'Reports what a LoRA is: for a file, the format detection (layout, architecture, evidence, ranks, alphas, block coverage, unplaced keys); for a computed LoRA, its modules. Name it in the recipe\'s outputs to run it.',
  inputs: { lora: { type: 'LORA' } },
  outputs: { report: { type: 'REPORT' } },
  params: z.object({}),
  async run(_ctx, { lora }) {
    const summary = summarizeLora(lora);
    if (lora.path) return { report: { source: 'file', path: lora.path, summary, detection: { ...(await detectFile(lora.path)) } } };
    return { report: { source: 'computed', summary, modules: modulesOf(lora), unknownKeys: lora.unknownKeys, notes: lora.notes } };
  },
  summarize: ({ report }) => {
    const d = report.detection as Detection | undefined;
    return d
      ? { path: report.path, format: d.format, architecture: d.architecture, confidence: d.confidence, splitQkv: d.splitQkv, modules: d.modules.length, unknownKeys: d.unknownKeys.length }
      : report.summary;
  },
});
