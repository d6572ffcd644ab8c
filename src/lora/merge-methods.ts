/**
 * Interference-aware merges of several LoRAs (any mix of formats and adapter kinds), computed module
 * by module on the dense ΔW of that one module, so memory is bounded by the largest module, never
 * by the model. A module is one base weight: diffusers' q/k/v row slices of FLUX's fused qkv and a
 * kohya LoRA on the whole qkv are the same module, so the result does not depend on the inputs' layouts.
 *
 * For input i with weight wᵢ, the task vector is τᵢ = wᵢ·ΔWᵢ (ΔWᵢ includes the adapter's own scale;
 * block weights and filters are applied to the inputs before, by their nodes). Then, per module:
 *
 *   linear           Σᵢ τᵢ.
 *   magnitude-prune  τ̂ᵢ = τᵢ with all but its k = round(density·n) largest |entries| zeroed
 *                    (n = the entries input i covers in the module; at least 1 kept); Σᵢ τ̂ᵢ.
 *   ties             (Yadav et al. 2023, TIES-Merging) τ̂ᵢ trimmed as above; elected sign
 *                    γ = sign(Σᵢ τ̂ᵢ) per entry; merged = Σ{i: sign(τ̂ᵢ) = γ, τ̂ᵢ ≠ 0} τ̂ᵢ divided by the
 *                    number of those agreeing non-zero entries (disjoint mean); 0 where there are
 *                    none or where Σᵢ τ̂ᵢ = 0 exactly.
 *   dare             (Yu et al. 2023, DARE) per input a Bernoulli mask keeps each entry with
 *                    probability 1 − p and rescales the kept ones by 1/(1 − p); Σᵢ of the results.
 *   dare-ties        DARE's drop and rescale per input, then TIES' sign election and disjoint mean
 *                    (no trim).
 *
 * The weights are part of τᵢ before trimming and the sign election (a negative weight votes with its
 * flipped sign; a small weight has a small say). PEFT's `ties`/`dare_ties` trim and elect on the
 * unweighted ΔWᵢ and apply the weights only in the disjoint mean; both agree when all weights are
 * equal and positive. Trimming itself does not depend on the weights.
 *
 * Top-k selection is an O(n) radix selection with ties at the threshold kept lowest index first;
 * DARE masks come from mulberry32 on the CPU in index order, seeded by FNV-1a("seed:input:module")
 * (sparsify.ts), so they are identical on every backend and run and differ for another seed.
 *
 * Output: a LoRA of the chosen rank / energy per module (randomized SVD of the merged ΔW, with the
 * relative Frobenius error per module and overall), or the merged ΔW itself as full `diff` patches
 * (exact), computed lazily when the writer or applyToBase asks for each module. Merging into a base
 * with a method (applyToBase) uses the same diff patches: base + merged ΔW, one weight at a time.
 */
import type { AdapterSet, Component, LoraAdapter, Patch, RowSlice } from '../adapter/model.ts';
import { adapterTensors } from '../adapter/kinds.ts';
import { inputError, type LoraflowError } from '../errors.ts';
import { activeBackend, ensureBackend } from '../tensor/backend.ts';
import { lowRankAddKernel, type LowRankAdd } from '../tensor/low-rank-add-simd.ts';
import { decodeToF32, encodeFromF32, type DType } from '../tensor/dtype.ts';
import { memoryTensor, type LazyTensor } from '../tensor/lazy.ts';
import { matmul } from '../tensor/linalg.ts';
import { checkAborted, type OpContext } from '../adapter/context.ts';
import { denseDelta } from './dense-delta.ts';
import { readFactorPart } from './factors.ts';
import { adapterGeometry } from './geometry.ts';
import { checkRankChoice, factorizeDense, energyOf, overallError, rankChoiceError, type FitEnergy, type RankChoice } from './lowrank.ts';
import type { MergeInput, MergeReport } from './merge.ts';
import { sharedMetadata } from './merge.ts';
import { seedFromName } from './seed.ts';
import { dareSeed, dropAndRescale, keepTopK, topKCount } from './sparsify.ts';
import { addSigned, disjointMean } from './disjoint-mean.ts';

