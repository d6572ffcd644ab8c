/**
 * How strong a LoRA is, and where: ‖ΔW‖_F per module, per base weight and per block id of its
 * family, relative to the base weights' norms where a base is given, and the cosine similarity of
 * two LoRAs' ΔW block by block (where they push the same weights the same way, or fight).
 *
 * Nothing dense is formed for low-rank patches. With ΔW = U·D (U = factor·up [m, r], D = down [r, n]):
 *
 *   ‖U D‖²_F = trace((UᵀU)(DDᵀ)),    ⟨U₁D₁, U₂D₂⟩_F = trace((U₁ᵀU₂)(D₂D₁ᵀ)),
 *
 * so every low-rank patch on one base weight is stacked into one Gram matrix of the ups' columns
 * (each placed at its rows, zero elsewhere: row slices of a fused weight line up by themselves) and
 * one of the downs' rows, and every pairwise inner product is a sum over one block of their
 * elementwise product: (m + n)·R² multiply-adds for R = Σ ranks, in float64. LoHa, LoKr and full
 * diffs have no such form; their dense ΔW is used (row-aligned against the others).
 */
import type { AdapterSet, Component, Patch, RowSlice } from '../adapter/model.ts';
import { familyOf } from '../formats/families.ts';
import { plainLora } from '../adapter/tucker.ts';
import { rowGram } from '../tensor/gram-simd.ts';
import { denseDelta } from './dense-delta.ts';
import { adapterRank, loraDims } from '../adapter/kinds.ts';

/** ΔW = factor · up @ down over rows [rowStart, rowStart + rows) of its weight. */
export interface LowRankTerm {
  kind: 'lowrank';
  rowStart: number;
  rows: number;
  cols: number;
  rank: number;
  /** [rows, rank] row-major. */
  up: Float32Array;
  /** [rank, cols] row-major. */
  down: Float32Array;
  factor: number;
}

/** A dense ΔW [rows, cols] at rowStart (LoHa, LoKr, full diffs). */
export interface DenseTerm {
  kind: 'dense';
  rowStart: number;
  rows: number;
  cols: number;
  data: Float32Array;
  factor: number;
}

export type DeltaTerm = LowRankTerm | DenseTerm;

/** The ΔW of one patch times `weight`, as a term; undefined for replacements (`set`), which have no ΔW. */
export async function termOf(patch: Patch, weight = 1): Promise<DeltaTerm | undefined> {
  const a = patch.adapter;
  const rowStart = patch.rows?.[0] ?? 0;
  if (a.kind === 'set') return undefined;
  if (a.kind === 'lora') {
    const lora = plainLora(a, patch.source.module);
    const { rows, rank, cols } = loraDims(lora, patch.source.module);
    const [up, down] = await Promise.all([lora.up.f32(), lora.down.f32()]);
    return { kind: 'lowrank', rowStart, rows, cols, rank, up, down, factor: weight * lora.scale };
  }
  const d = await denseDelta(a, patch.source.module);
  return { kind: 'dense', rowStart, rows: d.rows, cols: d.cols, data: d.data, factor: weight };
}

/** ‖factor · up @ down‖²_F of one low-rank product (rows × rank, rank × cols), without forming it. */
export function lowRankNorm2(up: Float32Array, down: Float32Array, rows: number, rank: number, cols: number, factor = 1): number {
  if (rank === 0 || rows === 0 || cols === 0) return 0;
  const gu = rowGram(rank, rows, (view, stride) => {
    for (let i = 0; i < rows; i++) for (let p = 0; p < rank; p++) view[p * stride + i] = up[i * rank + p]!;
  });
  const gd = rowGram(rank, cols, (view, stride) => {
    for (let p = 0; p < rank; p++) for (let j = 0; j < cols; j++) view[p * stride + j] = down[p * cols + j]!;
  });
  let s = 0;
  for (let i = 0; i < gu.length; i++) s += gu[i]! * gd[i]!;
  return factor * factor * s;
}

/**
 * Σ over the base rows both terms cover, each row's products added to the running sum by `addRow`
 * (in row order, so the sum is the one a single loop gives), times both terms' factors.
 */
function overSharedRows(a: DeltaTerm, b: DeltaTerm, addRow: (s: number, r: number) => number): number {
  const lo = Math.max(a.rowStart, b.rowStart);
  const hi = Math.min(a.rowStart + a.rows, b.rowStart + b.rows);
  let s = 0;
  for (let r = lo; r < hi; r++) s = addRow(s, r);
  return s * a.factor * b.factor;
}

