/**
 * Straightforward dense float64 ΔW per base weight, the yardstick for "delta equivalence":
 * an operation is right when the deltas of its output equal the intended deltas of its input.
 * Deliberately naive (triple loops, no library code) so it is independent of what it checks.
 * For small fixtures only.
 */
import type { Adapter, AdapterSet, Patch } from '../adapter/model.ts';
import { numel } from '../tensor/lazy.ts';

export interface DenseDelta {
  rows: number;
  /** Product of all non-row dimensions (conv weights are flattened to [out, in·kh·kw]). */
  cols: number;
  data: Float64Array;
}

async function f64(t: { f32(): Promise<Float32Array> }): Promise<Float64Array> {
  return Float64Array.from(await t.f32());
}

function matmul(a: Float64Array, b: Float64Array, n: number, k: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      if (av === 0) continue;
      for (let j = 0; j < m; j++) out[i * m + j]! += av * b[p * m + j]!;
    }
  return out;
}

function kron(a: Float64Array, ar: number, ac: number, b: Float64Array, br: number, bc: number): Float64Array {
  const out = new Float64Array(ar * br * ac * bc);
  const cols = ac * bc;
  for (let i = 0; i < ar; i++)
    for (let j = 0; j < ac; j++)
      for (let k = 0; k < br; k++)
        for (let l = 0; l < bc; l++) out[(i * br + k) * cols + j * bc + l] = a[i * ac + j]! * b[k * bc + l]!;
  return out;
}

async function factor(w?: { shape: readonly number[]; f32(): Promise<Float32Array> }, a?: typeof w, b?: typeof w) {
  if (w) return { data: await f64(w), rows: w.shape[0]!, cols: numel(w.shape) / w.shape[0]! };
  const A = a!;
  const B = b!;
  const k = A.shape[1]!;
  const cols = numel(B.shape) / B.shape[0]!;
  return { data: matmul(await f64(A), await f64(B), A.shape[0]!, k, cols), rows: A.shape[0]!, cols };
}

/** LoCon Tucker: ΔW[o, (c, s)] = scale · Σᵢⱼ up[o, i] · mid[i, j, s] · down[j, c] (down [r, in, 1, 1], mid [r, r, kh, kw]). */
async function tuckerDelta(upT: { shape: readonly number[]; f32(): Promise<Float32Array> }, midT: typeof upT, downT: typeof upT, scale: number): Promise<DenseDelta> {
  const [up, mid, down] = await Promise.all([f64(upT), f64(midT), f64(downT)]);
  const out = upT.shape[0]!;
  const ri = midT.shape[0]!;
  const rj = midT.shape[1]!;
  const k = numel(midT.shape.slice(2));
  const inputs = numel(downT.shape) / downT.shape[0]!;
  const cols = inputs * k;
  const d = new Float64Array(out * cols);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < ri; i++)
      for (let j = 0; j < rj; j++)
        for (let c = 0; c < inputs; c++)
          for (let s = 0; s < k; s++) d[o * cols + c * k + s]! += scale * up[o * ri + i]! * mid[(i * rj + j) * k + s]! * down[j * inputs + c]!;
  return { rows: out, cols, data: d };
}

/** LoHa/LoKr Tucker factor: m[p, (c, s)] = Σᵢⱼ core[i, j, s] · a[i, p] · b[j, c] (a [r, out], b [r, in], core [r, r, kh, kw]). */
async function tuckerFactor(coreT: { shape: readonly number[]; f32(): Promise<Float32Array> }, aT: typeof coreT, bT: typeof coreT) {
  const [core, a, b] = await Promise.all([f64(coreT), f64(aT), f64(bT)]);
  const [ri, rj] = coreT.shape as [number, number];
  const k = numel(coreT.shape.slice(2));
  const rows = aT.shape[1]!;
  const inputs = bT.shape[1]!;
  const cols = inputs * k;
  const data = new Float64Array(rows * cols);
  for (let p = 0; p < rows; p++)
    for (let i = 0; i < ri; i++)
      for (let j = 0; j < rj; j++)
        for (let c = 0; c < inputs; c++)
          for (let s = 0; s < k; s++) data[p * cols + c * k + s]! += core[(i * rj + j) * k + s]! * a[i * rows + p]! * b[j * inputs + c]!;
  return { data, rows, cols };
}

