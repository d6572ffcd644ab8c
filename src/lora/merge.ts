/**
 * Several LoRAs → one, with ΔW = Σ wᵢ·ΔWᵢ per base weight (what stacking them at inference does).
 *
 * concat: exact. Downs are concatenated, ups carry wᵢ·scaleᵢ, alpha = the new rank (scale 1).
 * svd:    the optimal rank-N approximation of that sum, computed from the stacked factors (QR of
 *         both sides, SVD of the small core), never from the dense ΔW; error reported per module.
 *
 * Patches on one target with overlapping row slices (a kohya fused qkv and a diffusers to_q) are
 * fused into one patch over their union: the ups are placed at their rows in their own columns
 * (block-diagonal), which is the same identity (the formats layer's fusion, with the weights folded
 * in). Disjoint slices stay separate patches.
 */
import { commonVariant, inputVariants } from '../formats/variants.ts';
import { patchKey, type AdapterKind, type AdapterSet, type LoraAdapter, type Patch, type RowSlice } from '../adapter/model.ts';
import { ensureBackend } from '../tensor/backend.ts';
import { encodeFromF32, type DType } from '../tensor/dtype.ts';
import { memoryTensor, type LazyTensor } from '../tensor/lazy.ts';
import { checkAborted, type OpContext } from '../adapter/context.ts';
import { denseDelta } from './dense-delta.ts';
import { adapterRank, loraDims } from '../adapter/kinds.ts';
import { readFactorPart, stackFactors } from './factors.ts';
import { concatRows, placeBlocks, reshaped, scaledTensor } from '../adapter/tensor-ops.ts';
import { checkRankChoice, factorizeDense, energyOf, overallError, truncateProduct, type FitEnergy, type LowRank, type RankChoice } from './lowrank.ts';
import { seedFromName } from './seed.ts';
import { plainLora } from '../adapter/tucker.ts';
import { inputError, type LoraflowError } from '../errors.ts';
import { originSoftware } from '../formats/write/metadata.ts';
import { DENSE_METHODS, isDenseMethod, mergeByMethod, type DenseMethod, type MergeOutput, type MethodParams } from './merge-methods.ts';

/** concat / svd here; the dense methods (ties, dare, …) in merge-methods.ts. */
export type MergeMethod = 'concat' | 'svd' | DenseMethod;

export interface MergeInput {
  set: AdapterSet;
  weight: number;
}

export interface MergeOptions extends RankChoice, MethodParams {
  method: MergeMethod;
  /** Turn LoHa / LoKr / full diffs into LoRAs (randomized SVD of their dense ΔW at `rank` / `energy`). */
  refactor?: boolean;
  /** Dense methods: lora (default, at rank / energy) or diff (the exact merged ΔW as full diffs). */
  output?: MergeOutput;
  ctx?: OpContext;
}

export interface MergedModule {
  module: string;
  /** How many input patches went into it. */
  inputs: number;
  rank: number;
  /** Relative Frobenius error of this module (0 for concat). */
  relError: number;
  fused: boolean;
  /** Written as a full diff (dense methods: output diff, and 1-D modules); rank is then 0. */
  diff?: boolean;
}

export interface RefactoredModule {
  module: string;
  /** Index of the input it came from. */
  input: number;
  kind: AdapterKind;
  rank: number;
  relError: number;
}

export interface MergeReport {
  method: MergeMethod;
  backend: string;
  modules: MergedModule[];
  /** svd: √(Σ discarded / Σ total) over every module; concat: the same over refactored modules (concat itself is exact). */
  relError: number;
  /** Targets whose overlapping row-slice patches were fused into one patch. */
  fused: string[];
  refactored: RefactoredModule[];
  /** 1-D full diffs (biases) added exactly: they have no low-rank form. */
  summedDiffs: string[];
  /** Replacement (`set`) patches carried over unchanged. */
  passthrough: string[];
  /** Modules left out because their input has weight 0. */
  omitted: string[];
  /** Keys the readers could not place, per input: they are not part of any input's ΔW. */
  ignoredKeys: string[];
  notes: string[];
  /** Dense methods: the parameters that applied, and the output kind. */
  params?: MethodParams & { output: MergeOutput };
}

export function mergeError(message: string): LoraflowError {
  return inputError('MERGE', `merge: ${message}`);
}

interface Part {
  patch: Patch;
  weight: number;
  input: number;
}

interface Group {
  key: string;
  component: Patch['component'];
  target: string;
  rows?: RowSlice;
  height: number;
  parts: Part[];
  fused: boolean;
}

