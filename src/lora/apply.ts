/**
 * Merging LoRAs into a base checkpoint, streamed: each base tensor gets Σ wᵢ·ΔWᵢ (computed in f32,
 * ΔW from the LoRA factors on the compute backend) and is encoded once to the output dtype, one
 * tensor at a time with reading and writing overlapped (apply-stream.ts), so memory is bounded by
 * the largest tensor, not the model. The output mirrors the base (same tensor order and metadata)
 * in the base's form (single file, diffusers folder, GGUF, scaled fp8: src/checkpoint) unless
 * `format` / `layout` / `dtype` say otherwise. Everything is checked against the headers first
 * (apply-plan.ts); outputs appear only when every file is complete (temporary files renamed at the
 * end), so a failure or a cancel leaves nothing.
 */
import type { CheckpointWriter } from '../checkpoint/form.ts';
import { isPlain } from '../checkpoint/encoding.ts';
import { planOutput, type FormatChoice, type LayoutChoice, type OutputPlan } from '../checkpoint/output-plan.ts';
import { ensureBackend } from '../tensor/backend.ts';
import { isCodecDType, isFloatDType, parseDType, type DType } from '../tensor/dtype.ts';
import { planApply, applyError, type ApplyLora, type FilePlan, type PlannedPatch } from './apply-plan.ts';
import { outputPatches } from './apply-layout.ts';
import { streamFile } from './apply-stream.ts';
import { checkAborted, type OpContext } from '../adapter/context.ts';
import { ComputePool, defaultThreads } from './compute-pool.ts';
import { lorasForMethod, type ApplyMethodOptions, type MethodParams } from './merge-methods.ts';
import type { TensorChange } from './change-norms.ts';


/** method (default linear: W + Σ wᵢ·ΔWᵢ) with density / drop / seed: see merge-methods.ts. */
export interface ApplyOptions extends Omit<ApplyMethodOptions, 'ctx'> {
  base: string;
  out: string;
  loras: readonly ApplyLora[];
  /** Output dtype of floating-point tensors: 'keep' (each as in the base) or a dtype (user spellings accepted). */
  dtype?: 'keep' | DType | string;
  clipL?: { in: string; out: string };
  t5?: { in: string; out: string };
  /** Leave text-encoder patches out (reported) when no file is given for them. */
  ignoreTextEncoders?: boolean;
  /** fp8 outputs: round stochastically (seeded by the tensor key) instead of to nearest. */
  stochasticFp8?: boolean;
  /** Worker threads for the per-tensor math beside the calling thread (default: cores − 1, at most 6, on CPU backends for inputs of 256 MiB or more, else none; 0 = inline). */
  threads?: number;
  /** Extra metadata for the outputs (over the base's own). */
  metadata?: Record<string, string>;
  /** The base output's container: keep (the base's), safetensors (one file), diffusers (a model folder), gguf (a GGUF base's quant types). */
  format?: FormatChoice;
  /** The base output's key names: keep, original (BFL/LDM/ComfyUI names, fused q/k/v), diffusers. */
  layout?: LayoutChoice;
  /** Largest shard of a newly cut diffusers folder (bytes; default 10 GB, as diffusers). */
  shardBytes?: number;
  ctx?: OpContext;
}

export interface ApplyFileReport {
  role: FilePlan['role'];
  in: string;
  out: string;
  tensors: number;
  /** Tensors a patch changed. */
  patched: number;
  /** Unpatched tensors re-encoded to another dtype. */
  converted: number;
  /** Unpatched tensors copied byte for byte. */
  copied: number;
  /** 1-D tensors (biases, norm scales) kept at their precision when the output dtype is fp8. */
  keptPrecision: number;
  /** Values beyond the output dtype's largest finite value (fp8: written saturated; F16: Inf). */
  outOfRange: number;
  /**
   * Written tensors holding NaN or ±Inf, by name, with how many: an F16 overflow to Inf, NaN from
   * inf − inf, a LoRA's NaN let through with allowNonFinite (fp8 saturates, so never from overflow).
   */
  nonFinite: { tensor: string; count: number }[];
  bytes: number;
  /** Per patched tensor: ‖W‖_F of the base and ‖ΔW‖_F of the change (collected while streaming). */
  changes: TensorChange[];
}