/** Dense ΔW of one adapter (shape [rows, cols]); `set` adapters return their replacement values. */
export async function referenceAdapterDelta(adapter: Adapter): Promise<DenseDelta> {
  switch (adapter.kind) {
    case 'lora': {
      if (adapter.mid) return tuckerDelta(adapter.up, adapter.mid, adapter.down, adapter.scale);
      const [out, r] = adapter.up.shape as [number, number];
      const cols = numel(adapter.down.shape) / adapter.down.shape[0]!;
      const d = matmul(await f64(adapter.up), await f64(adapter.down), out, r, cols);
      for (let i = 0; i < d.length; i++) d[i]! *= adapter.scale;
      return { rows: out, cols, data: d };
    }
    case 'loha': {
      const w1 = adapter.t1 ? await tuckerFactor(adapter.t1, adapter.w1a, adapter.w1b) : await factor(undefined, adapter.w1a, adapter.w1b);
      const w2 = adapter.t2 ? await tuckerFactor(adapter.t2, adapter.w2a, adapter.w2b) : await factor(undefined, adapter.w2a, adapter.w2b);
      const d = new Float64Array(w1.data.length);
      for (let i = 0; i < d.length; i++) d[i] = adapter.scale * w1.data[i]! * w2.data[i]!;
      return { rows: w1.rows, cols: w1.cols, data: d };
    }
    case 'lokr': {
      const w1 = await factor(adapter.w1, adapter.w1a, adapter.w1b);
      const w2 = adapter.t2 ? await tuckerFactor(adapter.t2, adapter.w2a!, adapter.w2b!) : await factor(adapter.w2, adapter.w2a, adapter.w2b);
      const d = kron(w1.data, w1.rows, w1.cols, w2.data, w2.rows, w2.cols);
      for (let i = 0; i < d.length; i++) d[i]! *= adapter.scale;
      return { rows: w1.rows * w2.rows, cols: w1.cols * w2.cols, data: d };
    }
    case 'full': {
      const s = adapter.diff.shape;
      return { rows: s[0] ?? 1, cols: s.length > 1 ? numel(s) / s[0]! : 1, data: await f64(adapter.diff) };
    }
    case 'set': {
      const s = adapter.value.shape;
      return { rows: s[0] ?? 1, cols: s.length > 1 ? numel(s) / s[0]! : 1, data: await f64(adapter.value) };
    }
  }
}

export interface TargetDelta extends DenseDelta {
  component: Patch['component'];
  target: string;
  /** True for replacement values (`set`), which are compared, not summed. */
  replace: boolean;
}

/**
 * Sums every patch's dense ΔW into one matrix per base weight (row slices placed at their rows).
 * DoRA magnitudes are not applied (they need the base weight); compare them separately.
 */
export async function referenceDeltas(set: Pick<AdapterSet, 'patches'>): Promise<Map<string, TargetDelta>> {
  const parts = new Map<string, { patch: Patch; delta: DenseDelta }[]>();
  for (const patch of set.patches) {
    const key = `${patch.component}:${patch.target}`;
    const delta = await referenceAdapterDelta(patch.adapter);
    const list = parts.get(key) ?? [];
    list.push({ patch, delta });
    parts.set(key, list);
  }
  const out = new Map<string, TargetDelta>();
  for (const [key, list] of parts) {
    const cols = list[0]!.delta.cols;
    const rows = Math.max(...list.map(({ patch, delta }) => (patch.rows ? patch.rows[0] + patch.rows[1] : delta.rows)));
    const data = new Float64Array(rows * cols);
    for (const { patch, delta } of list) {
      if (delta.cols !== cols) throw new Error(`${key}: patches disagree on the input width (${delta.cols} vs ${cols})`);
      const start = patch.rows?.[0] ?? 0;
      const len = patch.rows?.[1] ?? delta.rows;
      if (len !== delta.rows) throw new Error(`${key}: row slice of ${len} rows holds a ΔW of ${delta.rows} rows`);
      const offset = start * cols;
      for (let i = 0; i < delta.data.length; i++) data[offset + i]! += delta.data[i]!;
    }
    const first = list[0]!.patch;
    out.set(key, { component: first.component, target: first.target, rows, cols, data, replace: first.adapter.kind === 'set' });
  }
  return out;
}

/** Largest |a−b| relative to the largest |a| over all weights; throws naming the first weight that is missing or misshapen. */
export function compareDeltas(expected: Map<string, TargetDelta>, actual: Map<string, TargetDelta>): { maxRelError: number; worst: string } {
  let worst = '';
  let maxRel = 0;
  for (const key of new Set([...expected.keys(), ...actual.keys()])) {
    const e = expected.get(key);
    const a = actual.get(key);
    if (!e || !a) throw new Error(`delta for ${key} is ${e ? 'missing from the result' : 'unexpected in the result'}`);
    if (e.rows !== a.rows || e.cols !== a.cols) throw new Error(`delta for ${key}: shape [${a.rows},${a.cols}] but expected [${e.rows},${e.cols}]`);
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < e.data.length; i++) {
      scale = Math.max(scale, Math.abs(e.data[i]!));
      diff = Math.max(diff, Math.abs(e.data[i]! - a.data[i]!));
    }
    const rel = scale === 0 ? diff : diff / scale;
    if (rel > maxRel || worst === '') {
      maxRel = Math.max(maxRel, rel);
      worst = key;
    }
  }
  return { maxRelError: maxRel, worst };
}
