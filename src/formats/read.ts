/**
 * `readLora(path)`: any LoRA layout → the canonical AdapterSet, tensors left in the file (lazy).
 * Only header, alphas and other scalars are read up front. Every key ends up in a patch or, by
 * name, in `unknownKeys`.
 */
import { SafetensorsFile } from '../safetensors/reader.ts';
import { encodeFromF32, isCodecDType, isFloatDType } from '../tensor/dtype.ts';
import { nonFiniteF32 } from '../tensor/finite.ts';
import { fileTensor, nonFiniteError, type LazyTensor } from '../tensor/lazy.ts';
import type { Adapter, AdapterSet, DoraMagnitude, Patch } from '../adapter/model.ts';
import { analyzeKeys, type Analysis } from './analyze.ts';
import { LoraFormatError } from '../adapter/errors.ts';
import type { PatchSpec } from './keys/plan.ts';
import { parseRole, type Role } from './keys/roles.ts';
import { peftAlphaFor, parsePeftMetadata, type PeftAlphas } from './peft-metadata.ts';
import { swapRowHalves } from '../adapter/tensor-ops.ts';
import { selectMember, type MemberSelection } from './members.ts';
import { variantOf } from './variants.ts';

/** A LoRA file held open: its adapter set (plain data, tensors read from the file on demand) and how to let the file go. */
export interface LoraFile {
  path: string;
  set: AdapterSet;
  close(): Promise<void>;
}

/** The set with the file's `path` and `close` beside its fields, for scripts and tests that hold one file at a time. */
export interface LoraHandle extends AdapterSet {
  path: string;
  close(): Promise<void>;
}

export interface ReadLoraOptions {
  /**
   * Let tensors holding NaN or ±Inf through (default false: the first read of such a tensor, by
   * whatever operation, is refused with an input error naming the file, the key and the count).
   */
  allowNonFinite?: boolean;
  /** Of a file holding both members of a model pair (combined experts): the member whose keys to read. */
  member?: string;
}

/** The file as the readers see it: with a model-pair member chosen, that member's keys without their infix. */
type LoraSource = Pick<SafetensorsFile, 'path' | 'tensors' | 'metadata' | 'info' | 'readF32' | 'readBytes'>;

function memberView(file: SafetensorsFile, sel: MemberSelection): LoraSource {
  const real = (name: string) => sel.fileName.get(name) ?? name;
  return {
    path: file.path,
    metadata: file.metadata,
    tensors: [...sel.fileName].map(([name, original]) => ({ ...file.info(original), name })),
    info: (name) => ({ ...file.info(real(name)), name }),
    readF32: (name) => file.readF32(real(name)),
    readBytes: (name) => file.readBytes(real(name)),
  };
}

export async function readLora(path: string, opts: ReadLoraOptions = {}): Promise<LoraHandle> {
  const { set, close } = await openLora(path, opts);
  return { ...set, path, close };
}

/** Reads a LoRA's layout into the canonical model; the file stays open for the tensors until `close`. */
export async function openLora(path: string, opts: ReadLoraOptions = {}): Promise<LoraFile> {
  const file = await SafetensorsFile.open(path);
  try {
    const selection = selectMember(file.tensors.map((t) => t.name), opts.member);
    const set = await readOpenFile(selection ? memberView(file, selection) : file, opts);
    const variant = selection ? undefined : variantOf(set.architecture, { path, metadata: set.metadata });
    if (selection) describeSelection(set, selection);
    else if (variant) {
      set.variant = variant;
      set.notes.push(`for the ${variant} model of its pair (from the file name or metadata)`);
    }
    return { path, set, close: () => file.close() };
  } catch (e) {
    await file.close();
    if (e instanceof LoraFormatError) throw new LoraFormatError(e.code, `${path}: ${e.message}`, e.module);
    throw e;
  }
}