const targetKey = (p: Pick<Patch, 'component' | 'target'>) => `${p.component}:${p.target}`;

/** The dtype every tensor shares, else F32 (mixing precisions must not lose the finer one). */
function commonDtype(tensors: readonly LazyTensor[]): DType {
  const first = tensors[0]?.dtype ?? 'F32';
  return tensors.every((t) => t.dtype === first) ? first : 'F32';
}

function listNames(names: readonly string[], max = 8): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Splits the lora parts of one target into groups of identical or disjoint row ranges; overlaps fuse. */
function groupTarget(parts: Part[]): Group[] {
  const first = parts[0]!.patch;
  const ranges = parts.map((p) => {
    const { rows } = loraDims(p.patch.adapter as LoraAdapter, p.patch.source.module);
    if (p.patch.rows && p.patch.rows[1] !== rows) {
      throw mergeError(`${p.patch.source.module}: row slice of ${p.patch.rows[1]} rows holds an up of ${rows} rows`);
    }
    return { start: p.patch.rows?.[0] ?? 0, len: rows, whole: !p.patch.rows };
  });
  const wholeHeights = new Set(ranges.filter((r) => r.whole).map((r) => r.len));
  if (wholeHeights.size > 1) {
    const names = parts.filter((_, i) => ranges[i]!.whole).map((p) => `${p.patch.source.module} (input ${p.input + 1})`);
    throw mergeError(`${first.target}: whole-weight patches disagree on the number of rows (${[...wholeHeights].join(' vs ')}): ${names.join(', ')}`);
  }
  const id = (r: (typeof ranges)[number]) => `${r.whole ? 'w' : 's'}${r.start}:${r.len}`;
  const distinct = new Map<string, (typeof ranges)[number]>();
  ranges.forEach((r) => distinct.set(id(r), r));
  const list = [...distinct.values()];
  const overlap = list.some((a, i) => list.slice(i + 1).some((b) => a.start < b.start + b.len && b.start < a.start + a.len));
  const base = { component: first.component, target: first.target };
  if (!overlap) {
    return list.map((r) => {
      const members = parts.filter((_, i) => id(ranges[i]!) === id(r));
      const rows: RowSlice | undefined = r.whole ? undefined : [r.start, r.len];
      return { ...base, key: patchKey({ ...base, rows }), rows, height: r.len, parts: members, fused: false };
    });
  }
  const start = Math.min(...list.map((r) => r.start));
  const end = Math.max(...list.map((r) => r.start + r.len));
  const rows: RowSlice | undefined = wholeHeights.size ? undefined : [start, end - start];
  return [{ ...base, key: patchKey({ ...base, rows }), rows, height: end - start, parts, fused: true }];
}

/**
 * Metadata every input agrees on, except the software entries: the merge is loraflow's output
 * (the writer says so), and `source_software` names what made each input (one value, or a JSON
 * list when they differ), so a merge of an ai-toolkit and a kohya LoRA claims to be neither.
 */
export function sharedMetadata(sets: readonly AdapterSet[]): Record<string, string> {
  const [first, ...rest] = sets;
  const out = Object.fromEntries(Object.entries(first?.metadata ?? {}).filter(([k, v]) => rest.every((s) => s.metadata[k] === v)));
  delete out.software;
  delete out.source_software;
  const origins = [...new Set(sets.map((s) => originSoftware(s.metadata)).filter((v): v is string => v !== undefined))];
  if (origins.length === 1) out.source_software = origins[0]!;
  else if (origins.length > 1) out.source_software = JSON.stringify(origins.map(parseIfJson));
  return out;
}

function parseIfJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function isLowRankLora(patch: Patch): boolean {
  return patch.adapter.kind === 'lora' && !patch.adapter.mid;
}

function isBiasDiff(patch: Patch): boolean {
  return patch.adapter.kind === 'full' && patch.adapter.diff.shape.length <= 1;
}

/** A refactored patch: the same target and rows, as a LoRA of the dense ΔW's best rank-k factors. */
async function refactorPatch(part: Part, choice: RankChoice): Promise<{ patch: Patch; fit: LowRank; kind: AdapterKind }> {
  const { patch } = part;
  const dense = await denseDelta(patch.adapter, patch.source.module);
  const fit = await factorizeDense(dense.data, dense.rows, dense.cols, { ...choice, seed: seedFromName(patchKey(patch)), what: `merge: refactoring ${patch.source.module} (input ${part.input + 1})` });
  const adapter: LoraAdapter = {
    kind: 'lora',
    up: memoryTensor(fit.up, [dense.rows, fit.k], 'F32', `refactored ${patch.source.module} up`),
    down: memoryTensor(fit.down, [fit.k, dense.cols], 'F32', `refactored ${patch.source.module} down`),
    alpha: fit.k,
    scale: 1,
  };
  return { patch: { component: patch.component, target: patch.target, rows: patch.rows, adapter, source: patch.source }, fit, kind: patch.adapter.kind };
}

