/**
 * Checkpoint merges (weighted sum, add difference, TIES / DARE / dare-ties / magnitude-prune over
 * task vectors relative to a base; checkpoint-methods.ts), streamed tensor by tensor in the first
 * model's file order: each input's bytes of one tensor are read into reused buffers (the next
 * tensor's read in flight while one is computed, the previous one being written), so memory is a
 * few times one tensor per input, never the model. The output mirrors the first model (A): its
 * tensor names, order, dtypes (unless `dtype` says otherwise) and metadata.
 *
 * Tensors that are not float, or that are identical in every input (where the method maps
 * identical inputs to themselves), are copied byte for byte. Everything is checked from the headers
 * first (checkpoint-merge-plan.ts); the output is a staging file renamed when complete, so a failure
 * or a cancel leaves nothing. Non-finite results are written and reported per tensor, as applyToBase does.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { fillBuffer } from '../file-read.ts';
import { SafetensorsWriter, type TensorSpec } from '../safetensors/writer.ts';
import type { TensorInfo } from '../safetensors/reader.ts';
import { decodeInto, dtypeBytes, encodeInto, isCodecDType, isFloatDType, parseDType, type DType } from '../tensor/dtype.ts';
import { countNonFiniteStored } from '../tensor/finite.ts';
import { isFp8 } from '../tensor/fp8-round.ts';
import { checkAborted, type OpContext } from '../adapter/context.ts';
import { countOutOfRange } from '../tensor/fused-codec.ts';
import { blockOfCheckpointTensor, checkpointBlockIds, checkpointModuleName, parseCheckpointBlocks } from './checkpoint-blocks.ts';
import {
  TaskWorkspace, checkpointMergeError, checkpointMethodParams, elementwise, identityPreserving, isTaskVectorMethod, resolveCheckpointMethod, taskVectorMerge,
  type CheckpointMethodOptions, type ResolvedCheckpointMethod,
} from './checkpoint-methods.ts';
import { planCheckpointMerge, type CheckpointPlan, type PlannedTensor } from './checkpoint-merge-plan.ts';
import { blockWeightError } from './blocks.ts';

export interface CheckpointMergeOptions extends CheckpointMethodOptions {
  /** Two or three model checkpoints: A, B[, C]. */
  models: readonly string[];
  /** The base of the task-vector methods. */
  base?: string;
  out: string;
  /** Output dtype of float tensors: 'keep' (each as in A) or a dtype (user spellings accepted). */
  dtype?: 'keep' | DType | string;
  /** Extra metadata for the output (over A's own). */
  metadata?: Record<string, string>;
  ctx?: OpContext;
}

export interface CheckpointMergeReport {
  method: string;
  params: Record<string, unknown>;
  architecture: string;
  out: string;
  tensors: number;
  /** Tensors computed by the method. */
  merged: number;
  /** Float tensors identical in every input, copied byte for byte. */
  identical: number;
  /** Tensors that are not float (integers), copied byte for byte from A. */
  nonFloat: number;
  /** Copied tensors re-encoded to the output dtype. */
  converted: number;
  /** α per block id that differs from the global α, and how many tensors belong to no block (they take the global α). */
  blocks?: { alpha: Record<string, number>; unassigned: number };
  /** Values beyond the output dtype's largest finite value (fp8: written saturated; F16: Inf). */
  outOfRange: number;
  /** Written tensors holding NaN or ±Inf, by name, with how many. */
  nonFinite: { tensor: string; count: number }[];
  bytes: number;
  notes: string[];
  seconds: number;
}

/** Values per chunk of the elementwise methods (decoded, combined and encoded a chunk at a time). */
const CHUNK = 1 << 18;

function outputDtype(choice: DType | 'keep', info: TensorInfo, float: boolean): string {
  if (choice === 'keep' || !float) return info.dtype;
  // Biases and norm scales are tiny and sensitive: fp8 is for the matrices (as in applyToBase).
  if (isFp8(choice) && info.shape.length < 2) return info.dtype;
  return choice;
}

function parseChoice(dtype: CheckpointMergeOptions['dtype']): DType | 'keep' {
  if (dtype === undefined || dtype === 'keep') return 'keep';
  const d = isCodecDType(dtype) ? dtype : parseDType(dtype);
  if (!isFloatDType(d)) throw checkpointMergeError(`output dtype ${d} is not a floating-point dtype`);
  return d;
}

const bytesOf = (t: TensorInfo) => t.end - t.begin;

