/**
 * Strength of a whole set or of single patches. LoRA, LoHa and decomposed LoKr carry a scale
 * (alpha / rank), so weighting them rewrites two numbers and no tensor; only `full` diffs and
 * fully materialised LoKr factors need their values multiplied. A negative weight subtracts.
 */
import type { Adapter, AdapterSet, Patch } from '../adapter/model.ts';
import { adapterRank } from '../adapter/kinds.ts';
import { derivedTensor, type LazyTensor } from '../tensor/lazy.ts';
import { inputError, type LoraflowError } from '../errors.ts';

export function scaleError(message: string): LoraflowError {
  return inputError('SCALE', message);
}

function times(t: LazyTensor, w: number): LazyTensor {
  return derivedTensor(t, t.shape, (v) => v.map((x) => x * w), `${t.origin} ×${w}`);
}

function scaleAdapter(adapter: Adapter, w: number): Adapter {
  switch (adapter.kind) {
    case 'lora':
    case 'loha':
    case 'lokr': {
      const rank = adapterRank(adapter);
      if (rank === undefined && adapter.kind === 'lokr') {
        // Both Kronecker factors stored whole: loaders force scale 1, so alpha cannot carry it.
        return adapter.w1 ? { ...adapter, w1: times(adapter.w1, w) } : { ...adapter, w2: times(adapter.w2!, w) };
      }
      const scale = adapter.scale * w;
      return { ...adapter, scale, alpha: scale * rank! };
    }
    case 'full':
      return { ...adapter, diff: times(adapter.diff, w) };
    case 'set':
      return adapter;
  }
}

export interface ScaleOutcome {
  /** The weighted patch, or null when the weight is 0 (the patch contributes nothing). */
  patch: Patch | null;
  /** Set when the weight could not be applied to this patch the way the caller may expect. */
  note?: string;
}

/**
 * One patch at weight `w`. DoRA patches refuse weights other than 0 and 1: the renormalisation is
 * not linear, so a weighted DoRA patch is not a patch of the same kind (applyToBase handles
 * per-LoRA weights on DoRA itself). Replacement (`set`) values are kept as they are.
 */
export function scalePatch(patch: Patch, w: number): ScaleOutcome {
  if (!Number.isFinite(w)) throw scaleError(`${patch.source.module}: weight ${w} is not a finite number`);
  if (w === 1) return { patch };
  if (w === 0) return { patch: null };
  if (patch.dora) {
    throw scaleError(`${patch.source.module}: a DoRA patch cannot be weighted (${w}) as a patch: DoRA renormalisation is not linear; use weight 0 or 1 here, or give the weight to applyToBase`);
  }
  if (patch.adapter.kind === 'set') {
    return { patch, note: `${patch.source.module}: replacement values are not scaled (weight ${w} ignored)` };
  }
  return { patch: { ...patch, adapter: scaleAdapter(patch.adapter, w) } };
}

export interface ScaleReport {
  scaled: number;
  /** Modules removed because their weight was 0. */
  dropped: string[];
  notes: string[];
}

/** Weights every patch by `weightOf(patch)`; patches at weight 0 are removed and listed. */
export function scalePatches(set: AdapterSet, weightOf: (patch: Patch) => number): { set: AdapterSet; report: ScaleReport } {
  const report: ScaleReport = { scaled: 0, dropped: [], notes: [] };
  const patches: Patch[] = [];
  for (const patch of set.patches) {
    const w = weightOf(patch);
    const { patch: out, note } = scalePatch(patch, w);
    if (note) report.notes.push(note);
    if (!out) {
      report.dropped.push(patch.source.module);
      continue;
    }
    if (w !== 1) report.scaled++;
    patches.push(out);
  }
  return { set: { ...set, patches, notes: [...set.notes, ...report.notes] }, report };
}

/** The whole set at strength `w` (negative subtracts). */
export function scaleSet(set: AdapterSet, w: number): { set: AdapterSet; report: ScaleReport } {
  return scalePatches(set, () => w);
}