function sourceOf(key: string, parts: readonly Part[]): Patch['source'] {
  return { module: key, keys: [...new Set(parts.flatMap((p) => p.patch.source.keys))] };
}

function stackShapes(group: Group, rank: number): { down: number[]; up: number[] } {
  const down = (group.parts[0]!.patch.adapter as LoraAdapter).down.shape;
  const conv = down.length === 4;
  return { down: [rank, ...down.slice(1)], up: conv ? [group.height, rank, 1, 1] : [group.height, rank] };
}

/** Concatenated downs and the ups side by side (each times wᵢ·scaleᵢ, at its rows), as lazy tensors over the inputs. */
function concatGroup(group: Group): Patch {
  const origin = group.rows?.[0] ?? 0;
  const adapters = group.parts.map((p) => p.patch.adapter as LoraAdapter);
  const dtype = commonDtype(adapters.flatMap((a) => [a.up, a.down]));
  let col = 0;
  const blocks = group.parts.map(({ patch, weight }, i) => {
    const a = adapters[i]!;
    const { rows, rank } = loraDims(a, patch.source.module);
    const block = { t: scaledTensor(reshaped(a.up, [rows, rank]), weight * a.scale, dtype), row: (patch.rows?.[0] ?? 0) - origin, col };
    col += rank;
    return block;
  });
  const shapes = stackShapes(group, col);
  const adapter: LoraAdapter = {
    kind: 'lora',
    down: concatRows(adapters.map((a) => a.down), dtype, `merged ${group.key} down`),
    up: reshaped(placeBlocks([group.height, col], blocks, dtype, `merged ${group.key} up`), shapes.up),
    alpha: col,
    scale: 1,
  };
  return { component: group.component, target: group.target, rows: group.rows, adapter, source: sourceOf(group.key, group.parts) };
}

async function svdGroup(group: Group, choice: RankChoice): Promise<{ patch: Patch; fit: LowRank }> {
  const origin = group.rows?.[0] ?? 0;
  const parts = await Promise.all(group.parts.map((p) => readFactorPart(p.patch, p.weight, origin)));
  const cols = parts[0]!.cols;
  const stacked = stackFactors(parts, group.height, cols);
  const fit = await truncateProduct(stacked.up, stacked.down, group.height, stacked.rank, cols, { ...choice, what: `merge (svd): ${group.key} (${group.parts.map((p) => `${p.patch.source.module}, input ${p.input + 1}`).join('; ')})` });
  const dtype = commonDtype(group.parts.flatMap((p) => [(p.patch.adapter as LoraAdapter).up, (p.patch.adapter as LoraAdapter).down]));
  const shapes = stackShapes(group, fit.k);
  const adapter: LoraAdapter = {
    kind: 'lora',
    down: memoryTensor(fit.down, shapes.down, dtype, `merged ${group.key} down`),
    up: memoryTensor(fit.up, shapes.up, dtype, `merged ${group.key} up`),
    alpha: fit.k,
    scale: 1,
  };
  return { patch: { component: group.component, target: group.target, rows: group.rows, adapter, source: sourceOf(group.key, group.parts) }, fit };
}

/** Σ wᵢ·diffᵢ of 1-D full diffs on one target, placed over the union of their row ranges. */
function sumDiffs(parts: readonly Part[]): Patch {
  const first = parts[0]!.patch;
  const ranges = parts.map(({ patch }) => ({ start: patch.rows?.[0] ?? 0, len: patch.adapter.kind === 'full' ? (patch.adapter.diff.shape[0] ?? 1) : 0 }));
  const whole = parts.some((p) => !p.patch.rows);
  const start = whole ? 0 : Math.min(...ranges.map((r) => r.start));
  const end = Math.max(...ranges.map((r) => r.start + r.len));
  const tensors = parts.map((p) => (p.patch.adapter.kind === 'full' ? p.patch.adapter.diff : undefined)!);
  const dtype = commonDtype(tensors);
  const f32 = async () => {
    const out = new Float32Array(end - start);
    for (const [i, part] of parts.entries()) {
      const values = await tensors[i]!.f32();
      const at = ranges[i]!.start - start;
      for (let j = 0; j < values.length; j++) out[at + j]! += part.weight * values[j]!;
    }
    return out;
  };
  const key = patchKey(first);
  const diff = { shape: [end - start], dtype, origin: `merged ${key}`, f32, bytes: async () => encodeFromF32(await f32(), dtype) };
  const rows: RowSlice | undefined = whole ? undefined : [start, end - start];
  return { component: first.component, target: first.target, rows, adapter: { kind: 'full', diff }, source: sourceOf(patchKey({ ...first, rows }), parts) };
}

