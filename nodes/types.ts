/**
 * What flows through the ports of loraflow's nodes, and how it is summarised in events.
 *  - LORA: a canonical AdapterSet (src/formats/model.ts); when it was read from a file, the
 *    reader's handle (with `path`). Tensors stay lazy: nothing is loaded until an operation needs it.
 *  - MODEL: a checkpoint (a safetensors file, a diffusers folder, a GGUF file) of which only the headers have been read.
 *  - REPORT: a JSON-safe object describing what an operation did.
 */
import type { AdapterSet, Patch } from '../src/formats/model.ts';
import type { FormDescription } from '../src/checkpoint/describe.ts';

export type LoraValue = AdapterSet & { path?: string };

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

function rankOf(p: Patch): number | undefined {
  const a = p.adapter;
  if (a.kind === 'lora') return a.down.shape[0];
  if (a.kind === 'loha') return a.w1b.shape[0];
  if (a.kind === 'lokr') return a.w1b?.shape[0] ?? a.w2b?.shape[0];
  return undefined;
}

/** A compact description of a LoRA for events and logs. */
export function summarizeLora(set: LoraValue): Record<string, unknown> {
  const ranks = set.patches.map(rankOf).filter((r): r is number => r !== undefined);
  const components: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  for (const p of set.patches) {
    components[p.component] = (components[p.component] ?? 0) + 1;
    kinds[p.adapter.kind] = (kinds[p.adapter.kind] ?? 0) + 1;
  }
  return {
    ...(set.path ? { path: set.path } : {}),
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

/**
 * An AdapterSet with only the canonical fields, for results computed from another set: library
 * operations copy their input with a spread, which would carry a loaded file's `path` and `close`
 * along and make a computed LoRA look like (and be closable as) the file it came from.
 */
export function plainSet(set: AdapterSet): AdapterSet {
  return { architecture: set.architecture, format: set.format, patches: set.patches, metadata: set.metadata, unknownKeys: set.unknownKeys, notes: set.notes, ...(set.variant ? { variant: set.variant } : {}) };
}