export const DENSE_METHODS = ['linear', 'ties', 'dare', 'dare-ties', 'magnitude-prune'] as const;
export type DenseMethod = (typeof DENSE_METHODS)[number];
export type MergeOutput = 'lora' | 'diff';

export const DEFAULT_DENSITY = 0.5;
export const DEFAULT_DROP = 0.5;
export const DEFAULT_SEED = 0;

export function isDenseMethod(method: unknown): method is DenseMethod {
  return typeof method === 'string' && (DENSE_METHODS as readonly string[]).includes(method);
}

export interface MethodParams {
  /** ties, magnitude-prune: fraction of each input's entries kept per module, in (0, 1] (default 0.5). */
  density?: number;
  /** dare, dare-ties: drop probability p in [0, 1) (default 0.5; PEFT's density is 1 − p). */
  drop?: number;
  /** dare, dare-ties: seed of the masks, an integer in [0, 2³²) (default 0). */
  seed?: number;
}

export interface ResolvedMethod {
  method: DenseMethod;
  /** 1 when the method does not trim. */
  density: number;
  /** 0 when the method does not drop. */
  drop: number;
  seed: number;
}

const TRIMS: ReadonlySet<DenseMethod> = new Set(['ties', 'magnitude-prune']);
const DROPS: ReadonlySet<DenseMethod> = new Set(['dare', 'dare-ties']);
const SIGNED: ReadonlySet<DenseMethod> = new Set(['ties', 'dare-ties']);

export function methodError(message: string): LoraflowError {
  return inputError('MERGE_METHOD', message);
}