export async function mergeLoras(inputs: readonly MergeInput[], options: MergeOptions): Promise<{ set: AdapterSet; report: MergeReport }> {
  const pair = commonVariant(inputVariants(inputs.map((i) => i.set)));
  if ('problem' in pair) throw mergeError(pair.problem);
  const merged = await mergeOfOneModel(inputs, options);
  if (pair.variant) merged.set.variant = pair.variant;
  return merged;
}

/** The concat / svd options and inputs checked; the one architecture of the inputs. */
function checkFactorMerge(inputs: readonly MergeInput[], options: MergeOptions, method: 'concat' | 'svd'): string {
  const stray = (['density', 'drop', 'seed', 'output'] as const).filter((k) => options[k] !== undefined && !(k === 'output' && options.output === 'lora'));
  if (stray.length) throw mergeError(`${stray.join(', ')} ${stray.length === 1 ? 'applies' : 'apply'} to the dense methods (${DENSE_METHODS.join(', ')}), not ${method}`);
  if (inputs.length === 0) throw mergeError('no LoRAs to merge');
  checkRankChoice(options, `merge (${method})`, method === 'svd');
  inputs.forEach(({ weight }, i) => {
    if (!Number.isFinite(weight)) throw mergeError(`input ${i + 1}: weight ${weight} is not a finite number`);
  });
  const architectures = [...new Set(inputs.map((i) => i.set.architecture))];
  if (architectures.length > 1) {
    throw mergeError(`inputs are for different models (${inputs.map((inp, i) => `input ${i + 1}: ${inp.set.architecture}`).join(', ')})`);
  }
  return architectures[0]!;
}

interface SortedParts {
  loraParts: Map<string, Part[]>;
  biasParts: Map<string, Part[]>;
  sets: Map<string, Part[]>;
  needRefactor: Part[];
}

/** Every input's patches by what the merge does with them: LoRA factors, bias diffs, replacements, modules to refactor. */
function sortParts(inputs: readonly MergeInput[], options: MergeOptions, report: MergeReport): SortedParts {
  const sorted: SortedParts = { loraParts: new Map(), biasParts: new Map(), sets: new Map(), needRefactor: [] };
  const dora: string[] = [];
  inputs.forEach(({ set, weight }, input) => {
    report.ignoredKeys.push(...set.unknownKeys.map((k) => `input ${input + 1}: ${k}`));
    for (const raw of set.patches) {
      // a LoCon Tucker core folds into its down exactly, so such a patch merges like any conv LoRA
      const patch = raw.adapter.kind === 'lora' && raw.adapter.mid ? { ...raw, adapter: plainLora(raw.adapter, raw.source.module) } : raw;
      const part = { patch, weight, input };
      if (weight === 0) report.omitted.push(`input ${input + 1}: ${patch.source.module}`);
      else if (patch.dora) dora.push(`${patch.source.module} (input ${input + 1})`);
      else if (patch.adapter.kind === 'set') push(sorted.sets, targetKey(patch), part);
      else if (isLowRankLora(patch)) push(sorted.loraParts, targetKey(patch), part);
      else if (isBiasDiff(patch)) push(sorted.biasParts, targetKey(patch), part);
      else sorted.needRefactor.push(part);
    }
  });
  if (dora.length) {
    throw mergeError(`DoRA patches cannot be merged into a plain LoRA (their renormalisation is not additive): ${listNames(dora)}`);
  }
  if (sorted.needRefactor.length && !options.refactor) {
    const names = sorted.needRefactor.map((p) => `${p.patch.source.module} (${p.patch.adapter.kind}, input ${p.input + 1})`);
    throw mergeError(`${report.method} merges LoRA factors; these modules are not LoRAs: ${listNames(names)}. Pass refactor: true to turn them into LoRAs by SVD at the requested rank`);
  }
  if (sorted.needRefactor.length) checkRankChoice(options, 'refactor', true);
  for (const [key, parts] of sorted.sets) {
    if (parts.length > 1) {
      throw mergeError(`${key}: ${parts.length} inputs replace this weight outright (${parts.map((p) => `${p.patch.source.module}, input ${p.input + 1}`).join('; ')}); replacements cannot be merged`);
    }
  }
  return sorted;
}