/** ⟨dense, low-rank⟩ over the rows both cover: Σᵢ Σₖ U[i,k]·(E[i,:]·D[k,:]). */
function denseLowRank(e: DenseTerm, l: LowRankTerm): number {
  return overSharedRows(e, l, (s, r) => {
    const eRow = (r - e.rowStart) * e.cols;
    const uRow = (r - l.rowStart) * l.rank;
    for (let k = 0; k < l.rank; k++) {
      const u = l.up[uRow + k]!;
      if (u === 0) continue;
      let dot = 0;
      const dRow = k * l.cols;
      for (let j = 0; j < e.cols; j++) dot += e.data[eRow + j]! * l.down[dRow + j]!;
      s += u * dot;
    }
    return s;
  });
}

function denseDense(a: DenseTerm, b: DenseTerm): number {
  return overSharedRows(a, b, (s, r) => {
    const ia = (r - a.rowStart) * a.cols;
    const ib = (r - b.rowStart) * b.cols;
    for (let j = 0; j < a.cols; j++) s += a.data[ia + j]! * b.data[ib + j]!;
    return s;
  });
}

/**
 * Every pairwise Frobenius inner product ⟨ΔWᵢ, ΔWⱼ⟩ of terms on one base weight (T×T, row-major),
 * each term at its own rows. The norm of a sum of terms is √(Σᵢⱼ Mᵢⱼ).
 */
export function innerProducts(terms: readonly DeltaTerm[]): Float64Array {
  const t = terms.length;
  const m = new Float64Array(t * t);
  if (t === 0) return m;
  const cols = terms[0]!.cols;
  const odd = terms.find((x) => x.cols !== cols);
  if (odd) throw new Error(`innerProducts: terms on one weight disagree on its width (${odd.cols} vs ${cols} columns)`);
  const low = terms.map((x, i) => ({ x, i })).filter((e): e is { x: LowRankTerm; i: number } => e.x.kind === 'lowrank');
  if (low.length) {
    const top = Math.min(...low.map(({ x }) => x.rowStart));
    const height = Math.max(...low.map(({ x }) => x.rowStart + x.rows)) - top;
    const offsets: number[] = [];
    let R = 0;
    for (const { x } of low) {
      offsets.push(R);
      R += x.rank;
    }
    // column p of every up, at its rows (times its factor): row p of the Gram's input
    const gu = rowGram(R, height, (view, stride) => {
      low.forEach(({ x }, k) => {
        for (let i = 0; i < x.rows; i++) {
          const at = x.rowStart - top + i;
          for (let p = 0; p < x.rank; p++) view[(offsets[k]! + p) * stride + at] = x.factor * x.up[i * x.rank + p]!;
        }
      });
    });
    const gd = rowGram(R, cols, (view, stride) => {
      low.forEach(({ x }, k) => {
        for (let p = 0; p < x.rank; p++) view.set(x.down.subarray(p * cols, (p + 1) * cols), (offsets[k]! + p) * stride);
      });
    });
    low.forEach(({ x: a, i }, ka) =>
      low.forEach(({ x: b, i: j }, kb) => {
        if (j < i) return;
        let s = 0;
        for (let p = 0; p < a.rank; p++) {
          const row = (offsets[ka]! + p) * R + offsets[kb]!;
          for (let q = 0; q < b.rank; q++) s += gu[row + q]! * gd[row + q]!;
        }
        m[i * t + j] = m[j * t + i] = s;
      }),
    );
  }
  for (let i = 0; i < t; i++)
    for (let j = i; j < t; j++) {
      const a = terms[i]!;
      const b = terms[j]!;
      if (a.kind === 'lowrank' && b.kind === 'lowrank') continue;
      const v = a.kind === 'dense' && b.kind === 'dense' ? denseDense(a, b) : a.kind === 'dense' ? denseLowRank(a, b as LowRankTerm) : denseLowRank(b as DenseTerm, a);
      m[i * t + j] = m[j * t + i] = v;
    }
  return m;
}

// ---- per module, per weight, per block --------------------------------------------------------

export interface ModuleStrength {
  /** The module as its file names it. */
  module: string;
  component: Component;
  target: string;
  rows?: RowSlice;
  /** Block id of the family's scheme; null when the module is in none. */
  block: string | null;
  kind: Patch['adapter']['kind'];
  rank?: number;
  alpha?: number;
  /** alpha / rank (or 1), the factor the file's up @ down is multiplied by. */
  scale?: number;
  dora?: boolean;
  /** ‖weight · ΔW‖_F of this module alone (0 for replacements). */
  norm: number;
}