/** A combined file read for one member: the set is that member's, and the other member's keys are named in a note. */
function describeSelection(set: AdapterSet, sel: MemberSelection): void {
  set.variant = sel.member;
  const other = sel.present.filter((m) => m !== sel.member);
  const left = sel.leftOut.length;
  set.notes.push(
    `for the ${sel.member} model of its pair: ${other.length ? `the file holds both members; ${left} keys of the ${other.join(', ')} model are left out (${sel.leftOut.slice(0, 3).join(', ')}${left > 3 ? ', …' : ''})` : 'the only member the file holds'}`,
  );
  for (const p of set.patches) p.source.keys = p.source.keys.map((k) => sel.fileName.get(k) ?? k);
  set.unknownKeys = set.unknownKeys.map((k) => sel.fileName.get(k) ?? k);
}

/** Scalars read up front (alphas, reshape targets): checked for NaN/±Inf like every adapter tensor. */
async function readScalars(file: LoraSource, name: string, opts: ReadLoraOptions): Promise<Float32Array> {
  const values = await file.readF32(name);
  if (!opts.allowNonFinite) {
    const found = nonFiniteF32(values);
    if (found.count > 0) throw nonFiniteError(file.path, name, found, values.length);
  }
  return values;
}

/** The alphas (one value each, any dtype) of every module. */
async function readAlphas(file: LoraSource, analysis: Analysis, opts: ReadLoraOptions): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const spec of analysis.plan.specs) {
    const k = spec.tensors.alpha;
    if (!k || out.has(k.name)) continue;
    checkDtype(file, spec, 'alpha');
    out.set(k.name, (await readScalars(file, k.name, opts))[0]!);
  }
  return out;
}

/** Roles whose values are counts, not weights: sd-scripts tools store alphas as I64, ComfyUI reshape targets as integers. */
const INTEGER_ROLES: ReadonlySet<Role> = new Set(['alpha', 'reshape']);

/** Adapter factors must be floating point: an I8 or BOOL `lora_up` is not a LoRA anyone trained. */
function checkDtype(file: LoraSource, spec: PatchSpec, role: Role): void {
  const k = spec.tensors[role];
  if (!k) return;
  const dtype = file.info(k.name).dtype;
  const ok = isCodecDType(dtype) && (isFloatDType(dtype) || (INTEGER_ROLES.has(role) && dtype !== 'BOOL'));
  if (!ok) {
    throw new LoraFormatError(
      'BAD_DTYPE',
      `${spec.source.module}: tensor ${k.name} is stored as ${dtype}; ${INTEGER_ROLES.has(role) ? `an ${role} must be a number (a float or integer dtype)` : 'adapter factors must be floating point (F32, F16, BF16, F64 or FP8)'}`,
      spec.source.module,
    );
  }
}

/** Why a file yields no patch at all: empty, or keys that form no module. */
function noModulesMessage(file: LoraSource, unknownKeys: readonly string[]): string {
  const n = file.tensors.length;
  if (n === 0) return 'holds no tensors: an empty file is not a LoRA';
  const alphas = unknownKeys.filter((k) => parseRole(k)?.role === 'alpha').length;
  const list = `${unknownKeys.slice(0, 5).join(', ')}${unknownKeys.length > 5 ? `, … (${unknownKeys.length} keys)` : ''}`;
  return (
    `no adapter module loraflow can apply: none of its ${n} tensor${n === 1 ? '' : 's'} forms a LoRA, LoHa, LoKr or diff module` +
    `${alphas > 0 ? ` (${alphas === n ? 'the file holds only alphas' : `${alphas} are alphas`}, without their lora_down/lora_up)` : ''}; keys not understood: ${list}`
  );
}