export interface ApplyReport {
  backend: string;
  /** Worker threads the math ran on (0: inline on the calling thread). */
  threads: number;
  files: ApplyFileReport[];
  /** Patches applied. */
  modules: number;
  omitted: string[];
  ignoredTextEncoders: string[];
  notes: string[];
  seconds: number;
}

/** Inputs smaller than this run inline by default (the pool's start-up would dominate). */
const POOL_MIN_BYTES = 256 * 2 ** 20;

function parseChoice(dtype: ApplyOptions['dtype']): DType | 'keep' {
  if (dtype === undefined || dtype === 'keep') return 'keep';
  return isCodecDType(dtype) ? dtype : parseDType(dtype);
}

type OutputsByFile = Map<FilePlan, { output: OutputPlan; patches: Map<string, PlannedPatch[]> }>;

/** Every output's form and every patch's place in it, before anything is written (the inputs closed on failure). */
async function planOutputs(plan: Awaited<ReturnType<typeof planApply>>, options: ApplyOptions, dtype: DType | 'keep', report: ApplyReport): Promise<OutputsByFile> {
  const outputs: OutputsByFile = new Map();
  try {
    for (const file of plan.files) {
      const base = file.role === 'base';
      const output = planOutput(file.file, { format: base ? options.format : 'keep', layout: base ? options.layout : 'keep', dtype, shardBytes: options.shardBytes }, new Set(file.byKey.keys()));
      const patches = new Map<string, PlannedPatch[]>();
      for (const t of output.tensors) {
        const list = t.kind === 'values' ? outputPatches(t, file.byKey) : undefined;
        if (list) patches.set(t.name, list);
      }
      outputs.set(file, { output, patches });
      report.notes.push(...output.notes.map((n) => `${file.role} output: ${n}`));
    }
  } catch (e) {
    await Promise.all(plan.files.map((f) => f.file.close()));
    throw e;
  }
  return outputs;
}

/** Over the base's own metadata: what the apply did; an apply without LoRAs (a change of form) adds no provenance of its own. */
function provenanceMetadata(options: ApplyOptions, dtype: DType | 'keep', params: MethodParams | undefined): Record<string, string> {
  const metadata: Record<string, string> = { ...options.metadata };
  if (options.loras.length === 0) return metadata;
  metadata.loraflow = JSON.stringify({
    operation: 'apply',
    loras: options.loras.map(({ set, weight, path }) => ({ format: set.format, weight, ...(path ? { path } : {}) })),
    dtype,
    ...(params ? { method: { name: options.method, ...params } } : {}),
  });
  return metadata;
}

/** Log lines and notes on one written file: values out of range, non-finite tensors, 1-D tensors kept at their precision. */
function noteFileOutcome(report: ApplyReport, file: FilePlan, counts: { outOfRange: number; nonFinite: { tensor: string; count: number }[] }, keptPrecision: number, dtype: DType | 'keep', log: ((m: string) => void) | undefined): void {
  if (counts.outOfRange) log?.(`${file.out}: ${counts.outOfRange} values beyond the range of the output dtype (fp8 saturates them)`);
  // the output path may be a staging name here: the role says which file
  const where = `${file.role} output`;
  for (const { tensor, count } of counts.nonFinite.slice(0, 20)) log?.(`${where}: tensor ${tensor}: ${count} non-finite value${count === 1 ? '' : 's'} (NaN/±Inf) written`);
  if (counts.nonFinite.length > 20) log?.(`${where}: and ${counts.nonFinite.length - 20} more tensors with non-finite values`);
  if (counts.nonFinite.length) {
    const total = counts.nonFinite.reduce((s, f) => s + f.count, 0);
    report.notes.push(`${where}: ${counts.nonFinite.length} tensor${counts.nonFinite.length === 1 ? '' : 's'} written with non-finite values (NaN/±Inf, ${total} in all): ${counts.nonFinite.slice(0, 8).map((f) => `${f.tensor} (${f.count})`).join(', ')}${counts.nonFinite.length > 8 ? ', …' : ''}`);
  }
  if (keptPrecision) report.notes.push(`${file.out}: ${keptPrecision} 1-D tensors (biases, norm scales) kept at their own precision instead of ${dtype}`);
}