export interface BlockStrength {
  id: string;
  /** ‖Σ ΔW‖_F over the block's base weights. */
  norm: number;
  modules: number;
  /** ‖W‖_F of the base rows the block's modules change (given a base). */
  baseNorm?: number;
  /** norm / baseNorm. */
  relative?: number;
}

export interface SetStrength {
  architecture: string;
  format: string;
  weight: number;
  /** Every block id of the family's scheme, in vector order (zero where nothing is patched). */
  blocks: BlockStrength[];
  /** Modules in no block of the scheme (or every module, for a family without one). */
  unassigned: { norm: number; modules: number };
  total: { norm: number; baseNorm?: number; relative?: number };
  modules: ModuleStrength[];
  /** Replacement patches (no ΔW), by module. */
  replacements: string[];
}

export interface BlockCosine {
  id: string;
  /** ⟨ΔW_a, ΔW_b⟩ / (‖ΔW_a‖·‖ΔW_b‖) over the block; null where either is zero. */
  cosine: number | null;
}

export interface PairCosine {
  a: number;
  b: number;
  blocks: BlockCosine[];
  total: number | null;
}

export interface StrengthAnalysis {
  architecture: string;
  /** The family's block scheme (its describe text), if it has one. */
  scheme?: string;
  ids: string[];
  sets: SetStrength[];
  /** Every pair of sets (same model only). */
  cosines: PairCosine[];
  notes: string[];
}

/** ‖W‖²_F of the base rows a set changes on one weight, or undefined when the weight is not in the base. */
export type BaseNorm2 = (set: number, patches: readonly Patch[]) => Promise<number | undefined>;

export interface StrengthOptions {
  /** Per set (default 1): ΔW is weighted as a merge or an apply would weight it. */
  weights?: readonly number[];
  baseNorm2?: BaseNorm2;
}

const weightKey = (p: Pick<Patch, 'component' | 'target'>) => `${p.component}:${p.target}`;

function moduleOf(p: Patch, block: string | null): ModuleStrength {
  const a = p.adapter;
  const rank = adapterRank(a);
  return {
    module: p.source.module,
    component: p.component,
    target: p.target,
    ...(p.rows ? { rows: p.rows } : {}),
    block,
    kind: a.kind,
    ...(rank !== undefined ? { rank } : {}),
    ...('alpha' in a && a.alpha !== undefined ? { alpha: a.alpha } : {}),
    ...('scale' in a ? { scale: a.scale } : {}),
    ...(p.dora ? { dora: true } : {}),
    norm: 0,
  };
}

const cosine = (dot: number, n2a: number, n2b: number) => (n2a > 0 && n2b > 0 ? Math.max(-1, Math.min(1, dot / Math.sqrt(n2a * n2b))) : null);

type Acc = { norm2: number; base2: number; hasBase: boolean; modules: number };
const fresh = (): Acc => ({ norm2: 0, base2: 0, hasBase: false, modules: 0 });

interface SetAcc {
  blocks: Map<string, Acc>;
  unassigned: Acc;
  total: Acc;
  modules: ModuleStrength[];
  replacements: string[];
  weight: number;
  set: AdapterSet;
}

interface PairAcc {
  a: number;
  b: number;
  dot: Map<string, number>;
  total: number;
}

type WeightEntry = { set: number; patch: Patch; module: ModuleStrength };

/** One base weight's patches (of every set): their norms and inner products, added to their block and the totals. */
async function addWeight(entries: readonly WeightEntry[], perSet: SetAcc[], pairs: PairAcc[], weights: readonly number[], options: StrengthOptions): Promise<void> {
  const terms: DeltaTerm[] = [];
  const owners: WeightEntry[] = [];
  for (const e of entries) {
    const term = await termOf(e.patch, weights[e.set]);
    if (term) {
      terms.push(term);
      owners.push(e);
    }
  }
  const m = innerProducts(terms);
  const t = terms.length;
  owners.forEach((e, i) => (e.module.norm = Math.sqrt(Math.max(0, m[i * t + i]!))));
  const sumOver = (a: number, b: number) => {
    let s = 0;
    for (let i = 0; i < t; i++) {
      if (owners[i]!.set !== a) continue;
      for (let j = 0; j < t; j++) if (owners[j]!.set === b) s += m[i * t + j]!;
    }
    return s;
  };
  const block = owners[0]?.module.block ?? null;
  for (let s = 0; s < perSet.length; s++) {
    const mine = owners.filter((o) => o.set === s);
    if (mine.length === 0) continue;
    const n2 = Math.max(0, sumOver(s, s));
    const base2 = options.baseNorm2 ? await options.baseNorm2(s, mine.map((o) => o.patch)) : undefined;
    const acc = perSet[s]!;
    for (const target of [block === null ? acc.unassigned : acc.blocks.get(block)!, acc.total]) {
      target.norm2 += n2;
      target.modules += mine.length;
      if (base2 !== undefined) {
        target.base2 += base2;
        target.hasBase = true;
      }
    }
  }
  for (const pair of pairs) {
    const dot = sumOver(pair.a, pair.b);
    if (block !== null) pair.dot.set(block, pair.dot.get(block)! + dot);
    pair.total += dot;
  }
}

