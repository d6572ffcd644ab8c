/**
 * The checkpoint merge methods and their per-tensor arithmetic (f32), on the values of one tensor of
 * each input. α is the tensor's: the block's when `blocks` names it, else the global one.
 *
 *   weighted         Σᵢ wᵢ·Aᵢ. Weights: `weights` (one per model), or from α: (1 − α, α) for two
 *                    models (supermerger's weighted sum), (1 − α, α/2, α/2) for three; α default 0.5.
 *   add-difference   A + α·(B − C) (three models; α default 1).
 *   ties, dare, dare-ties, magnitude-prune
 *                    over task vectors relative to `base`: τᵢ = wᵢ·(Mᵢ − Base) (wᵢ default 1), each
 *                    thinned and combined per tensor exactly as the LoRA methods do per module
 *                    (merge-methods.ts: sparsify.ts' top-k trim and seeded DARE mask, disjoint-mean.ts'
 *                    sign election), then Base + α·merged (α default 1). DARE's mask of input i on a
 *                    tensor is seeded by dareSeed(seed, i, module), the module named as the LoRA
 *                    methods name the same base weight (checkpoint-blocks.ts), so the masks are the
 *                    same on every backend and run, and independent of the key prefix.
 */
import { inputError, type LoraflowError } from '../errors.ts';
import { addSigned, disjointMean } from './disjoint-mean.ts';
import { resolveMethod, type DenseMethod } from './merge-methods.ts';
import { dareSeed, dropAndRescale, keepTopK, topKCount } from './sparsify.ts';

export const CHECKPOINT_METHODS = ['weighted', 'add-difference', 'ties', 'dare', 'dare-ties', 'magnitude-prune'] as const;
export type CheckpointMethod = (typeof CHECKPOINT_METHODS)[number];
export type TaskVectorMethod = Exclude<CheckpointMethod, 'weighted' | 'add-difference'>;

export function isCheckpointMethod(m: unknown): m is CheckpointMethod {
  return typeof m === 'string' && (CHECKPOINT_METHODS as readonly string[]).includes(m);
}

export function isTaskVectorMethod(m: CheckpointMethod): m is TaskVectorMethod {
  return m !== 'weighted' && m !== 'add-difference';
}

export function checkpointMergeError(message: string): LoraflowError {
  return inputError('CHECKPOINT_MERGE', `merge-checkpoints: ${message}`);
}

export interface CheckpointMethodOptions {
  method: CheckpointMethod;
  /** Global α (see above for each method's default). */
  alpha?: number;
  /** weighted: one weight per model; task-vector methods: the weight of each τᵢ. */
  weights?: readonly number[];
  density?: number;
  drop?: number;
  seed?: number;
  /** Per-block α: `ID=value` pairs with ranges or a full vector of the family's block ids. */
  blocks?: string;
}

export interface ResolvedCheckpointMethod {
  method: CheckpointMethod;
  alpha: number;
  /** Explicit weights (weighted with `weights`, or the task-vector weights, default 1 each); undefined: from α. */
  weights?: number[];
  density: number;
  drop: number;
  seed: number;
}

/** Checks the params against the method and the number of models (and whether a base was given); fills in the defaults. */
export function resolveCheckpointMethod(o: CheckpointMethodOptions, models: number, hasBase: boolean): ResolvedCheckpointMethod {
  const { method } = o;
  if (!isCheckpointMethod(method)) throw checkpointMergeError(`unknown method "${String(method)}" (${CHECKPOINT_METHODS.join(', ')})`);
  const fail = (m: string) => checkpointMergeError(`${method}: ${m}`);
  if (models < 2 || models > 3) throw fail(`takes two or three models, got ${models}`);
  if (o.alpha !== undefined && !Number.isFinite(o.alpha)) throw fail(`alpha must be a finite number, got ${o.alpha}`);
  if (o.weights !== undefined) {
    if (o.weights.length !== models) throw fail(`${o.weights.length} weight(s) for ${models} models`);
    const bad = o.weights.findIndex((w) => !Number.isFinite(w));
    if (bad >= 0) throw fail(`weight ${bad + 1} (${o.weights[bad]}) is not a finite number`);
  }
  if (isTaskVectorMethod(method)) {
    if (!hasBase) throw fail('needs a base checkpoint (the task vectors are τᵢ = wᵢ·(Mᵢ − base))');
    let m;
    try {
      m = resolveMethod(method as DenseMethod, o, 'merge-checkpoints');
    } catch (e) {
      throw fail((e as Error).message.replace(/^merge-checkpoints \([^)]*\): /, ''));
    }
    return { method, alpha: o.alpha ?? 1, weights: o.weights ? [...o.weights] : Array.from({ length: models }, () => 1), density: m.density, drop: m.drop, seed: m.seed };
  }
  if (hasBase) throw fail(`takes no base (the base is for ${CHECKPOINT_METHODS.filter(isTaskVectorMethod).join(', ')})`);
  for (const k of ['density', 'drop', 'seed'] as const) if (o[k] !== undefined) throw fail(`${k} applies to ${k === 'density' ? 'ties and magnitude-prune' : 'dare and dare-ties'}`);
  if (method === 'add-difference') {
    if (models !== 3) throw fail(`A + α·(B − C) takes three models, got ${models}`);
    if (o.weights !== undefined) throw fail('takes no weights (alpha, or per-block alpha with blocks)');
    return { method, alpha: o.alpha ?? 1, density: 1, drop: 0, seed: 0 };
  }
  if (o.weights !== undefined && (o.alpha !== undefined || o.blocks !== undefined)) {
    throw fail(`give either weights (Σ wᵢ·Aᵢ) or alpha / blocks (weights 1 − α and α${models === 3 ? '/2, α/2' : ''} per tensor), not both`);
  }
  return { method, alpha: o.alpha ?? 0.5, weights: o.weights ? [...o.weights] : undefined, density: 1, drop: 0, seed: 0 };
}

