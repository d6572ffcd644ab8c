/**
 * What flows through the ports of loraflow's nodes, and how it is summarised in events.
 *  - LORA: a canonical AdapterSet (src/adapter/model.ts), plain data; `loadedFrom` tells the file a
 *    set was read from. Tensors stay lazy: nothing is loaded until an operation needs it.
 *  - MODEL: a checkpoint (a safetensors file, a diffusers folder, a GGUF file) of which only the headers have been read.
 *  - REPORT: a JSON-safe object describing what an operation did.
 */
import type { AdapterSet } from '../src/adapter/model.ts';
import type { FormDescription } from '../src/checkpoint/describe.ts';
import { adapterRank } from '../src/adapter/kinds.ts';

export type LoraValue = AdapterSet;

/**
 * The file each set read by load-lora came from, kept beside the value rather than on it: a result
 * an operation builds from a loaded set (a copy) is not that file, and carries no path.
 */
const files = new WeakMap<AdapterSet, string>();

export function markLoaded(set: AdapterSet, path: string): AdapterSet {
  files.set(set, path);
  return set;
}

/** The file `set` was read from, or undefined for a computed set. */
export function loadedFrom(set: AdapterSet): string | undefined {
  return files.get(set);
}

export interface ModelValue {
  path: string;
  tensors: number;
  /** Bytes of tensor data. */
  bytes: number;
  /** Tensor count per dtype. */
  dtypes: Record<string, number>;
  metadata: Record<string, string>;
  /** The family id the key names say (`src/formats/families.ts`; with or without a `model.diffusion_model.` prefix), or `unknown`. */
  architecture: string;
  /** Its form: container, key layout, encoding, shards, all-in-one parts (src/checkpoint/describe.ts). */
  form?: FormDescription;
}

export type ReportValue = Record<string, unknown>;

declare module '../src/graph/node.ts' {
  interface PortValueTypes {
    LORA: LoraValue;
    MODEL: ModelValue;
    REPORT: ReportValue;
  }
}

/** A compact description of a LoRA for events and logs. */
export function summarizeLora(set: LoraValue): Record<string, unknown> {
  const ranks = set.patches.map((p) => adapterRank(p.adapter)).filter((r): r is number => r !== undefined);
  const components: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  for (const p of set.patches) {
    components[p.component] = (components[p.component] ?? 0) + 1;
    kinds[p.adapter.kind] = (kinds[p.adapter.kind] ?? 0) + 1;
  }
  return {
    ...(loadedFrom(set) ? { path: loadedFrom(set) } : {}),
    format: set.format,
    architecture: set.architecture,
    patches: set.patches.length,
    ...(ranks.length > 0 ? { rank: Math.min(...ranks) === Math.max(...ranks) ? ranks[0] : { min: Math.min(...ranks), max: Math.max(...ranks) } } : {}),
    components,
    kinds,
    unknownKeys: set.unknownKeys.length,
    ...(set.notes.length > 0 ? { notes: set.notes.slice(0, 5) } : {}),
  };
}

/** A report without its long per-module lists (counted instead), for events. */
export function compactReport(report: Record<string, unknown>, keepLists: readonly string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(report)) {
    if (Array.isArray(v) && !keepLists.includes(k) && v.length > 8) out[k] = `${v.length} items`;
    else out[k] = v;
  }
  return out;
}
