/**
 * What a checkpoint is written as, tensor by tensor: for each output tensor its name, shape and
 * stored dtype, and where its values come from (row ranges of canonical tensors: the input's own
 * tensors, the parts of a fused weight, the halves of a swapped one), plus the tensors of a
 * scaled fp8 encoding (scales written after their weights, markers copied). The output keeps the
 * input's container, layout and encoding unless told otherwise; a folder keeps its shards when its
 * tensor names stay, else gets new ones as diffusers would cut them.
 */
import { checkpointArchitecture } from '../formats/checkpoint-family.ts';
import { familyOf } from '../formats/families.ts';
import type { GgufValue } from '../gguf/metadata.ts';
import { REFERENCE_DTYPE_ORDER, type DType } from '../tensor/dtype.ts';
import { isFp8, type Fp8DType } from '../tensor/fp8-round.ts';
import { numel } from '../tensor/lazy.ts';
import type { CanonicalView, Layout } from './canonical.ts';
import { DiffusersFolderWriter, type ShardPlan } from './diffusers-folder.ts';
import { WEIGHTS_NAME, shardName } from './diffusers-index.ts';
import { namingOfFamily } from './diffusers-names.ts';
import { isPatchable, isPlain, isQuantized, storedBytes } from './encoding.ts';
import { CheckpointError } from './errors.ts';
import type { CheckpointWriter, Container, OutputSpec } from './form.ts';
import { GgufOutput } from './gguf-file.ts';
import { SafetensorsOutput } from './safetensors-file.ts';
import type { ScaledWeight } from './scaled-fp8.ts';

export type FormatChoice = 'keep' | 'safetensors' | 'diffusers' | 'gguf';
export type LayoutChoice = 'keep' | Layout;

export const FORMAT_CHOICES: readonly FormatChoice[] = ['keep', 'safetensors', 'diffusers', 'gguf'];
export const LAYOUT_CHOICES: readonly LayoutChoice[] = ['keep', 'original', 'diffusers'];

export interface OutputChoice {
  format?: FormatChoice;
  layout?: LayoutChoice;
  /** Floating-point tensors' dtype ('keep': as stored; fp8 keeps 1-D tensors as they are). */
  dtype?: DType | 'keep';
  /** Largest shard of a newly cut diffusers folder (default diffusers' 10 GB). */
  shardBytes?: number;
}

/** Rows [canonRow, canonRow + rows) of canonical tensor `canonical` are rows [at, at + rows) of the output tensor. */
export interface Piece {
  canonical: string;
  canonRow: number;
  rows: number;
  at: number;
}

export interface OutputTensor extends OutputSpec {
  /** values: computed from `pieces`; scale: the new scale of weight `of`; copy: input tensor `of` byte for byte. */
  kind: 'values' | 'scale' | 'copy';
  pieces: readonly Piece[];
  /** values: the stored dtype of its pieces. */
  inDtype: string;
  /** values read from a scaled fp8 input (one whole piece). */
  scaleIn?: ScaledWeight;
  /** values written scaled: the output tensor its scale goes to. */
  scaleOut?: { tensor: string; weight: ScaledWeight; fp8: Fp8DType };
  of?: string;
}

export interface OutputPlan {
  container: Container;
  layout: Layout;
  scaled: boolean;
  /** In the order they are written. */
  tensors: readonly OutputTensor[];
  notes: string[];
  /** Opens the writer; `extra` metadata goes over the input's own (every shard of a folder; GGUF: string values). */
  create(path: string, extra: Readonly<Record<string, string>>): Promise<CheckpointWriter>;
}

/** diffusers' default max_shard_size. */
const SHARD_BYTES = 10e9;
const DENOISER_PREFIXES = ['model.diffusion_model.', 'diffusion_model.'];

function unsupported(path: string, why: string): CheckpointError {
  return new CheckpointError('UNSUPPORTED_FORM', path, why);
}

function listNames(names: readonly string[], max = 8): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

const CONTAINER_OF: Record<Exclude<FormatChoice, 'keep'>, Container> = { safetensors: 'safetensors', diffusers: 'diffusers-folder', gguf: 'gguf' };

