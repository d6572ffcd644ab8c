/**
 * The fused writers (kohya, comfyui): one module per BFL weight. Row-slice LoRAs of one weight are
 * fused (concatenated downs, block-diagonal up); LyCORIS, full and set adapters keep their own
 * spellings where the format has them, and anything it cannot hold is an error naming the module.
 */
import type { DType } from '../../tensor/dtype.ts';
import type { LazyTensor } from '../../tensor/lazy.ts';
import type { AdapterSet, LohaAdapter, LokrAdapter, LoraAdapter, Patch } from '../../adapter/model.ts';
import { plainLora } from '../../adapter/tucker.ts';
import { LoraFormatError } from '../../adapter/errors.ts';
import { familyOf } from '../families.ts';
import { adapterRank, adapterRows } from '../../adapter/kinds.ts';
import { fullRows, fuseLoraPieces, piecesOf } from '../fuse.ts';
import { placeBlocks, reshaped, scaledTensor, scalarTensor } from '../../adapter/tensor-ops.ts';
import { FUSED_SUFFIX, fusedModuleName } from './names.ts';
import { alphaFor, alphaTensor } from './scale.ts';
import type { ModuleTable } from '../table/module-table.ts';
import type { OutPlan, OutTensor } from './plan.ts';

function groupByTarget(patches: readonly Patch[]): Patch[][] {
  const groups = new Map<string, Patch[]>();
  for (const p of patches) {
    const key = `${p.component}:${p.target}`;
    const list = groups.get(key) ?? [];
    list.push(p);
    groups.set(key, list);
  }
  return [...groups.values()];
}

/** Module path and parameter of a canonical target. */
function splitTarget(target: string): { path: string; param: string } {
  const i = target.lastIndexOf('.');
  return { path: target.slice(0, i), param: target.slice(i + 1) };
}

/** One fused-layout write in progress: the tensors so far, and what the notes count. */
interface FusedPlan {
  set: AdapterSet;
  format: 'kohya' | 'comfyui';
  dtype: DType | undefined;
  table: ModuleTable | undefined;
  out: OutTensor[];
  ranks: number[];
  alphas: number[];
  rounded: number;
  biasDiffs: number;
}

function emit(plan: FusedPlan, module: string, suffix: string, t: LazyTensor): void {
  plan.out.push({ name: `${module}.${suffix}`, tensor: t });
}

function cast(plan: FusedPlan, t: LazyTensor): LazyTensor {
  return plan.dtype ? scaledTensor(t, 1, plan.dtype) : t;
}

/** What a fused layout cannot say about one weight's patches, refused naming the weight and its modules. */
function refuseInexpressible(group: readonly Patch[], format: FusedPlan['format'], param: string): void {
  const first = group[0]!;
  const kinds = new Set(group.map((p) => p.adapter.kind));
  const where = `${first.target} (${[...new Set(group.map((p) => p.source.module))].join(', ')})`;
  const refuse = (why: string) => {
    throw new LoraFormatError('INEXPRESSIBLE', `${where}: ${why}`, first.source.module);
  };
  const kind = first.adapter.kind;
  if (kinds.size > 1) refuse(`${[...kinds].join(' and ')} adapters on one weight; ${format} stores one adapter per weight`);
  if (param === 'scale' && format === 'kohya') refuse(`kohya files cannot patch a norm scale (a ${kind} adapter); write comfyui instead`);
  if (first.reshape && format === 'kohya') refuse(`needs the base weight widened to [${first.reshape}] (BFL control LoRA), which only comfyui files can say`);
  if (kind === 'lora' && param !== 'weight') refuse(`a LoRA on a ${param}`);
  if ((kind === 'loha' || kind === 'lokr') && (group.length > 1 || first.rows)) refuse(`a ${kind} adapter on a row slice (or several on one weight) cannot be fused into one ${format} module`);
  if (kind === 'set' && format === 'kohya') refuse('kohya files cannot replace a weight (set); write comfyui instead');
  if (kind === 'set' && (group.length > 1 || first.rows)) refuse('several replacements of one weight');
}