function finish(acc: Acc): { norm: number; baseNorm?: number; relative?: number } {
  const norm = Math.sqrt(acc.norm2);
  if (!acc.hasBase) return { norm };
  const baseNorm = Math.sqrt(acc.base2);
  return { norm, baseNorm, relative: baseNorm > 0 ? norm / baseNorm : 0 };
}

/**
 * Strength per block of each set, and the cosine of every pair of sets per block, one base weight
 * at a time (only that weight's factors are in memory).
 */
export async function analyzeStrength(sets: readonly AdapterSet[], options: StrengthOptions = {}): Promise<StrengthAnalysis> {
  const architecture = sets[0]?.architecture ?? 'unknown';
  const notes: string[] = [];
  const sameModel = sets.every((s) => s.architecture === architecture);
  if (!sameModel) notes.push(`the LoRAs are for different models (${sets.map((s) => s.architecture).join(', ')}): blocks are those of the first, and no cosine is computed`);
  const scheme = familyOf(architecture)?.blocks;
  const ids = [...(scheme?.ids ?? [])];
  const blockOf = (p: Patch) => scheme?.blockOf(p) ?? null;
  const weights = sets.map((_, i) => options.weights?.[i] ?? 1);
  const perSet: SetAcc[] = sets.map((set, i) => ({ blocks: new Map(ids.map((id) => [id, fresh()])), unassigned: fresh(), total: fresh(), modules: [], replacements: [], weight: weights[i]!, set }));
  const pairs: PairAcc[] = [];
  if (sameModel)
    for (let a = 0; a < sets.length; a++) for (let b = a + 1; b < sets.length; b++) pairs.push({ a, b, dot: new Map(ids.map((id) => [id, 0])), total: 0 });

  // every patch, grouped by the base weight it changes (in first-seen order)
  const byWeight = new Map<string, WeightEntry[]>();
  sets.forEach((set, s) => {
    for (const patch of set.patches) {
      const block = blockOf(patch);
      const module = moduleOf(patch, block !== null && ids.includes(block) ? block : null);
      perSet[s]!.modules.push(module);
      if (patch.adapter.kind === 'set') {
        perSet[s]!.replacements.push(patch.source.module);
        continue;
      }
      const key = weightKey(patch);
      const list = byWeight.get(key) ?? [];
      list.push({ set: s, patch, module });
      byWeight.set(key, list);
    }
  });
  for (const entries of byWeight.values()) await addWeight(entries, perSet, pairs, weights, options);

  const out: SetStrength[] = perSet.map((acc) => ({
    architecture: acc.set.architecture,
    format: acc.set.format,
    weight: acc.weight,
    blocks: ids.map((id) => ({ id, ...finish(acc.blocks.get(id)!), modules: acc.blocks.get(id)!.modules })),
    unassigned: { norm: Math.sqrt(acc.unassigned.norm2), modules: acc.unassigned.modules },
    total: finish(acc.total),
    modules: acc.modules,
    replacements: acc.replacements,
  }));
  const cosines: PairCosine[] = pairs.map(({ a, b, dot, total }) => {
    const A = perSet[a]!;
    const B = perSet[b]!;
    return {
      a,
      b,
      blocks: ids.map((id) => ({ id, cosine: cosine(dot.get(id)!, A.blocks.get(id)!.norm2, B.blocks.get(id)!.norm2) })),
      total: cosine(total, A.total.norm2, B.total.norm2),
    };
  });
  if (!scheme) notes.push(`${architecture === 'unknown' ? 'an unrecognised model' : architecture} has no block scheme: every module is counted as unassigned`);
  return { architecture, ...(scheme ? { scheme: scheme.describe } : {}), ids, sets: out, cosines, notes };
}