/** Checks density / drop / seed for `method` (each only where it applies) and fills in the defaults. */
export function resolveMethod(method: DenseMethod, p: MethodParams, what: string): ResolvedMethod {
  const where = `${what} (${method})`;
  if (p.density !== undefined && !TRIMS.has(method)) {
    throw methodError(`${where}: density applies to ties and magnitude-prune${DROPS.has(method) ? `; ${method} takes drop (the probability of dropping an entry, 1 − PEFT's density)` : ''}`);
  }
  if (p.drop !== undefined && !DROPS.has(method)) throw methodError(`${where}: drop applies to dare and dare-ties${TRIMS.has(method) ? `; ${method} takes density` : ''}`);
  if (p.seed !== undefined && !DROPS.has(method)) throw methodError(`${where}: seed applies to dare and dare-ties (the seed of their random masks)`);
  const density = p.density ?? (TRIMS.has(method) ? DEFAULT_DENSITY : 1);
  const drop = p.drop ?? (DROPS.has(method) ? DEFAULT_DROP : 0);
  const seed = p.seed ?? DEFAULT_SEED;
  if (typeof density !== 'number' || !(density > 0 && density <= 1)) throw methodError(`${where}: density must be in (0, 1], got ${String(density)}`);
  if (typeof drop !== 'number' || !(drop >= 0 && drop < 1)) throw methodError(`${where}: drop must be in [0, 1), got ${String(drop)}`);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw methodError(`${where}: seed must be an integer in [0, 2^32), got ${String(seed)}`);
  return { method, density, drop, seed };
}

/** The method's params for reports and metadata: only those that apply. */
export function methodParams(m: ResolvedMethod): MethodParams {
  return { ...(TRIMS.has(m.method) ? { density: m.density } : {}), ...(DROPS.has(m.method) ? { drop: m.drop, seed: m.seed } : {}) };
}

// ---- planning: which patches form which module -----------------------------------------------

interface Contribution {
  patch: Patch;
  weight: number;
  /** First row within the module. */
  rowStart: number;
  rows: number;
}

interface InputEntry {
  input: number;
  parts: Contribution[];
  /** Rows of the module this input's patches cover (their union). */
  coveredRows: number;
}

export interface ModulePlan {
  /** `component:target`, also the module name in DARE seeds and reports. */
  key: string;
  component: Component;
  target: string;
  /** First row of the target the module covers, and how many. */
  start: number;
  rows: number;
  cols: number;
  whole: boolean;
  /** Shape of the merged ΔW as a full diff (conv weights keep their kernel dims where an input shows them). */
  shape: number[];
  /** A 1-D target (bias): always written as a full diff. */
  vector: boolean;
  /** Row ranges of the inputs differ (slices of a fused weight). */
  fused: boolean;
  entries: InputEntry[];
  dtype: DType;
  source: Patch['source'];
}

export interface MethodPlan {
  modules: ModulePlan[];
  /** Replacement (`set`) patches, carried over. */
  passthrough: Patch[];
  omitted: string[];
  ignoredKeys: string[];
  notes: string[];
  /** Elements of the largest module (its buffers are reused for every module). */
  capacity: number;
}

/** The dtype every tensor shares, else F32. */
function commonDtype(tensors: readonly LazyTensor[]): DType {
  const first = tensors[0]?.dtype ?? 'F32';
  return tensors.every((t) => t.dtype === first) ? first : 'F32';
}

/** The kernel / input dims after the rows, from any input that shows them (conv weights). */
function trailingShape(parts: readonly Contribution[], cols: number): number[] {
  for (const { patch } of parts) {
    const a = patch.adapter;
    if (a.kind === 'lora' && a.mid && a.down.shape.length === 4) return [a.down.shape[1]!, ...a.mid.shape.slice(2)];
    if (a.kind === 'lora' && a.down.shape.length > 2) return a.down.shape.slice(1);
    if (a.kind === 'full' && a.diff.shape.length > 2) return a.diff.shape.slice(1);
    if (a.kind === 'loha' && a.t1 && a.w1b.shape.length === 2) return [a.w1b.shape[1]!, ...a.t1.shape.slice(2)];
  }
  return [cols];
}

function listNames(names: readonly string[], max = 8): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** A patch at its absolute first row of the target, with its ΔW's shape. */
interface Placed {
  patch: Patch;
  weight: number;
  input: number;
  start: number;
  rows: number;
  cols: number;
}

type Fail = (message: string) => LoraflowError;
type Replacement = { patch: Patch; input: number; weight: number };

/** Every input's patches by base weight (replacements apart), with what is left out and why. */
function placeInputs(inputs: readonly MergeInput[], fail: Fail) {
  const byTarget = new Map<string, Placed[]>();
  const sets = new Map<string, Replacement[]>();
  const omitted: string[] = [];
  const ignoredKeys: string[] = [];
  const dora: string[] = [];
  inputs.forEach(({ set, weight }, input) => {
    ignoredKeys.push(...set.unknownKeys.map((k) => `input ${input + 1}: ${k}`));
    for (const patch of set.patches) {
      const module = patch.source.module;
      const key = `${patch.component}:${patch.target}`;
      if (weight === 0) omitted.push(`input ${input + 1}: ${module}`);
      else if (patch.dora) dora.push(`${module} (input ${input + 1})`);
      else if (patch.adapter.kind === 'set') sets.set(key, [...(sets.get(key) ?? []), { patch, input, weight }]);
      else {
        const g = adapterGeometry(patch.adapter, module);
        if (patch.rows && patch.rows[1] !== g.rows) throw fail(`${module}: a row slice of ${patch.rows[1]} rows holds a ΔW of ${g.rows} rows`);
        byTarget.set(key, [...(byTarget.get(key) ?? []), { patch, weight, input, start: patch.rows?.[0] ?? 0, rows: g.rows, cols: g.cols }]);
      }
    }
  });
  if (dora.length) throw fail(`DoRA patches cannot be merged by a dense method (their renormalisation needs the base weight): ${listNames(dora)}`);
  return { byTarget, sets, omitted, ignoredKeys };
}

/** Replacements pass through unmerged: one per weight, their values as they are. */
function replacements(sets: ReadonlyMap<string, Replacement[]>, fail: Fail): { passthrough: Patch[]; notes: string[] } {
  const passthrough: Patch[] = [];
  const notes: string[] = [];
  for (const [key, list] of sets) {
    if (list.length > 1) throw fail(`${key}: ${list.length} inputs replace this weight outright (${list.map((p) => `${p.patch.source.module}, input ${p.input + 1}`).join('; ')}); replacements cannot be merged`);
    const { patch, weight } = list[0]!;
    passthrough.push(patch);
    if (weight !== 1) notes.push(`${patch.source.module}: replacement values are carried over as they are (weight ${weight} does not apply to a replacement)`);
  }
  return { passthrough, notes };
}

/** Rows of the module an input's parts cover (overlaps counted once): the population its top-k density is of. */
function coveredRows(parts: readonly { rowStart: number; rows: number }[]): number {
  const ranges = parts.map((p) => [p.rowStart, p.rowStart + p.rows] as const).sort((a, b) => a[0] - b[0]);
  let covered = 0;
  let reach = -1;
  for (const [a, b] of ranges) {
    if (b <= reach) continue;
    covered += b - Math.max(a, reach);
    reach = b;
  }
  return covered;
}

/** The rows [start, start + rows) of one base weight the inputs reach, checked to fit together. */
function moduleRows(key: string, list: readonly Placed[], fail: Fail): { start: number; rows: number; whole: boolean } {
  const first = list[0]!;
  const odd = list.find((c) => c.cols !== first.cols);
  if (odd) throw fail(`${key}: ${odd.patch.source.module} (input ${odd.input + 1}) has ${odd.cols} input columns, ${first.patch.source.module} (input ${first.input + 1}) has ${first.cols}`);
  const wholes = list.filter((c) => !c.patch.rows);
  const heights = new Set(wholes.map((c) => c.rows));
  if (heights.size > 1) throw fail(`${key}: whole-weight patches disagree on the number of rows (${[...heights].join(' vs ')}): ${wholes.map((c) => `${c.patch.source.module} (input ${c.input + 1})`).join(', ')}`);
  const start = wholes.length ? 0 : Math.min(...list.map((c) => c.start));
  const end = Math.max(...list.map((c) => c.start + c.rows));
  if (wholes.length && end > wholes[0]!.rows) {
    const beyond = list.find((c) => c.start + c.rows > wholes[0]!.rows)!;
    throw fail(`${key}: ${beyond.patch.source.module} (input ${beyond.input + 1}) reaches row ${end}, past the ${wholes[0]!.rows} rows of the whole-weight patches`);
  }
  return { start, rows: end - start, whole: wholes.length > 0 };
}

function modulePlan(key: string, list: readonly Placed[], fail: Fail): ModulePlan {
  const first = list[0]!.patch;
  const cols = list[0]!.cols;
  const { start, rows, whole } = moduleRows(key, list, fail);
  const entries = new Map<number, InputEntry>();
  for (const c of list) {
    const entry = entries.get(c.input) ?? { input: c.input, parts: [], coveredRows: 0 };
    entry.parts.push({ patch: c.patch, weight: c.weight, rowStart: c.start - start, rows: c.rows });
    entries.set(c.input, entry);
  }
  for (const e of entries.values()) e.coveredRows = coveredRows(e.parts);
  const parts = list.map((c) => ({ patch: c.patch, weight: c.weight, rowStart: c.start - start, rows: c.rows }));
  const vector = list.every((c) => c.patch.adapter.kind === 'full' && c.patch.adapter.diff.shape.length <= 1);
  return {
    key,
    component: first.component,
    target: first.target,
    start,
    rows,
    cols,
    whole,
    shape: vector ? [rows] : [rows, ...trailingShape(parts, cols)],
    vector,
    fused: new Set(list.map((c) => `${c.start}:${c.rows}`)).size > 1,
    entries: [...entries.values()].sort((a, b) => a.input - b.input),
    dtype: commonDtype(list.flatMap((c) => adapterTensors(c.patch.adapter))),
    source: { module: key, keys: [...new Set(list.flatMap((c) => c.patch.source.keys))] },
  };
}

/** Groups every patch of every input into modules (one per base weight), checking that they fit together. */
export function planModules(inputs: readonly MergeInput[], what: string): MethodPlan {
  const fail: Fail = (message) => methodError(`${what}: ${message}`);
  const { byTarget, sets, omitted, ignoredKeys } = placeInputs(inputs, fail);
  const { passthrough, notes } = replacements(sets, fail);
  const modules = [...byTarget].map(([key, list]) => modulePlan(key, list, fail));
  const capacity = Math.max(0, ...modules.map((m) => m.rows * m.cols));
  return { modules, passthrough, omitted, ignoredKeys, notes, capacity };
}

// ---- computing one module --------------------------------------------------------------------

/** Buffers for one module at a time, allocated once at the largest module's size and reused. */
class Workspace {
  private readonly buffers = new Map<string, ArrayBuffer>();
  constructor(private readonly capacity: number) {}

  private buffer(name: string, bytesPerElement: number): ArrayBuffer {
    let b = this.buffers.get(name);
    if (!b) this.buffers.set(name, (b = new ArrayBuffer(this.capacity * bytesPerElement)));
    return b;
  }

  f32(name: string, n: number): Float32Array {
    return new Float32Array(this.buffer(name, 4), 0, n);
  }

  counts(name: string, n: number, max: number): Uint8Array | Uint16Array {
    return max < 256 ? new Uint8Array(this.buffer(name, 1), 0, n) : new Uint16Array(this.buffer(name, 2), 0, n);
  }
}

/** Rows of ΔW per matmul call: 4 Mi values (16 MiB of f32), so the widest weights never need a second dense buffer. */
const CHUNK_ELEMENTS = 1 << 22;

/** Backends that compute on this thread's CPU, where the fused low-rank kernel beats a general matrix product. */
const CPU_BACKENDS = new Set(['wasm', 'cpu']);
let kernel: LowRankAdd | undefined;

/** out ← τ = w·ΔW of one input over the module's rows (zeros where its patches do not reach). */
async function taskVector(out: Float32Array, plan: ModulePlan, entry: InputEntry): Promise<void> {
  const { cols } = plan;
  const fused = CPU_BACKENDS.has(activeBackend());
  const only = entry.parts.length === 1 && entry.parts[0]!.rowStart === 0 && entry.parts[0]!.rows === plan.rows;
  if (!only || fused) out.fill(0);
  for (const part of entry.parts) {
    const { patch, weight } = part;
    const offset = part.rowStart * cols;
    if (patch.adapter.kind === 'lora') {
      const f = await readFactorPart(patch, weight);
      const up = new Float32Array(f.up.length);
      for (let i = 0; i < up.length; i++) up[i] = f.factor * f.up[i]!;
      if (fused) {
        // out[rows of the part] += up @ down, in one pass over the f32 values (no product buffer)
        kernel ??= lowRankAddKernel();
        const bytes = new Uint8Array(out.buffer, out.byteOffset + offset * 4, f.rows * cols * 4);
        kernel('F32', bytes, up, f.down, f.rank, cols, bytes);
        continue;
      }
      const step = Math.max(1, Math.floor(CHUNK_ELEMENTS / Math.max(1, cols)));
      for (let r0 = 0; r0 < f.rows; r0 += step) {
        const r1 = Math.min(f.rows, r0 + step);
        const product = await matmul(up.subarray(r0 * f.rank, r1 * f.rank), [r1 - r0, f.rank], f.down, [f.rank, cols]);
        const at = offset + r0 * cols;
        if (only) out.set(product, at);
        else for (let j = 0; j < product.length; j++) out[at + j]! += product[j]!;
      }
    } else {
      const d = await denseDelta(patch.adapter, patch.source.module);
      if (d.rows !== part.rows || d.cols !== cols) throw methodError(`${patch.source.module}: ΔW is [${d.rows}, ${d.cols}], expected [${part.rows}, ${cols}]`);
      if (only) for (let j = 0; j < d.data.length; j++) out[j] = weight * d.data[j]!;
      else for (let j = 0; j < d.data.length; j++) out[offset + j]! += weight * d.data[j]!;
    }
  }
}

/** Trim (top-k) or drop-and-rescale one task vector in place, as the method asks. */
function thin(values: Float32Array, plan: ModulePlan, entry: InputEntry, m: ResolvedMethod): void {
  if (TRIMS.has(m.method) && m.density < 1) keepTopK(values, topKCount(m.density, entry.coveredRows * plan.cols));
  if (DROPS.has(m.method) && m.drop > 0) dropAndRescale(values, m.drop, dareSeed(m.seed, entry.input, plan.key));
}

/** The merged ΔW of one module ([rows, cols] row-major), in a workspace buffer valid until the next call. */
async function mergeModule(plan: ModulePlan, m: ResolvedMethod, ws: Workspace, ctx?: OpContext): Promise<Float32Array> {
  const n = plan.rows * plan.cols;
  if (!SIGNED.has(m.method)) {
    const acc = ws.f32('acc', n);
    for (const [i, entry] of plan.entries.entries()) {
      checkAborted(ctx);
      const t = i === 0 ? acc : ws.f32('task', n);
      await taskVector(t, plan, entry);
      thin(t, plan, entry, m);
      if (i > 0) for (let j = 0; j < n; j++) acc[j]! += t[j]!;
    }
    return acc;
  }
  // TIES: the running total, positive sum and sign counts give the elected sign (sign of the
  // total) and the disjoint mean without holding every task vector.
  const pos = ws.f32('pos', n).fill(0);
  const total = ws.f32('total', n).fill(0);
  const np = ws.counts('np', n, plan.entries.length).fill(0);
  const nn = ws.counts('nn', n, plan.entries.length).fill(0);
  const t = ws.f32('task', n);
  for (const entry of plan.entries) {
    checkAborted(ctx);
    await taskVector(t, plan, entry);
    thin(t, plan, entry, m);
    addSigned(t, pos, total, np, nn);
  }
  return disjointMean(pos, total, np, nn);
}

/**
 * One workspace shared by the lazily computed diffs of a merge, for one module at a time; dropped
 * after a second without use, so a merged set kept in a cache does not keep its buffers.
 */
class SharedWorkspace {
  private ws?: Workspace;
  private timer?: ReturnType<typeof setTimeout>;
  private queue: Promise<void> = Promise.resolve();
  constructor(private readonly capacity: number) {}

  async run<T>(fn: (ws: Workspace) => Promise<T>): Promise<T> {
    const previous = this.queue;
    let release!: () => void;
    this.queue = new Promise((r) => (release = r));
    await previous;
    clearTimeout(this.timer);
    try {
      this.ws ??= new Workspace(this.capacity);
      return await fn(this.ws);
    } finally {
      this.timer = setTimeout(() => (this.ws = undefined), 1000);
      this.timer.unref?.();
      release();
    }
  }
}

function storedTensor(values: Float32Array, shape: readonly number[], dtype: DType, origin: string): LazyTensor {
  if (dtype === 'F32') return memoryTensor(values, shape, 'F32', origin);
  // kept encoded: half the memory for bf16 factors, and exactly what the file will hold
  const bytes = encodeFromF32(values, dtype);
  return { shape, dtype, origin, f32: async () => decodeToF32(bytes, dtype), bytes: async () => bytes };
}

function rowsOf(plan: ModulePlan): RowSlice | undefined {
  return plan.whole ? undefined : [plan.start, plan.rows];
}

function diffPatch(plan: ModulePlan, diff: LazyTensor): Patch {
  return { component: plan.component, target: plan.target, rows: rowsOf(plan), adapter: { kind: 'full', diff }, source: plan.source };
}

/** The merged ΔW of `plan` as a full diff computed when read (each read recomputes it; nothing is kept). */
function lazyDiff(plan: ModulePlan, m: ResolvedMethod, shared: SharedWorkspace, ctx?: OpContext): LazyTensor {
  return {
    shape: plan.shape,
    dtype: plan.dtype,
    origin: `${m.method} merge of ${plan.key}`,
    f32: () => shared.run(async (ws) => (await mergeModule(plan, m, ws, ctx)).slice()),
    bytes: () => shared.run(async (ws) => encodeFromF32(await mergeModule(plan, m, ws, ctx), plan.dtype)),
  };
}

// ---- the operations --------------------------------------------------------------------------

export interface MethodMergeOptions extends RankChoice, MethodParams {
  method: DenseMethod;
  /** lora (default): factors at rank / energy; diff: the exact merged ΔW as full diffs. */
  output?: MergeOutput;
  ctx?: OpContext;
}

function checkInputs(inputs: readonly MergeInput[], what: string): void {
  if (inputs.length === 0) throw methodError(`${what}: no LoRAs to merge`);
  inputs.forEach(({ weight }, i) => {
    if (!Number.isFinite(weight)) throw methodError(`${what}: input ${i + 1}: weight ${weight} is not a finite number`);
  });
  const architectures = [...new Set(inputs.map((i) => i.set.architecture))];
  if (architectures.length > 1) {
    throw methodError(`${what}: inputs are for different models (${inputs.map((inp, i) => `input ${i + 1}: ${inp.set.architecture}`).join(', ')})`);
  }
}

/** mergeLoras for the dense methods (linear, ties, dare, dare-ties, magnitude-prune). */
export async function mergeByMethod(inputs: readonly MergeInput[], options: MethodMergeOptions): Promise<{ set: AdapterSet; report: MergeReport }> {
  const what = 'merge';
  const m = resolveMethod(options.method, options, what);
  const output = options.output ?? 'lora';
  if (output !== 'lora' && output !== 'diff') throw methodError(`${what} (${m.method}): output must be lora or diff, got "${String(output)}"`);
  if (output === 'lora' && options.rank === undefined && options.energy === undefined) {
    throw rankChoiceError(`${what} (${m.method}): give a rank or an energy fraction for a LoRA output, or output diff (--exact) for the exact merged ΔW as full diffs`);
  }
  if (output === 'diff' && (options.rank !== undefined || options.energy !== undefined)) {
    throw rankChoiceError(`${what} (${m.method}): output diff is exact; rank and energy apply to a LoRA output`);
  }
  checkRankChoice(options, `${what} (${m.method})`, false);
  checkInputs(inputs, what);
  const { ctx } = options;
  const plan = planModules(inputs, `${what} (${m.method})`);
  const report: MergeReport = {
    method: m.method, backend: await ensureBackend(), modules: [], relError: 0, fused: [], refactored: [], summedDiffs: [], passthrough: [], omitted: plan.omitted,
    ignoredKeys: plan.ignoredKeys, notes: [...plan.notes], params: { ...methodParams(m), output },
  };
  const described = Object.entries(methodParams(m)).map(([k, v]) => `${k} ${v}`).join(', ');
  ctx?.log?.(`${m.method} merge${described ? ` (${described})` : ''} of ${inputs.length} LoRAs on the ${report.backend} backend, ${plan.modules.length} modules, output ${output}`);
  const patches: Patch[] = [];
  const fits: FitEnergy[] = [];
  const ws = new Workspace(plan.capacity);
  const shared = new SharedWorkspace(plan.capacity);
  let zero = 0;
  for (const [i, mod] of plan.modules.entries()) {
    checkAborted(ctx);
    if (mod.fused) report.fused.push(mod.key);
    const entry = { module: mod.key, inputs: mod.entries.length, fused: mod.fused };
    if (output === 'diff' && !mod.vector) {
      patches.push(diffPatch(mod, lazyDiff(mod, m, shared, ctx)));
      report.modules.push({ ...entry, rank: 0, relError: 0, diff: true });
    } else {
      const merged = await mergeModule(mod, m, ws, ctx);
      if (mod.vector) {
        patches.push(diffPatch(mod, memoryTensor(merged.slice(), mod.shape, 'F32', `${m.method} merge of ${mod.key}`)));
        report.modules.push({ ...entry, rank: 0, relError: 0, diff: true });
      } else {
        const fit = await factorizeDense(merged, mod.rows, mod.cols, { rank: options.rank, energy: options.energy, seed: seedFromName(mod.key), what: `merge (${m.method}): ${mod.key}` });
        if (fit.totalEnergy === 0) zero++;
        fits.push(energyOf(fit));
        const conv = mod.shape.length > 2;
        const adapter: LoraAdapter = {
          kind: 'lora',
          down: storedTensor(fit.down, [fit.k, ...mod.shape.slice(1)], mod.dtype, `merged ${mod.key} down`),
          up: storedTensor(fit.up, conv ? [mod.rows, fit.k, 1, 1] : [mod.rows, fit.k], mod.dtype, `merged ${mod.key} up`),
          alpha: fit.k,
          scale: 1,
        };
        patches.push({ component: mod.component, target: mod.target, rows: rowsOf(mod), adapter, source: mod.source });
        report.modules.push({ ...entry, rank: fit.k, relError: fit.relError });
      }
    }
    ctx?.onProgress?.(i + 1, plan.modules.length, mod.key);
  }
  patches.push(...plan.passthrough);
  report.passthrough = plan.passthrough.map((p) => `${p.component}:${p.target}`);
  report.relError = overallError(fits);
  if (zero) report.notes.push(`${zero} modules merged to an all-zero ΔW (written as zero factors)`);
  if (report.ignoredKeys.length) report.notes.push(`${report.ignoredKeys.length} keys the readers could not place are not part of the merge: ${listNames(report.ignoredKeys)}`);
  if (report.omitted.length) report.notes.push(`${report.omitted.length} modules of inputs with weight 0 are left out`);
  if (output === 'diff') report.notes.push(`${m.method} merge written as full diffs (exact): each module is computed when it is written`);
  const set: AdapterSet = {
    architecture: inputs[0]!.set.architecture,
    format: 'merged',
    patches,
    metadata: sharedMetadata(inputs.map((i) => i.set)),
    unknownKeys: [],
    notes: [...report.notes],
  };
  ctx?.log?.(`merged ${report.modules.length} modules${output === 'lora' ? `, relative error ${report.relError.toExponential(2)}` : ''}`);
  return { set, report };
}

export type ApplyMethod = 'linear' | Exclude<DenseMethod, 'linear'>;

export interface ApplyMethodOptions extends MethodParams {
  /** linear (default): Σ wᵢ·ΔWᵢ on the fast low-rank path; the others merge the LoRAs' ΔW per base weight first. */
  method?: DenseMethod;
  ctx?: OpContext;
}

/**
 * What applyToBase patches the base with under `method`: the LoRAs as they are for linear, else one
 * set of full diffs (the method's merged ΔW per base weight, computed as each weight is streamed) with
 * the replacements carried over. Weight-0 inputs are listed in `omitted`.
 */
export async function lorasForMethod<L extends MergeInput>(loras: readonly L[], options: ApplyMethodOptions): Promise<{ loras: readonly MergeInput[]; omitted: string[]; notes: string[]; params?: MethodParams }> {
  const method = options.method ?? 'linear';
  if (!isDenseMethod(method)) throw methodError(`apply: unknown method "${String(method)}" (${DENSE_METHODS.join(', ')})`);
  const m = resolveMethod(method, options, 'apply');
  if (method === 'linear') return { loras, omitted: [], notes: [] };
  checkInputs(loras, 'apply');
  const plan = planModules(loras, `apply (${method})`);
  const shared = new SharedWorkspace(plan.capacity);
  const patches = [...plan.modules.map((mod) => diffPatch(mod, lazyDiff(mod, m, shared, options.ctx))), ...plan.passthrough];
  const set: AdapterSet = { architecture: loras[0]!.set.architecture, format: 'merged', patches, metadata: {}, unknownKeys: [], notes: [] };
  const params = methodParams(m);
  const notes = [
    `${method} merge of the ${loras.length} LoRAs (${Object.entries(params).map(([k, v]) => `${k} ${v}`).join(', ') || 'defaults'}) applied per base weight: ${plan.modules.length} weights`,
    ...plan.notes,
  ];
  return { loras: [{ set, weight: 1 }], omitted: plan.omitted, notes, params };
}
