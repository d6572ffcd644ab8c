/**
 * Small FLUX-shaped LoRAs built directly in the canonical model, and a float64 reference SVD, for
 * the operation tests. Everything here is deliberately naive and independent of src/lora.
 */
import type { Adapter, AdapterSet, Component, Patch, RowSlice } from '../src/adapter/model.ts';
import { fluxCheckpointShapes, type FluxCheckpointOptions } from '../src/samples/flux-checkpoint.ts';
import type { TargetDelta } from '../src/samples/reference-delta.ts';
import { memoryTensor, type LazyTensor } from '../src/tensor/lazy.ts';

/** A small FLUX: widths / 64 (hidden 48), two blocks of each kind. */
export const SMALL_FLUX: FluxCheckpointOptions = { scale: 64, doubleBlocks: 2, singleBlocks: 2 };

export function fluxShapes(opts: FluxCheckpointOptions = SMALL_FLUX): Map<string, number[]> {
  return new Map(fluxCheckpointShapes(opts).map((t) => [t.name, t.shape]));
}

export function random(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
}

export function randomTensor(shape: readonly number[], seed: number, amp = 1): LazyTensor {
  const next = random(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return memoryTensor(Float32Array.from({ length: n }, () => amp * next()), shape, 'F32', `random ${seed}`);
}

export interface LoraSpec {
  target: string;
  rank: number;
  rows?: RowSlice;
  alpha?: number;
  component?: Component;
  /** Input width (defaults to the FLUX shape of the target). */
  cols?: number;
  /** Output rows of the whole target (defaults to the FLUX shape). */
  height?: number;
}

let serial = 1;

/** A random LoRA patch on `spec.target` with the given rank (scale alpha / rank, or 1). */
export function loraPatch(spec: LoraSpec, seed = serial++, shapes = fluxShapes()): Patch {
  const shape = shapes.get(spec.target);
  const cols = spec.cols ?? shape?.[1];
  const height = spec.height ?? shape?.[0];
  if (cols === undefined || height === undefined) throw new Error(`fixture: unknown target ${spec.target}`);
  const rows = spec.rows?.[1] ?? height;
  const adapter: Adapter = {
    kind: 'lora',
    down: randomTensor([spec.rank, cols], seed * 7 + 1, 0.5),
    up: randomTensor([rows, spec.rank], seed * 7 + 2, 0.5),
    alpha: spec.alpha,
    scale: spec.alpha !== undefined ? spec.alpha / spec.rank : 1,
  };
  const module = `${spec.target.replace(/\.weight$/, '')}${spec.rows ? `[${spec.rows}]` : ''}`;
  return { component: spec.component ?? 'transformer', target: spec.target, rows: spec.rows, adapter, source: { module, keys: [`${module}.up`, `${module}.down`] } };
}

export function adapterSet(patches: Patch[], format = 'test'): AdapterSet {
  return { architecture: 'flux', format, patches, metadata: {}, unknownKeys: [], notes: [] };
}

/** A kohya-like LoRA: whole-weight patches on fused weights. */
export function kohyaLike(rank: number, alpha: number, seed: number, shapes = fluxShapes()): AdapterSet {
  const targets = ['double_blocks.0.img_attn.qkv.weight', 'double_blocks.1.txt_mlp.0.weight', 'single_blocks.0.linear1.weight', 'single_blocks.1.linear2.weight', 'final_layer.adaLN_modulation.1.weight'];
  return adapterSet(targets.map((target, i) => loraPatch({ target, rank, alpha }, seed * 100 + i, shapes)), 'kohya');
}

/** A diffusers-like LoRA: q/k/v row slices of the fused weights (and mlp of linear1), no alpha. */
export function diffusersLike(rank: number, seed: number, shapes = fluxShapes()): AdapterSet {
  const h = shapes.get('double_blocks.0.img_attn.proj.weight')![0]!;
  const mlp = shapes.get('double_blocks.0.img_mlp.0.weight')![0]!;
  const patches: Patch[] = [];
  let i = 0;
  for (const [start, len] of [[0, h], [h, h], [2 * h, h]] as const) {
    patches.push(loraPatch({ target: 'double_blocks.0.img_attn.qkv.weight', rank, rows: [start, len] }, seed * 100 + i++, shapes));
    patches.push(loraPatch({ target: 'single_blocks.0.linear1.weight', rank, rows: [start, len] }, seed * 100 + i++, shapes));
  }
  patches.push(loraPatch({ target: 'single_blocks.0.linear1.weight', rank, rows: [3 * h, mlp] }, seed * 100 + i++, shapes));
  patches.push(loraPatch({ target: 'double_blocks.1.img_attn.proj.weight', rank }, seed * 100 + i++, shapes));
  return adapterSet(patches, 'diffusers');
}

/** Σ wᵢ·Δᵢ over reference delta maps (targets missing from one input count as zero there). */
export function weightedSum(maps: readonly Map<string, TargetDelta>[], weights: readonly number[]): Map<string, TargetDelta> {
  const out = new Map<string, TargetDelta>();
  maps.forEach((m, i) => {
    for (const [key, d] of m) {
      const acc = out.get(key);
      if (!acc) {
        out.set(key, { ...d, data: d.data.map((v) => v * weights[i]!) });
        continue;
      }
      if (acc.cols !== d.cols) throw new Error(`${key}: widths differ`);
      if (d.rows > acc.rows) {
        const grown = new Float64Array(d.rows * d.cols);
        grown.set(acc.data);
        acc.data = grown;
        acc.rows = d.rows;
      }
      for (let j = 0; j < d.data.length; j++) acc.data[j]! += weights[i]! * d.data[j]!;
    }
  });
  return out;
}

/** Naive one-sided Jacobi SVD in float64 (row-major m×n): A = U·diag(s)·Vᵀ, s descending. */
export function referenceSvd(a: Float64Array, m: number, n: number): { u: Float64Array; s: Float64Array; v: Float64Array; k: number } {
  const transpose = m < n;
  const [r, c] = transpose ? [n, m] : [m, n];
  // Work on the columns of B (r×c, r ≥ c): B = A or Aᵀ.
  const b = new Float64Array(r * c);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) b[transpose ? j * c + i : i * c + j] = a[i * n + j]!;
  const v = new Float64Array(c * c);
  for (let i = 0; i < c; i++) v[i * c + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < c; p++)
      for (let q = p + 1; q < c; q++) {
        let alpha = 0, beta = 0, gamma = 0;
        for (let i = 0; i < r; i++) {
          const x = b[i * c + p]!, y = b[i * c + q]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta) || gamma === 0) continue;
        off = Math.max(off, Math.abs(gamma) / Math.sqrt(alpha * beta));
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const cs = 1 / Math.sqrt(1 + t * t), sn = cs * t;
        for (let i = 0; i < r; i++) {
          const x = b[i * c + p]!, y = b[i * c + q]!;
          b[i * c + p] = cs * x - sn * y;
          b[i * c + q] = sn * x + cs * y;
        }
        for (let i = 0; i < c; i++) {
          const x = v[i * c + p]!, y = v[i * c + q]!;
          v[i * c + p] = cs * x - sn * y;
          v[i * c + q] = sn * x + cs * y;
        }
      }
    if (off < 1e-15) break;
  }
  const norms = Array.from({ length: c }, (_, j) => {
    let s = 0;
    for (let i = 0; i < r; i++) s += b[i * c + j]! ** 2;
    return Math.sqrt(s);
  });
  const order = norms.map((_, j) => j).sort((x, y) => norms[y]! - norms[x]!);
  const s = Float64Array.from(order, (j) => norms[j]!);
  const left = new Float64Array(r * c); // normalised columns of B
  const right = new Float64Array(c * c);
  order.forEach((j, t) => {
    for (let i = 0; i < r; i++) left[i * c + t] = norms[j]! > 0 ? b[i * c + j]! / norms[j]! : 0;
    for (let i = 0; i < c; i++) right[i * c + t] = v[i * c + j]!;
  });
  // B = left·Σ·rightᵀ; for A = Bᵀ the roles swap.
  return transpose ? { u: right, s, v: left, k: c } : { u: left, s, v: right, k: c };
}

/** The best rank-k approximation of a dense m×n matrix (reference). */
export function bestRankK(a: Float64Array, m: number, n: number, k: number): { approx: Float64Array; s: Float64Array } {
  const { u, s, v, k: full } = referenceSvd(a, m, n);
  const approx = new Float64Array(m * n);
  for (let t = 0; t < Math.min(k, full); t++)
    for (let i = 0; i < m; i++) {
      const ui = u[i * full + t]! * s[t]!;
      if (ui === 0) continue;
      for (let j = 0; j < n; j++) approx[i * n + j]! += ui * v[j * full + t]!;
    }
  return { approx, s };
}

/** ‖a − b‖_F / ‖b‖_F. */
export function relFrobenius(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, n = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return n === 0 ? Math.sqrt(d) : Math.sqrt(d / n);
}

export const BACKENDS = ['wasm', 'webgpu'] as const;