async function readOpenFile(file: LoraSource, opts: ReadLoraOptions): Promise<AdapterSet> {
  const metadata = { ...(file.metadata ?? {}) };
  const keys = file.tensors.map((t) => ({ name: t.name, shape: t.shape }));
  // alphas decide the split_qkv note, so the key set is analysed once they are known
  const first = analyzeKeys(keys, metadata);
  if (first.format === 'checkpoint') {
    throw new LoraFormatError('UNKNOWN_FORMAT', `a ${first.architecture === 'unknown' ? '' : `${first.architecture} `}model checkpoint (no adapter tensors), not a LoRA`);
  }
  if (first.plan.problems.length > 0) throw first.plan.problems[0]!;
  const scalars = await readAlphas(file, first, opts);
  const analysis = analyzeKeys(keys, metadata, scalars);
  if (analysis.plan.problems.length > 0) throw analysis.plan.problems[0]!;
  if (analysis.plan.specs.length === 0) throw new LoraFormatError('NO_MODULES', noModulesMessage(file, analysis.plan.unknownKeys));
  for (const spec of analysis.plan.specs) for (const role of Object.keys(spec.tensors) as Role[]) checkDtype(file, spec, role);
  const peft = parsePeftMetadata(metadata);
  const notes = [...analysis.notes];
  if (peft && analysis.plan.specs.some((s) => s.layout === 'diffusers' && !s.tensors.alpha)) {
    notes.push(`alphas taken from lora_adapter_metadata (lora_alpha ${peft.alpha}${peft.useRslora ? ', rsLoRA' : ''})`);
  }
  const patches: Patch[] = [];
  for (const spec of analysis.plan.specs) patches.push(await buildPatch(file, spec, scalars, peft, opts));
  return {
    architecture: analysis.architecture,
    format: analysis.format,
    patches,
    metadata,
    unknownKeys: analysis.plan.unknownKeys,
    notes,
  };
}

async function buildPatch(file: LoraSource, spec: PatchSpec, scalars: Map<string, number>, peft: PeftAlphas | undefined, opts: ReadLoraOptions): Promise<Patch> {
  const t = (role: keyof PatchSpec['tensors']) => {
    const k = spec.tensors[role];
    return k ? fileTensor(file, k.name, { allowNonFinite: opts.allowNonFinite }) : undefined;
  };
  const rowsOrdered = (x: LazyTensor) => (spec.swapHalves ? swapRowHalves(x) : x);
  let alpha = spec.tensors.alpha ? scalars.get(spec.tensors.alpha.name) : undefined;
  if (alpha === undefined && spec.layout === 'diffusers' && peft && spec.rank !== undefined) alpha = peftAlphaFor(peft, spec.source.module, spec.rank);
  const module = spec.source.module;
  let adapter: Adapter;
  switch (spec.kind) {
    case 'lora': {
      adapter = { kind: 'lora', down: t('down')!, up: rowsOrdered(t('up')!), scale: alpha === undefined ? 1 : alpha / spec.rank! };
      const mid = t('mid');
      if (mid) adapter.mid = mid;
      if (alpha !== undefined) adapter.alpha = alpha;
      break;
    }
    case 'loha': {
      if (spec.swapHalves && (spec.tensors.hada_t1 || spec.tensors.hada_t2)) {
        throw new LoraFormatError('BAD_SHAPES', `${module}: Tucker LoHa factors cannot be reordered into BFL row order`, module);
      }
      adapter = {
        kind: 'loha',
        w1a: rowsOrdered(t('hada_w1_a')!),
        w1b: t('hada_w1_b')!,
        w2a: rowsOrdered(t('hada_w2_a')!),
        w2b: t('hada_w2_b')!,
        scale: alpha === undefined ? 1 : alpha / spec.rank!,
      };
      if (t('hada_t1')) adapter.t1 = t('hada_t1');
      if (t('hada_t2')) adapter.t2 = t('hada_t2');
      if (alpha !== undefined) adapter.alpha = alpha;
      break;
    }
    case 'lokr':
      adapter = lokrAdapter(spec, t, alpha);
      break;
    case 'full':
      adapter = { kind: 'full', diff: spec.biasThroughUp ? biasThroughUp(t('up')!, t('down_bias')!, spec, alpha) : rowsOrdered((t('diff') ?? t('diff_b') ?? t('up_bias'))!) };
      break;
    case 'set':
      adapter = { kind: 'set', value: t('set')! };
      break;
  }
  const patch: Patch = { component: spec.component, target: spec.target, adapter, source: { module, keys: spec.source.keys } };
  if (spec.rows) patch.rows = spec.rows;
  const dora = doraOf(spec, t, rowsOrdered);
  if (dora) patch.dora = dora;
  if (spec.tensors.reshape) patch.reshape = [...(await readScalars(file, spec.tensors.reshape.name, opts))].map(Math.round);
  else if (spec.reshape) patch.reshape = spec.reshape;
  return patch;
}

