/**
 * The dense float64 reference of the interference-aware merges, written from the published
 * definitions (TIES: Yadav et al. 2023 — trim each task vector to its top-k magnitudes, elect the
 * sign of the summed trimmed vectors per entry, average the agreeing non-zero entries; DARE: Yu et
 * al. 2023 — drop each entry with probability p, rescale the kept ones by 1/(1−p)), with the weights
 * inside the task vectors τᵢ = wᵢ·ΔWᵢ and a module = one base weight. The DARE mask is re-derived
 * from loraflow's documented recipe (mulberry32 drawn in index order, seeded by FNV-1a of
 * "seed:input:module"), independently of src/. Deliberately naive (full sorts, float64).
 */
import type { AdapterSet } from '../../src/adapter/model.ts';
import type { DenseMethod } from '../../src/lora/merge-methods.ts';
import { referenceDeltas, type TargetDelta } from '../../src/samples/reference-delta.ts';

export interface Params {
  density?: number;
  drop?: number;
  seed?: number;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Keep mask of DARE: draw j of mulberry32 seeded by FNV-1a("seed:input:module") below (1−p)·2³². */
export function referenceMask(n: number, drop: number, seed: number, input: number, module: string): Uint8Array {
  let state = fnv1a(`${seed}:${input}:${module}`);
  const threshold = Math.round((1 - drop) * 2 ** 32);
  const mask = new Uint8Array(n);
  for (let j = 0; j < n; j++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    mask[j] = ((t ^ (t >>> 14)) >>> 0) < threshold ? 1 : 0;
  }
  return mask;
}

/** Rows of `target` the patches of one input cover (their union), from the patches alone. */
function coveredRows(set: AdapterSet, key: string, height: number): number {
  const covered = new Uint8Array(height);
  for (const p of set.patches) {
    if (`${p.component}:${p.target}` !== key) continue;
    const [start, len] = p.rows ?? [0, height];
    covered.fill(1, start, start + len);
  }
  return covered.reduce((a, b) => a + b, 0);
}

/** The merged ΔW per base weight, by the definitions, in float64. */
export async function referenceMerge(method: DenseMethod, inputs: { set: AdapterSet; weight: number }[], p: Params): Promise<Map<string, TargetDelta>> {
  const trims = method === 'ties' || method === 'magnitude-prune';
  const drops = method === 'dare' || method === 'dare-ties';
  const signed = method === 'ties' || method === 'dare-ties';
  const density = p.density ?? (trims ? 0.5 : 1);
  const drop = p.drop ?? (drops ? 0.5 : 0);
  const seed = p.seed ?? 0;
  const maps = await Promise.all(inputs.map(async (x) => (x.weight === 0 ? new Map<string, TargetDelta>() : referenceDeltas(x.set))));
  const keys = [...new Set(maps.flatMap((m) => [...m.keys()]))];
  const out = new Map<string, TargetDelta>();
  for (const key of keys) {
    const present = maps.map((m) => m.get(key));
    const first = present.find((d) => d)!;
    const rows = Math.max(...present.map((d) => d?.rows ?? 0));
    const cols = first.cols;
    const n = rows * cols;
    const thinned: Float64Array[] = [];
    present.forEach((d, i) => {
      if (!d) return;
      // τᵢ = wᵢ·ΔWᵢ over the whole height
      const t = new Float64Array(n);
      for (let j = 0; j < d.data.length; j++) t[j] = inputs[i]!.weight * d.data[j]!;
      if (trims && density < 1) {
        const k = Math.max(1, Math.round(density * coveredRows(inputs[i]!.set, key, rows) * cols));
        const order = Array.from({ length: n }, (_, j) => j).sort((a, b) => Math.abs(t[b]!) - Math.abs(t[a]!) || a - b);
        for (const j of order.slice(k)) t[j] = 0;
      }
      if (drops && drop > 0) {
        const mask = referenceMask(n, drop, seed, i, key);
        for (let j = 0; j < n; j++) t[j] = mask[j] ? t[j]! / (1 - drop) : 0;
      }
      thinned.push(t);
    });
    const merged = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (const t of thinned) sum += t[j]!;
      if (!signed) {
        merged[j] = sum;
        continue;
      }
      const sign = Math.sign(sum);
      let total = 0;
      let count = 0;
      for (const t of thinned) {
        if (t[j] !== 0 && Math.sign(t[j]!) === sign) {
          total += t[j]!;
          count++;
        }
      }
      merged[j] = count ? total / count : 0;
    }
    out.set(key, { component: first.component, target: first.target, rows, cols, data: merged, replace: false });
  }
  return out;
}