/**
 * The output plan for `view` as `choice` says. `patched` names the canonical tensors a patch
 * changes: a scaled fp8 output writes their scales after them; every other tensor keeps its place.
 */
export function planOutput(view: CanonicalView, choice: OutputChoice, patched: ReadonlySet<string> = new Set()): OutputPlan {
  const reader = view.reader;
  const path = view.path;
  const container = !choice.format || choice.format === 'keep' ? reader.container : CONTAINER_OF[choice.format];
  const layout: Layout = !choice.layout || choice.layout === 'keep' ? (container === 'diffusers-folder' ? 'diffusers' : view.layout) : choice.layout;
  const dtype = choice.dtype ?? 'keep';
  if (container === 'diffusers-folder' && layout === 'original') throw unsupported(path, 'a diffusers folder holds diffusers names: layout original goes with format safetensors');
  if (container === 'gguf' && reader.container !== 'gguf') throw unsupported(path, `GGUF output keeps a GGUF input's quant types; this input is a ${reader.container} (write safetensors, or convert with a GGUF tool)`);
  if (container === 'gguf' && layout !== 'original') throw unsupported(path, 'GGUF files hold original names: layout diffusers goes with format diffusers or safetensors');
  if (container === 'gguf' && dtype !== 'keep') throw unsupported(path, `GGUF output keeps every tensor's type; dtype ${dtype} applies to safetensors outputs`);
  const scaled = view.scaled !== undefined && dtype === 'keep';
  if (scaled && (layout !== view.layout || container !== 'safetensors')) {
    throw unsupported(path, 'a scaled fp8 checkpoint keeps its form: give a dtype (bf16, fp16, fp32) to write plain weights in another layout or format');
  }
  const notes: string[] = [];
  if (view.scaled && !scaled) notes.push(`scaled fp8 weights decoded (W = q · scale) and written as ${dtype}; the scaled_fp8 marker and ${view.scaled.companions.size - view.scaled.markers.length} scale tensors left out`);

  const quantizedKept: string[] = [];
  const outDtype = (t: { name: string; dtype: string; shape: readonly number[] }): string => {
    if (dtype === 'keep') {
      if (container !== 'gguf' && isQuantized(t.dtype)) quantizedKept.push(`${t.name} (${t.dtype})`);
      return t.dtype;
    }
    if (!isPatchable(t.dtype)) return t.dtype;
    // biases and norm scales are tiny and sensitive: fp8 is for the matrices, as every fp8 checkpoint does it
    if (isFp8(dtype) && t.shape.length < 2 && isPlain(t.dtype)) return t.dtype;
    return dtype;
  };
  const valuesOf: ValuesOf = (name, shape, canonical, pieces) => {
    const t = view.info(canonical);
    return { name, shape, dtype: outDtype(t), kind: 'values', pieces, inDtype: t.dtype, scaleIn: t.scale };
  };
  const whole = (name: string) => [{ canonical: name, canonRow: 0, rows: view.info(name).shape[0] ?? 1, at: 0 }];

  let tensors: OutputTensor[] = [];
  if (layout === view.layout && view.layout === 'original') {
    tensors = originalTensors(view, scaled, patched, valuesOf, whole);
  } else if (layout === view.layout) {
    // diffusers → diffusers: the stored tensors, each from the rows of the canonical tensor it is part of
    const pieces = new Map<string, { canonical: string; list: Piece[] }>();
    for (const t of view.tensors) for (const r of t.rows) {
      const entry = pieces.get(r.tensor) ?? { canonical: t.name, list: [] };
      entry.list.push({ canonical: t.name, canonRow: r.at, rows: r.rows, at: r.rowStart });
      pieces.set(r.tensor, entry);
    }
    tensors = reader.tensors.map((s) => {
      const p = pieces.get(s.name)!;
      return valuesOf(s.name, s.shape, p.canonical, p.list);
    });
  } else if (layout === 'diffusers') {
    tensors = toDiffusers(view, valuesOf);
  } else {
    const stray = view.tensors.filter((t) => t.direct && !view.naming!.knows(t.name)).map((t) => t.name);
    if (stray.length) throw unsupported(path, `${stray.length} tensors have no original name in the ${view.family!.label} module table (${listNames(stray)}); keep layout diffusers`);
    tensors = view.tensors.map((t) => valuesOf(t.name, t.shape, t.name, whole(t.name)));
  }
  if (quantizedKept.length) {
    throw unsupported(path, `${quantizedKept.length} tensors are stored in GGUF block types, which safetensors cannot hold (${listNames(quantizedKept)}): give a dtype (bf16, fp16, fp32)`);
  }

  return withWriter(view, { container, layout, scaled, tensors, notes }, choice.shardBytes ?? SHARD_BYTES);
}