/** LoRA patches of one weight (row slices, several LoRAs) as one module: fused down/up, alpha, Tucker core, DoRA magnitude. */
async function emitLora(plan: FusedPlan, group: readonly Patch[], base: string): Promise<void> {
  const first = group[0]!;
  const rows = fullRows(group, plan.set.patches, plan.table);
  // a LoCon Tucker core is kept for a lone patch; several on one weight are folded first
  const tucker = group.length === 1 ? (first.adapter as LoraAdapter).mid : undefined;
  const loras = tucker ? group : group.map((p) => ({ ...p, adapter: plainLora(p.adapter as LoraAdapter, p.source.module) }));
  const fused = await fuseLoraPieces(piecesOf(loras), rows, { name: first.target, dtype: plan.dtype });
  if (fused.rounded) plan.rounded++;
  const stored = group.length === 1 ? (first.adapter as { alpha?: number }).alpha : undefined;
  const alpha = alphaFor(fused.scale, fused.rank, stored);
  emit(plan, base, FUSED_SUFFIX.down, fused.down);
  emit(plan, base, FUSED_SUFFIX.up, fused.up);
  emit(plan, base, FUSED_SUFFIX.alpha, alphaTensor(alpha, fused.down.dtype, `${base} alpha`));
  if (tucker) emit(plan, base, FUSED_SUFFIX.mid, cast(plan, tucker));
  if (fused.dora) {
    // conv modules keep LyCORIS's singleton kernel dims ([out, 1, 1, 1] / [1, in, 1, 1])
    const kernel = fused.down.shape.slice(2).map(() => 1);
    const shape = fused.dora.axis === 'out' ? [rows, 1, ...kernel] : [1, fused.down.shape[1]!, ...kernel];
    emit(plan, base, FUSED_SUFFIX.dora, cast(plan, reshaped(fused.dora.magnitude, shape)));
  }
  plan.ranks.push(fused.rank);
  plan.alphas.push(alpha);
}

async function emitGroup(plan: FusedPlan, group: readonly Patch[]): Promise<void> {
  const first = group[0]!;
  const { path, param } = splitTarget(first.target);
  refuseInexpressible(group, plan.format, param);
  const base = fusedModuleName(plan.format, first.component, param === 'scale' ? `${path}.scale` : path, plan.set.architecture);
  switch (first.adapter.kind) {
    case 'lora':
      await emitLora(plan, group, base);
      break;
    case 'loha':
    case 'lokr':
      for (const [suffix, t] of lycorisTensors(first.adapter)) emit(plan, base, suffix, cast(plan, t));
      if (first.dora) emit(plan, base, FUSED_SUFFIX.dora, cast(plan, doraShaped(first)));
      break;
    case 'full':
      if (param === 'bias') plan.biasDiffs++;
      emit(plan, base, param === 'bias' ? FUSED_SUFFIX.diff_b : FUSED_SUFFIX.diff, cast(plan, placeFull(group, plan.set.patches, plan.table)));
      break;
    case 'set':
      emit(plan, base, FUSED_SUFFIX.set, cast(plan, first.adapter.value));
      break;
  }
  if (first.reshape) emit(plan, base, FUSED_SUFFIX.reshape, scalarShapeTensor(first.reshape, `${base} reshape`));
}

export async function planFused(set: AdapterSet, format: 'kohya' | 'comfyui', dtype: DType | undefined): Promise<OutPlan> {
  const notes: string[] = [];
  const family = familyOf(set.architecture);
  const table = family?.table;
  const assumed = table && table.assumedNote(table.inferDims(set.patches, family.denoiser), set.patches);
  if (assumed) notes.push(assumed);
  const plan: FusedPlan = { set, format, dtype, table, out: [], ranks: [], alphas: [], rounded: 0, biasDiffs: 0 };
  const groups = groupByTarget(set.patches);
  for (const group of groups) await emitGroup(plan, group);
  if (plan.biasDiffs > 0) {
    notes.push(
      `${plan.biasDiffs} bias change${plan.biasDiffs === 1 ? '' : 's'} written as .diff_b keys: ComfyUI applies them, but diffusers and sd-scripts load this LoRA without them and say nothing ` +
        '(for an extraction, --biases drop / keepBiases false leaves them out)',
    );
  }
  if (plan.rounded > 0) notes.push(`${plan.rounded} fused modules combine parts with scales that differ by a factor other than a power of two; those ups were rescaled (rounded to their dtype)`);
  return { tensors: plan.out, notes, modules: groups.length, ranks: plan.ranks, alphas: plan.alphas };
}