/** Two reused byte buffers per input (the tensor being merged, the next one being read). */
class InputSlots {
  private readonly buffers: ArrayBuffer[] = [];
  constructor(private readonly capacity: number) {}
  view(i: number, length: number): Uint8Array {
    const k = i % 2;
    this.buffers[k] ??= new ArrayBuffer(this.capacity);
    return new Uint8Array(this.buffers[k]!, 0, length);
  }
}

async function readInto(handle: FileHandle, position: number, buf: Uint8Array, path: string, tensor: string): Promise<Uint8Array> {
  await fillBuffer(handle, buf, position, () => checkpointMergeError(`${path}: unexpected end of file in tensor ${tensor}`));
  return buf;
}

function sameBytes(list: readonly Uint8Array[], infos: readonly TensorInfo[]): boolean {
  const a = Buffer.from(list[0]!.buffer, list[0]!.byteOffset, list[0]!.byteLength);
  return list.every((b, k) => k === 0 || (infos[k]!.dtype === infos[0]!.dtype && a.equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))));
}

/** α of each tensor (block α where the spec names its block). */
function alphaOf(plan: CheckpointPlan, m: ResolvedCheckpointMethod, blocks: string | undefined): { of: (name: string) => number; report?: CheckpointMergeReport['blocks'] } {
  if (blocks === undefined) return { of: () => m.alpha };
  const named = parseCheckpointBlocks(plan.architecture, blocks);
  const ids = checkpointBlockIds(plan.architecture);
  const foreign = [...named.keys()].filter((id) => !ids.includes(id));
  if (foreign.length) throw blockWeightError(`${foreign.join(', ')} are not block ids of ${plan.architecture} checkpoints`);
  let unassigned = 0;
  const cache = new Map<string, number>();
  for (const t of plan.tensors) {
    const id = blockOfCheckpointTensor(plan.architecture, t.name);
    if (id === undefined) unassigned++;
    cache.set(t.name, id !== undefined && named.has(id) ? named.get(id)! : m.alpha);
  }
  const alpha = Object.fromEntries([...named].filter(([, a]) => a !== m.alpha));
  return { of: (name) => cache.get(name) ?? m.alpha, report: { alpha, unassigned } };
}

/** One merge in progress: the plan, the method, the output specs, the report, and the buffers reused tensor after tensor. */
interface MergeRun {
  plan: CheckpointPlan;
  m: ResolvedCheckpointMethod;
  models: number;
  specs: TensorSpec[];
  alpha: (name: string) => number;
  report: CheckpointMergeReport;
  /** Two output byte buffers: one being written while the other is filled. */
  outSlots: ArrayBuffer[];
  /** The task-vector methods' dense buffers (empty for the elementwise ones). */
  ws: TaskWorkspace;
  /** One decoded chunk per input, and the chunk result (elementwise methods, conversions). */
  chunks: Float32Array[];
  chunkOut: Float32Array;
  differingNonFloat: string[];
}

const valuesOf = (info: TensorInfo) => bytesOf(info) / dtypeBytes(info.dtype as DType);

/** Bytes of tensor i in its output dtype. */
function outBytes(run: MergeRun, t: PlannedTensor, i: number): number {
  return valuesOf(t.infos[0]!) * dtypeBytes(run.specs[i]!.dtype as DType);
}

function startRun(plan: CheckpointPlan, m: ResolvedCheckpointMethod, models: number, dtype: DType | 'keep', blocks: string | undefined): MergeRun {
  const alpha = alphaOf(plan, m, blocks);
  const params = checkpointMethodParams(m, blocks);
  const report: CheckpointMergeReport = {
    method: m.method, params, architecture: plan.architecture, out: '', tensors: plan.tensors.length, merged: 0, identical: 0, nonFloat: 0, converted: 0,
    ...(alpha.report ? { blocks: alpha.report } : {}), outOfRange: 0, nonFinite: [], bytes: 0, notes: [], seconds: 0,
  };
  const specs: TensorSpec[] = plan.tensors.map((t) => ({ name: t.name, shape: t.infos[0]!.shape, dtype: outputDtype(dtype, t.infos[0]!, t.float) }));
  const maxValues = Math.max(0, ...plan.tensors.map((t) => (t.float ? valuesOf(t.infos[0]!) : 0)));
  const run: MergeRun = {
    plan, m, models, specs, alpha: alpha.of, report, outSlots: [], ws: new TaskWorkspace(isTaskVectorMethod(m.method) ? maxValues : 0),
    chunks: plan.inputs.map(() => new Float32Array(Math.min(CHUNK, maxValues))), chunkOut: new Float32Array(Math.min(CHUNK, maxValues)), differingNonFloat: [],
  };
  const outCapacity = Math.max(0, ...plan.tensors.map((t, i) => (t.float ? outBytes(run, t, i) : 0)));
  run.outSlots.push(new ArrayBuffer(outCapacity), new ArrayBuffer(outCapacity));
  return run;
}