const spec = (t: OutputTensor): OutputSpec => ({ name: t.name, shape: t.shape, dtype: t.dtype });

/** The plan with the writer of its container (a diffusers folder's tensors in shard order). */
function withWriter(view: CanonicalView, plan: Omit<OutputPlan, 'create'>, shardBytes: number): OutputPlan {
  const reader = view.reader;
  const { container, tensors } = plan;
  if (container === 'safetensors') {
    return { ...plan, create: (out, extra) => SafetensorsOutput.create(out, tensors.map(spec), merged(reader.metadata, extra)) };
  }
  if (container === 'gguf') {
    const gguf = reader.gguf!;
    return {
      ...plan,
      create: (out, extra) => {
        const metadata = new Map<string, GgufValue>(gguf.metadata);
        for (const [k, v] of Object.entries(extra)) metadata.set(k, { type: 'STRING', value: v });
        return GgufOutput.create(out, tensors.map(spec), { metadata, alignment: gguf.alignment, dims: gguf.dims });
      },
    };
  }
  const { shards, indexed, order } = planShards(view, tensors, shardBytes);
  if (!reader.folder?.config) plan.notes.push('the input has no diffusers config.json: the output folder has none either (diffusers needs one beside the weights to load them)');
  return {
    ...plan,
    tensors: order,
    create: (out, extra) => DiffusersFolderWriter.create(out, shards.map((s) => ({ ...s, metadata: merged(s.metadata, extra) })), { indexed, indexMetadata: reader.folder?.indexMetadata, config: reader.folder?.config }),
  };
}

type ValuesOf = (name: string, shape: readonly number[], canonical: string, pieces: Piece[]) => OutputTensor;

/** Original → original: the input's own tensors in its order; a scaled fp8 output writes each patched weight's new scale right after it. */
function originalTensors(view: CanonicalView, scaled: boolean, patched: ReadonlySet<string>, valuesOf: ValuesOf, whole: (name: string) => Piece[]): OutputTensor[] {
  const reader = view.reader;
  const tensors: OutputTensor[] = [];
  for (const s of reader.tensors) {
    if (!view.scaled?.companions.has(s.name)) {
      const out = valuesOf(s.name, s.shape, s.name, whole(s.name));
      tensors.push(out);
      const w = view.info(s.name).scale;
      if (scaled && w && patched.has(s.name)) {
        // a patched weight's new scale is known once the weight is encoded: it is written right after it
        out.scaleOut = { tensor: w.scale, weight: w, fp8: s.dtype as Fp8DType };
        const scale = reader.info(w.scale);
        tensors.push({ name: w.scale, shape: scale.shape, dtype: scale.dtype, kind: 'scale', pieces: [], inDtype: scale.dtype, of: s.name });
      }
      continue;
    }
    if (!scaled) continue;
    const moved = [...view.scaled!.weights.values()].some((w) => w.scale === s.name && patched.has(w.weight));
    if (!moved) tensors.push({ name: s.name, shape: s.shape, dtype: s.dtype, kind: 'copy', pieces: [], inDtype: s.dtype, of: s.name });
  }
  return tensors;
}

/** The input's metadata with `extra` over it; undefined when both are empty (a file without metadata stays so). */
function merged(own: Readonly<Record<string, string>> | undefined, extra: Readonly<Record<string, string>>): Record<string, string> | undefined {
  if (!own && Object.keys(extra).length === 0) return undefined;
  return { ...(own ?? {}), ...extra };
}

