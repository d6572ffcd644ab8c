/** Casting every tensor of an AdapterSet to one storage dtype (lazily: values convert when written). */
import type { Adapter, AdapterSet, Patch } from '../src/adapter/model.ts';
import type { DType } from '../src/tensor/dtype.ts';
import { castTensor, type LazyTensor } from '../src/tensor/lazy.ts';

function isTensor(v: unknown): v is LazyTensor {
  return typeof v === 'object' && v !== null && 'shape' in v && typeof (v as LazyTensor).f32 === 'function';
}

function castAdapter<A extends Adapter>(a: A, dtype: DType): A {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a)) out[k] = isTensor(v) ? castTensor(v, dtype) : v;
  return out as A;
}

export function castSet(set: AdapterSet, dtype: DType): AdapterSet {
  const patches: Patch[] = set.patches.map((p) => ({
    ...p,
    adapter: castAdapter(p.adapter, dtype),
    ...(p.dora ? { dora: { ...p.dora, magnitude: castTensor(p.dora.magnitude, dtype) } } : {}),
  }));
  return { architecture: set.architecture, format: set.format, patches, metadata: set.metadata, unknownKeys: set.unknownKeys, notes: set.notes };
}