export async function applyToBase(options: ApplyOptions): Promise<ApplyReport> {
  const started = performance.now();
  const { ctx } = options;
  const dtype = parseChoice(options.dtype);
  if (dtype !== 'keep' && !isFloatDType(dtype)) throw applyError(`output dtype ${dtype} is not a floating-point dtype`);
  const byMethod = await lorasForMethod(options.loras, options);
  const plan = await planApply({ ...options, loras: byMethod.loras });
  const backend = await ensureBackend();
  const report: ApplyReport = {
    backend, threads: 0, files: [], modules: 0, omitted: [...plan.omitted, ...byMethod.omitted], ignoredTextEncoders: plan.ignored, notes: [...byMethod.notes], seconds: 0,
  };
  const log = ctx?.log;
  log?.(`apply ${options.loras.length} LoRA${options.loras.length === 1 ? '' : 's'} to ${plan.files.map((f) => f.in).join(', ')} on the ${backend} backend`);
  if (plan.ignored.length) report.notes.push(`${plan.ignored.length} text-encoder modules left out (ignoreTextEncoders): ${plan.ignored.slice(0, 5).join('; ')}${plan.ignored.length > 5 ? '; …' : ''}`);
  if (report.omitted.length) report.notes.push(`${report.omitted.length} modules of LoRAs with weight 0 left out`);

  const outputs = await planOutputs(plan, options, dtype, report);
  const total = [...outputs.values()].reduce((s, o) => s + o.output.tensors.length, 0);
  let done = 0;
  const writers: CheckpointWriter[] = [];
  // Starting workers costs a second or two (each loads its backend): worth it for real checkpoints only.
  const totalBytes = plan.files.reduce((s, f) => s + f.file.fileSize, 0);
  const threads = options.threads ?? (totalBytes < POOL_MIN_BYTES ? 0 : defaultThreads(backend));
  let pool: ComputePool | undefined;
  try {
    pool = await ComputePool.start(threads, backend);
    report.threads = threads;
    if (threads) log?.(`computing on ${threads} worker threads`);
    for (const file of plan.files) {
      const { output, patches } = outputs.get(file)!;
      const metadata = provenanceMetadata(options, dtype, byMethod.params);
      const writer = await output.create(file.out, metadata);
      writers.push(writer);
      const counts = await streamFile(file, output, writer, {
        pool,
        patches,
        stochasticFp8: Boolean(options.stochasticFp8),
        ctx,
        onTensor: (name) => ctx?.onProgress?.(++done, total, name),
      });
      const keptPrecision = dtype === 'keep' ? 0 : output.tensors.filter((t) => t.kind === 'values' && t.dtype !== dtype && isPlain(t.inDtype) && isFloatDType(t.inDtype)).length;
      // patches as planned on the base weights (one split over a weight's diffusers parts counts once)
      const { modules: _placed, ...fileCounts } = counts;
      report.modules += [...file.byKey.values()].reduce((n, list) => n + list.length, 0);
      report.files.push({ role: file.role, in: file.in, out: file.out, tensors: output.tensors.length, keptPrecision, ...fileCounts });
      noteFileOutcome(report, file, counts, keptPrecision, dtype, log);
    }
    checkAborted(ctx);
    for (const w of writers) await w.commit();
  } catch (e) {
    await Promise.all(writers.map((w) => w.abort()));
    throw e;
  } finally {
    await pool?.close();
    await Promise.all(plan.files.map((f) => f.file.close()));
  }
  report.seconds = (performance.now() - started) / 1000;
  log?.(`applied ${report.modules} patches to ${report.files.reduce((s, f) => s + f.patched, 0)} weights in ${report.seconds.toFixed(1)} s`);
  return report;
}