/** An original-layout checkpoint's tensors under diffusers names, split and swapped as its family's table says. */
function toDiffusers(view: CanonicalView, valuesOf: ValuesOf): OutputTensor[] {
  const path = view.path;
  const names = view.tensors.map((t) => t.name);
  const prefix = DENOISER_PREFIXES.find((p) => names.some((n) => n.startsWith(p))) ?? '';
  const outside = names.filter((n) => !n.startsWith(prefix));
  if (outside.length) throw unsupported(path, `a diffusers folder holds the denoiser alone, but ${outside.length} tensors are outside ${prefix || 'it'} (${listNames(outside)}): an all-in-one checkpoint keeps layout original`);
  const bare = (n: string) => n.slice(prefix.length);
  const guess = checkpointArchitecture(view.tensors.map((t) => ({ name: bare(t.name), shape: t.shape })));
  const naming = namingOfFamily(familyOf(guess.architecture));
  if (!naming) throw unsupported(path, `diffusers names come from a family's module table, and ${guess.architecture === 'unknown' ? 'this checkpoint is not a family loraflow recognises' : `${guess.architecture} has none`}`);
  const shapes = new Map(view.tensors.map((t) => [bare(t.name), t.shape]));
  const out: OutputTensor[] = [];
  const unmapped: string[] = [];
  for (const t of view.tensors) {
    const parts = naming.diffusers({ ...t, name: bare(t.name) }, (n) => shapes.get(n));
    if (!parts) {
      unmapped.push(t.name);
      continue;
    }
    for (const p of parts) out.push(valuesOf(p.name, p.shape, t.name, p.rows.map((r) => ({ canonical: t.name, canonRow: r.rowStart, rows: r.rows, at: r.at }))));
  }
  if (unmapped.length) throw unsupported(path, `${unmapped.length} tensors have no diffusers name in the module table (${listNames(unmapped)}); keep layout original`);
  return out;
}

/**
 * A folder output's shards: the input folder's own when the tensor names are the same (a round
 * trip writes the same files), else cut as huggingface_hub does (in order, a new shard when the
 * next tensor would pass `limit`), each shard in the reference writer's order, named as diffusers
 * names them, one unindexed file when one is enough.
 */
function planShards(view: CanonicalView, tensors: readonly OutputTensor[], limit: number): { shards: ShardPlan[]; indexed: boolean; order: OutputTensor[] } {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const spec = (t: OutputTensor): OutputSpec => ({ name: t.name, shape: t.shape, dtype: t.dtype });
  const folder = view.reader.folder;
  if (folder && folder.shards.reduce((n, s) => n + s.tensors.length, 0) === tensors.length && folder.shards.every((s) => s.tensors.every((n) => byName.has(n)))) {
    const shards = folder.shards.map((s) => ({ file: s.file, specs: s.tensors.map((n) => spec(byName.get(n)!)), metadata: s.metadata ? { ...s.metadata } : undefined }));
    return { shards, indexed: folder.indexed, order: folder.shards.flatMap((s) => s.tensors.map((n) => byName.get(n)!)) };
  }
  const groups: OutputTensor[][] = [];
  let size = 0;
  for (const t of tensors) {
    const bytes = storedBytes(t.dtype, numel(t.shape));
    if (!groups.length || (size + bytes > limit && groups.at(-1)!.length > 0)) {
      groups.push([]);
      size = 0;
    }
    groups.at(-1)!.push(t);
    size += bytes;
  }
  const rank = (d: string) => REFERENCE_DTYPE_ORDER.indexOf(d);
  for (const g of groups) g.sort((a, b) => rank(b.dtype) - rank(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const indexed = groups.length > 1;
  const shards = groups.map((g, i) => ({ file: indexed ? shardName(i, groups.length) : WEIGHTS_NAME, specs: g.map(spec), metadata: { format: 'pt' } }));
  return { shards, indexed, order: groups.flat() };
}