/** LyCORIS tensors with their suffixes, and an alpha that keeps the adapter's scale. */
function lycorisTensors(a: LohaAdapter | LokrAdapter): [string, LazyTensor][] {
  const out: [string, LazyTensor][] = [];
  if (a.kind === 'loha') {
    out.push(['hada_w1_a', a.w1a], ['hada_w1_b', a.w1b], ['hada_w2_a', a.w2a], ['hada_w2_b', a.w2b]);
    if (a.t1) out.push(['hada_t1', a.t1]);
    if (a.t2) out.push(['hada_t2', a.t2]);
    out.push(['alpha', alphaTensor(alphaFor(a.scale, adapterRank(a)!, a.alpha), a.w1b.dtype, 'alpha')]);
    return out;
  }
  // LoKr: alpha counts only when a factor is decomposed; a full pair carries its scale in w1
  const rank = adapterRank(a);
  const w1Scale = rank === undefined ? a.scale : 1;
  if (a.w1) out.push(['lokr_w1', scaledTensor(a.w1, w1Scale)]);
  if (a.w1a) out.push(['lokr_w1_a', scaledTensor(a.w1a, w1Scale)]);
  if (a.w1b) out.push(['lokr_w1_b', a.w1b]);
  if (a.w2) out.push(['lokr_w2', a.w2]);
  if (a.w2a) out.push(['lokr_w2_a', a.w2a]);
  if (a.w2b) out.push(['lokr_w2_b', a.w2b]);
  if (a.t2) out.push(['lokr_t2', a.t2]);
  if (rank !== undefined) out.push(['alpha', alphaTensor(alphaFor(a.scale, rank, a.alpha), (a.w2b ?? a.w1b)!.dtype, 'alpha')]);
  else if (a.alpha !== undefined) out.push(['alpha', alphaTensor(a.alpha, (a.w1 ?? a.w1a)!.dtype, 'alpha')]);
  return out;
}

function doraShaped(p: Patch): LazyTensor {
  const d = p.dora!;
  if (d.axis === 'out') return reshaped(d.magnitude, [adapterRows(p.adapter), 1]);
  const n = d.magnitude.shape.reduce((a, b) => a * b, 1);
  return reshaped(d.magnitude, [1, n]);
}

/** Full diffs of one target as one dense diff (row slices placed, zeros elsewhere); the weight's height from the set's family table. */
function placeFull(group: readonly Patch[], context: readonly Patch[], table: ModuleTable | undefined): LazyTensor {
  const diffs = group.map((p) => ({ p, d: (p.adapter as { diff: LazyTensor }).diff }));
  if (diffs.length === 1 && !diffs[0]!.p.rows) return diffs[0]!.d;
  const rows = fullRows(group, context, table);
  const first = diffs[0]!.d;
  const cols = first.shape.length > 1 ? first.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  const sorted = [...diffs].sort((a, b) => (a.p.rows?.[0] ?? 0) - (b.p.rows?.[0] ?? 0));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if ((prev.p.rows?.[0] ?? 0) + prev.d.shape[0]! > (sorted[i]!.p.rows?.[0] ?? 0)) {
      throw new LoraFormatError('INEXPRESSIBLE', `${group[0]!.target}: overlapping full diffs (${prev.p.source.module}, ${sorted[i]!.p.source.module})`, group[0]!.source.module);
    }
  }
  const dtype = diffs.every((x) => x.d.dtype === first.dtype) ? first.dtype : 'F32';
  const placed = placeBlocks([rows, cols], diffs.map(({ p, d }) => ({ t: reshaped(d, [d.shape[0]!, cols]), row: p.rows?.[0] ?? 0, col: 0 })), dtype, `${group[0]!.target} diff`);
  return first.shape.length === 1 ? reshaped(placed, [rows]) : reshaped(placed, [rows, ...first.shape.slice(1)]);
}

/** ComfyUI's reshape_weight: the padded base shape as integers. */
function scalarShapeTensor(shape: readonly number[], origin: string): LazyTensor {
  const v = Float32Array.from(shape);
  const t = scalarTensor(0, 'I64', origin);
  return { ...t, shape: [shape.length], f32: async () => v, bytes: async () => new Uint8Array(BigInt64Array.from(shape, (x) => BigInt(x)).buffer) };
}