/** The params that apply, for reports and metadata. */
export function checkpointMethodParams(m: ResolvedCheckpointMethod, blocks?: string): Record<string, unknown> {
  const task = isTaskVectorMethod(m.method);
  return {
    ...(m.method === 'weighted' && m.weights ? { weights: m.weights } : { alpha: m.alpha }),
    ...(task ? { weights: m.weights } : {}),
    ...(m.method === 'ties' || m.method === 'magnitude-prune' ? { density: m.density } : {}),
    ...(m.method === 'dare' || m.method === 'dare-ties' ? { drop: m.drop, seed: m.seed } : {}),
    ...(blocks !== undefined ? { blocks } : {}),
  };
}

/** weighted: the weights of one tensor with α = `alpha`. */
export function weightedWeights(m: ResolvedCheckpointMethod, models: number, alpha: number): number[] {
  if (m.weights) return m.weights;
  return models === 2 ? [1 - alpha, alpha] : [1 - alpha, alpha / 2, alpha / 2];
}

/** Whether identical inputs give that same tensor back (so it can be copied byte for byte). */
export function identityPreserving(m: ResolvedCheckpointMethod, models: number, alpha: number): boolean {
  if (m.method !== 'weighted') return true;
  return weightedWeights(m, models, alpha).reduce((a, b) => a + b, 0) === 1;
}

/** Elementwise methods, on a chunk of each model's values: out ← weighted sum / A + α(B − C). */
export function elementwise(m: ResolvedCheckpointMethod, inputs: readonly Float32Array[], alpha: number, out: Float32Array): void {
  const n = out.length;
  if (m.method === 'add-difference') {
    const [a, b, c] = inputs as [Float32Array, Float32Array, Float32Array];
    for (let j = 0; j < n; j++) out[j] = a[j]! + alpha * (b[j]! - c[j]!);
    return;
  }
  const w = weightedWeights(m, inputs.length, alpha);
  const [a, b] = inputs as [Float32Array, Float32Array];
  const [w0, w1] = w as [number, number];
  if (inputs.length === 2) {
    for (let j = 0; j < n; j++) out[j] = w0 * a[j]! + w1 * b[j]!;
    return;
  }
  const c = inputs[2]!;
  const w2 = w[2]!;
  for (let j = 0; j < n; j++) out[j] = w0 * a[j]! + w1 * b[j]! + w2 * c[j]!;
}

/** Buffers of the task-vector methods for one tensor at a time, allocated at the largest tensor's size and reused. */
export class TaskWorkspace {
  private readonly buffers = new Map<string, ArrayBuffer>();
  constructor(private readonly capacity: number) {}

  private buffer(name: string, bytes: number): ArrayBuffer {
    let b = this.buffers.get(name);
    if (!b) this.buffers.set(name, (b = new ArrayBuffer(this.capacity * bytes)));
    return b;
  }

  f32(name: string, n: number): Float32Array {
    return new Float32Array(this.buffer(name, 4), 0, n);
  }

  u8(name: string, n: number): Uint8Array {
    return new Uint8Array(this.buffer(name, 1), 0, n);
  }
}

/**
 * The task-vector methods on one tensor: `base` and `out` hold n values; `model(i, t)` fills `t`
 * with model i's values. Writes Base + α·merged(τ) into `out`.
 */
export function taskVectorMerge(
  m: ResolvedCheckpointMethod,
  models: number,
  base: Float32Array,
  model: (i: number, t: Float32Array) => void,
  alpha: number,
  module: string,
  ws: TaskWorkspace,
  out: Float32Array,
): void {
  const n = base.length;
  const t = ws.f32('task', n);
  const signed = m.method === 'ties' || m.method === 'dare-ties';
  const trims = m.method === 'ties' || m.method === 'magnitude-prune';
  const drops = m.method === 'dare' || m.method === 'dare-ties';
  const acc = signed ? ws.f32('pos', n).fill(0) : out.fill(0);
  const total = signed ? ws.f32('total', n).fill(0) : undefined;
  const np = signed ? ws.u8('np', n).fill(0) : undefined;
  const nn = signed ? ws.u8('nn', n).fill(0) : undefined;
  for (let i = 0; i < models; i++) {
    model(i, t);
    const w = m.weights![i]!;
    for (let j = 0; j < n; j++) t[j] = w * (t[j]! - base[j]!);
    if (trims && m.density < 1) keepTopK(t, topKCount(m.density, n));
    if (drops && m.drop > 0) dropAndRescale(t, m.drop, dareSeed(m.seed, i, module));
    if (signed) addSigned(t, acc, total!, np!, nn!);
    else for (let j = 0; j < n; j++) acc[j]! += t[j]!;
  }
  const merged = signed ? disjointMean(acc, total!, np!, nn!) : acc;
  for (let j = 0; j < n; j++) out[j] = base[j]! + alpha * merged[j]!;
}
