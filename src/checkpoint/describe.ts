/** What form a checkpoint is in, in a few fields, for load-model's report and the editor. */
import type { CanonicalView, Layout } from './canonical.ts';
import type { Container } from './form.ts';
import { partsOf, type Part } from './all-in-one.ts';
import { isQuantized } from './encoding.ts';

export interface FormDescription {
  container: Container;
  layout: Layout;
  /** plain dtypes, ComfyUI's scaled fp8, or GGUF block types. */
  encoding: 'plain' | 'scaled-fp8' | 'gguf-quantized';
  /** The family whose diffusers names a diffusers-layout checkpoint has. */
  diffusersFamily?: string;
  /** Shards of a diffusers folder. */
  shards?: number;
  /** Tensors per part of an all-in-one checkpoint. */
  parts?: Partial<Record<Part, number>>;
}

export function describeForm(view: CanonicalView): FormDescription {
  const r = view.reader;
  const parts = partsOf(view.tensors.map((t) => t.name));
  const encoding = view.scaled ? 'scaled-fp8' : r.tensors.some((t) => isQuantized(t.dtype)) ? 'gguf-quantized' : 'plain';
  return {
    container: r.container,
    layout: view.layout,
    encoding,
    ...(view.family ? { diffusersFamily: view.family.id } : {}),
    ...(r.folder ? { shards: r.folder.shards.length } : {}),
    ...(parts ? { parts } : {}),
  };
}