function doraOf(spec: PatchSpec, t: (r: 'dora' | 'magnitude') => LazyTensor | undefined, rowsOrdered: (x: LazyTensor) => LazyTensor): DoraMagnitude | undefined {
  const m = t('dora') ?? t('magnitude');
  if (!m || !spec.doraAxis) return undefined;
  if (spec.doraAxis === 'in') return { magnitude: m, axis: 'in' };
  return { magnitude: rowsOrdered(m), axis: 'out' };
}

function lokrAdapter(spec: PatchSpec, t: (r: keyof PatchSpec['tensors']) => LazyTensor | undefined, alpha: number | undefined): Adapter {
  const module = spec.source.module;
  const w1 = t('lokr_w1');
  const w1a = t('lokr_w1_a');
  // kron(w1, w2) row r = i1·R2 + i2, so moving by half the rows is moving w1's rows by half of them
  let swap = (x: LazyTensor) => x;
  if (spec.swapHalves) {
    const rows1 = (w1 ?? w1a)!.shape[0]!;
    if (rows1 % 2 !== 0) throw new LoraFormatError('BAD_SHAPES', `${module}: LoKr w1 has ${rows1} rows, so its kron rows cannot be reordered into BFL order`, module);
    swap = swapRowHalves;
  }
  // ComfyUI: alpha / rank only when a factor is decomposed, else 1
  const a: Adapter = { kind: 'lokr', scale: alpha !== undefined && spec.rank !== undefined ? alpha / spec.rank : 1 };
  if (w1) a.w1 = swap(w1);
  if (w1a) a.w1a = swap(w1a);
  if (t('lokr_w1_b')) a.w1b = t('lokr_w1_b');
  if (t('lokr_w2')) a.w2 = t('lokr_w2');
  if (t('lokr_w2_a')) a.w2a = t('lokr_w2_a');
  if (t('lokr_w2_b')) a.w2b = t('lokr_w2_b');
  if (t('lokr_t2')) a.t2 = t('lokr_t2');
  if (alpha !== undefined) a.alpha = alpha;
  return a;
}

/** A `lora_A.bias` b adds scale · up @ b to the layer's output bias. */
function biasThroughUp(up: LazyTensor, downBias: LazyTensor, spec: PatchSpec, alpha: number | undefined): LazyTensor {
  const [out, r] = up.shape as [number, number];
  const scale = alpha === undefined ? 1 : alpha / r;
  const ordered = spec.swapHalves ? swapRowHalves(up) : up;
  const compute = async () => {
    const [u, b] = await Promise.all([ordered.f32(), downBias.f32()]);
    if (b.length !== r) throw new LoraFormatError('BAD_SHAPES', `${downBias.origin}: ${b.length} values for rank ${r}`, spec.source.module);
    const v = new Float32Array(out);
    for (let i = 0; i < out; i++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += u[i * r + j]! * b[j]!;
      v[i] = s * scale;
    }
    return v;
  };
  return { shape: [out], dtype: up.dtype, origin: `${ordered.origin} @ ${downBias.origin}`, f32: compute, bytes: async () => encodeFromF32(await compute(), up.dtype) };
}