/** An identical float tensor in the output dtype: re-encoded chunk by chunk. */
function converted(run: MergeRun, t: PlannedTensor, i: number, raw: Uint8Array): Uint8Array {
  const a = t.infos[0]!;
  const outType = run.specs[i]!.dtype as DType;
  const bytes = new Uint8Array(run.outSlots[i % 2]!, 0, outBytes(run, t, i));
  const n = valuesOf(a);
  const size = dtypeBytes(a.dtype as DType);
  for (let j0 = 0; j0 < n; j0 += CHUNK) {
    const len = Math.min(CHUNK, n - j0);
    const v = decodeInto(raw.subarray(j0 * size, (j0 + len) * size), a.dtype as DType, run.chunkOut.subarray(0, len));
    run.report.outOfRange += countOutOfRange(v, outType);
    encodeInto(v, outType, bytes.subarray(j0 * dtypeBytes(outType), (j0 + len) * dtypeBytes(outType)));
  }
  return bytes;
}

/** A float tensor computed by the method: dense over task vectors, or elementwise chunk by chunk. */
function merged(run: MergeRun, t: PlannedTensor, i: number, raw: readonly Uint8Array[]): Uint8Array {
  const { m, models, report } = run;
  const outType = run.specs[i]!.dtype as DType;
  const bytes = new Uint8Array(run.outSlots[i % 2]!, 0, outBytes(run, t, i));
  const n = valuesOf(t.infos[0]!);
  const a0 = run.alpha(t.name);
  const decode = (k: number, j0: number, len: number, into: Float32Array) => {
    const info = t.infos[k]!;
    const size = dtypeBytes(info.dtype as DType);
    return decodeInto(raw[k]!.subarray(j0 * size, (j0 + len) * size), info.dtype as DType, into);
  };
  if (isTaskVectorMethod(m.method)) {
    const result = run.ws.f32('result', n);
    const base = decode(models, 0, n, run.ws.f32('base', n));
    taskVectorMerge(m, models, base, (k, into) => decode(k, 0, n, into), a0, checkpointModuleName(run.plan.architecture, t.name), run.ws, result);
    report.outOfRange += countOutOfRange(result, outType);
    encodeInto(result, outType, bytes);
  } else {
    const outSize = dtypeBytes(outType);
    for (let j0 = 0; j0 < n; j0 += CHUNK) {
      const len = Math.min(CHUNK, n - j0);
      const values = run.chunks.map((c, k) => decode(k, j0, len, c.subarray(0, len)));
      const o = run.chunkOut.subarray(0, len);
      elementwise(m, values, a0, o);
      report.outOfRange += countOutOfRange(o, outType);
      encodeInto(o, outType, bytes.subarray(j0 * outSize, (j0 + len) * outSize));
    }
  }
  const bad = countNonFiniteStored(bytes, outType);
  if (bad > 0) report.nonFinite.push({ tensor: t.name, count: bad });
  return bytes;
}

/** The output bytes of tensor i: copied (non-float, or identical where the method keeps identical inputs), converted, or merged. */
function outputOf(run: MergeRun, t: PlannedTensor, i: number, raw: readonly Uint8Array[]): Uint8Array {
  const { report } = run;
  if (!t.float) {
    if (!sameBytes(raw, t.infos)) run.differingNonFloat.push(t.name);
    report.nonFloat++;
    return raw[0]!;
  }
  if (sameBytes(raw, t.infos) && identityPreserving(run.m, run.models, run.alpha(t.name))) {
    report.identical++;
    if (run.specs[i]!.dtype === t.infos[0]!.dtype) return raw[0]!;
    report.converted++;
    return converted(run, t, i, raw[0]!);
  }
  report.merged++;
  return merged(run, t, i, raw);
}

