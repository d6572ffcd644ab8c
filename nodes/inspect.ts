import { z } from 'zod';
import type { Detection } from '../src/formats/detect.ts';
import { detectFile } from '../src/formats/inspect.ts';
import { patchKey } from '../src/adapter/model.ts';
import { defineNode } from '../src/graph/node.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { loadedFrom, summarizeLora, type LoraValue } from './types.ts';

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
    const path = loadedFrom(lora);
    if (path) return { report: { source: 'file', path, summary, detection: { ...(await withSafetensors(path, detectFile)) } } };
    return { report: { source: 'computed', summary, modules: modulesOf(lora), unknownKeys: lora.unknownKeys, notes: lora.notes } };
  },
  summarize: ({ report }) => {
    const d = report.detection as Detection | undefined;
    return d
      ? { path: report.path, format: d.format, architecture: d.architecture, confidence: d.confidence, splitQkv: d.splitQkv, modules: d.modules.length, unknownKeys: d.unknownKeys.length }
      : report.summary;
  },
});