/** The LoRA parts of every weight merged, by concatenation or SVD; the fits' energies of an SVD merge. */
async function mergeFactors(loraParts: ReadonlyMap<string, Part[]>, options: MergeOptions, report: MergeReport, progress: (label: string) => void): Promise<{ patches: Patch[]; fits: FitEnergy[] }> {
  const patches: Patch[] = [];
  const fits: FitEnergy[] = [];
  for (const parts of loraParts.values()) {
    for (const group of groupTarget(parts)) {
      checkAborted(options.ctx);
      if (group.fused) report.fused.push(group.key);
      if (options.method === 'concat') {
        const patch = concatGroup(group);
        patches.push(patch);
        report.modules.push({ module: group.key, inputs: group.parts.length, rank: adapterRank(patch.adapter)!, relError: 0, fused: group.fused });
      } else {
        const { patch, fit } = await svdGroup(group, options);
        patches.push(patch);
        fits.push(energyOf(fit));
        report.modules.push({ module: group.key, inputs: group.parts.length, rank: fit.k, relError: fit.relError, fused: group.fused });
      }
    }
    progress(parts[0]!.patch.target);
  }
  return { patches, fits };
}

async function mergeOfOneModel(inputs: readonly MergeInput[], options: MergeOptions): Promise<{ set: AdapterSet; report: MergeReport }> {
  const { method, ctx } = options;
  if (isDenseMethod(method)) return mergeByMethod(inputs, { ...options, method });
  if (method !== 'concat' && method !== 'svd') throw mergeError(`unknown method "${String(method)}" (concat, svd, ${DENSE_METHODS.join(', ')})`);
  const architecture = checkFactorMerge(inputs, options, method);
  const report: MergeReport = {
    method, backend: await ensureBackend(), modules: [], relError: 0, fused: [], refactored: [], summedDiffs: [], passthrough: [], omitted: [], ignoredKeys: [], notes: [],
  };
  const { loraParts, biasParts, sets, needRefactor } = sortParts(inputs, options, report);
  const total = needRefactor.length + loraParts.size + biasParts.size;
  let done = 0;
  const progress = (label: string) => ctx?.onProgress?.(++done, total, label);
  const log = ctx?.log;
  log?.(`merge (${method}) of ${inputs.length} LoRAs on the ${report.backend} backend`);

  const refactorFits: FitEnergy[] = [];
  for (const part of needRefactor) {
    checkAborted(ctx);
    const { patch, fit, kind } = await refactorPatch(part, options);
    refactorFits.push(energyOf(fit));
    report.refactored.push({ module: part.patch.source.module, input: part.input, kind, rank: fit.k, relError: fit.relError });
    push(loraParts, targetKey(patch), { ...part, patch });
    progress(`refactor ${part.patch.source.module}`);
  }
  const { patches, fits } = await mergeFactors(loraParts, options, report, progress);
  for (const [key, parts] of biasParts) {
    checkAborted(ctx);
    patches.push(sumDiffs(parts));
    report.summedDiffs.push(key);
    progress(key);
  }
  for (const [key, [part]] of sets) {
    patches.push(part!.patch);
    report.passthrough.push(key);
    if (part!.weight !== 1) report.notes.push(`${part!.patch.source.module}: replacement values are carried over as they are (weight ${part!.weight} does not apply to a replacement)`);
  }
  report.relError = overallError(method === 'svd' ? fits : refactorFits);
  if (report.ignoredKeys.length) report.notes.push(`${report.ignoredKeys.length} keys the readers could not place are not part of the merge: ${listNames(report.ignoredKeys)}`);
  if (report.omitted.length) report.notes.push(`${report.omitted.length} modules of inputs with weight 0 are left out`);
  const set: AdapterSet = { architecture, format: 'merged', patches, metadata: sharedMetadata(inputs.map((i) => i.set)), unknownKeys: [], notes: [...report.notes] };
  log?.(`merged ${report.modules.length} modules${method === 'svd' ? `, relative error ${report.relError.toExponential(2)}` : ''}`);
  return { set, report };
}