/** Every tensor in order: tensor i+1 read while i is computed, i−1 written from the other buffer. */
async function streamTensors(run: MergeRun, handles: readonly FileHandle[], writer: SafetensorsWriter, ctx: OpContext | undefined): Promise<void> {
  const { plan } = run;
  const inputs = plan.inputs;
  const slots = inputs.map((_, k) => new InputSlots(Math.max(0, ...plan.tensors.map((t) => bytesOf(t.infos[k]!)))));
  const load = (i: number) =>
    Promise.all(inputs.map((input, k) => {
      const info = plan.tensors[i]!.infos[k]!;
      return readInto(handles[k]!, input.file.dataStart + info.begin, slots[k]!.view(i, bytesOf(info)), input.path, info.name);
    }));
  let next = plan.tensors.length ? load(0) : undefined;
  let writing: Promise<void> = Promise.resolve();
  try {
    for (const [i, t] of plan.tensors.entries()) {
      checkAborted(ctx);
      const raw = await next!;
      // the next tensor goes into the buffers of the previous one: its write must be done
      await writing;
      next = i + 1 < plan.tensors.length ? load(i + 1) : undefined;
      const bytes = outputOf(run, t, i, raw);
      writing = writer.write(t.name, bytes);
      run.report.bytes += bytes.byteLength;
      ctx?.onProgress?.(i + 1, plan.tensors.length, t.name);
    }
    await writing;
  } finally {
    await Promise.allSettled([next, writing]);
  }
}

/** The report's notes (and log lines) on what was copied, non-finite, saturated or outside every block. */
function noteOutcome(run: MergeRun, ctx: OpContext | undefined): void {
  const { report, differingNonFloat } = run;
  if (differingNonFloat.length) report.notes.push(`${differingNonFloat.length} non-float tensors differ between the inputs and were copied from A: ${differingNonFloat.slice(0, 8).join(', ')}${differingNonFloat.length > 8 ? ', …' : ''}`);
  for (const { tensor, count } of report.nonFinite.slice(0, 20)) ctx?.log?.(`output: tensor ${tensor}: ${count} non-finite value${count === 1 ? '' : 's'} (NaN/±Inf) written`);
  if (report.nonFinite.length) {
    const total = report.nonFinite.reduce((s, f) => s + f.count, 0);
    report.notes.push(`output: ${report.nonFinite.length} tensor${report.nonFinite.length === 1 ? '' : 's'} written with non-finite values (NaN/±Inf, ${total} in all): ${report.nonFinite.slice(0, 8).map((f) => `${f.tensor} (${f.count})`).join(', ')}${report.nonFinite.length > 8 ? ', …' : ''}`);
  }
  if (report.outOfRange) report.notes.push(`${report.outOfRange} values beyond the range of the output dtype (fp8 saturates them)`);
  if (report.blocks?.unassigned) report.notes.push(`${report.blocks.unassigned} tensors belong to no block and take the global alpha ${run.m.alpha}`);
}

export async function mergeCheckpoints(options: CheckpointMergeOptions): Promise<CheckpointMergeReport> {
  const started = performance.now();
  const { ctx } = options;
  const dtype = parseChoice(options.dtype);
  const models = options.models.length;
  const m = resolveCheckpointMethod(options, models, options.base !== undefined);
  const plan = await planCheckpointMerge(options.models, options.base, options.out);
  const handles: FileHandle[] = [];
  let writer: SafetensorsWriter | undefined;
  try {
    const run = startRun(plan, m, models, dtype, options.blocks);
    const { report } = run;
    report.out = options.out;
    const described = Object.entries(report.params).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(',') : String(v)}`).join(', ');
    ctx?.log?.(`${m.method} merge of ${models} ${plan.architecture} checkpoints${options.base ? ' relative to a base' : ''} (${described}), ${plan.tensors.length} tensors`);
    const metadata = {
      ...(plan.inputs[0]!.file.metadata ?? {}),
      ...options.metadata,
      loraflow: JSON.stringify({ operation: 'merge-checkpoints', method: m.method, ...report.params, models: options.models, ...(options.base ? { base: options.base } : {}), dtype }),
    };
    for (const i of plan.inputs) handles.push(await open(i.path, 'r'));
    writer = await SafetensorsWriter.create(options.out, run.specs, { metadata, order: 'given' });
    await streamTensors(run, handles, writer, ctx);
    checkAborted(ctx);
    await writer.commit();
    noteOutcome(run, ctx);
    report.seconds = (performance.now() - started) / 1000;
    ctx?.log?.(`merged ${report.merged} tensors, copied ${report.identical} identical and ${report.nonFloat} non-float ones in ${report.seconds.toFixed(1)} s`);
    return report;
  } catch (e) {
    await writer?.abort();
    throw e;
  } finally {
    await Promise.all(handles.map((h) => h.close()));
    await Promise.all(plan.inputs.map((i) => i.file.close()));
  }
}
