/**
 * Merging LoRAs into a base checkpoint, streamed: each base tensor is read, decoded to f32, given
 * Σ wᵢ·ΔWᵢ, encoded once to the output dtype and written before the next is read, so memory holds
 * about one tensor whatever the model size. The output mirrors the base (same tensor order and
 * metadata). Everything is checked against the headers first; outputs appear only when every file
 * is complete (temporary files renamed at the end), so a failure or a cancel leaves nothing.
 */
import { SafetensorsWriter, type TensorSpec } from '../safetensors/writer.ts';
import type { TensorInfo } from '../safetensors/reader.ts';
import type { AdapterSet } from '../formats/model.ts';
import { activeBackend, useBackend } from '../tensor/backend.ts';
import { decodeToF32, encodeFromF32, isCodecDType, isFloatDType, parseDType, type DType } from '../tensor/dtype.ts';
import { planApply, ApplyError, type FilePlan } from './apply-plan.ts';
import { patchWeight } from './apply-tensor.ts';
import { checkAborted, type OpContext } from './context.ts';
import { encodeFp8, encodeFp8Stochastic, isFp8 } from './fp8-round.ts';
import { matrixOf } from './geometry.ts';
import { seedFromName } from './seed.ts';

export { ApplyError } from './apply-plan.ts';

export interface ApplyOptions {
  base: string;
  out: string;
  loras: readonly { set: AdapterSet; weight: number }[];
  /** Output dtype of floating-point tensors: 'keep' (each as in the base) or a dtype (user spellings accepted). */
  dtype?: 'keep' | DType | string;
  clipL?: { in: string; out: string };
  t5?: { in: string; out: string };
  /** Leave text-encoder patches out (reported) when no file is given for them. */
  ignoreTextEncoders?: boolean;
  /** fp8 outputs: round stochastically (seeded by the tensor key) instead of to nearest. */
  stochasticFp8?: boolean;
  /** Extra metadata for the outputs (over the base's own). */
  metadata?: Record<string, string>;
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
  bytes: number;
}

export interface ApplyReport {
  backend: string;
  files: ApplyFileReport[];
  /** Patches applied. */
  modules: number;
  omitted: string[];
  ignoredTextEncoders: string[];
  notes: string[];
  seconds: number;
}

/** Largest finite value per dtype, for counting what does not fit. */
const MAX_FINITE: Partial<Record<DType, number>> = { F16: 65504, F8_E4M3: 448, F8_E5M2: 57344 };

function outputDtype(choice: DType | 'keep', info: TensorInfo): DType | string {
  if (choice === 'keep' || !isCodecDType(info.dtype) || !isFloatDType(info.dtype)) return info.dtype;
  // Biases and norm scales are tiny and sensitive: fp8 is for the matrices (as every fp8 checkpoint does it).
  if (isFp8(choice) && info.shape.length < 2) return info.dtype;
  return choice;
}

function countBeyond(values: Float32Array, max: number | undefined): number {
  if (max === undefined) return 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]!);
    if (a > max && a !== Infinity) n++;
  }
  return n;
}

function encode(values: Float32Array, dtype: DType, key: string, stochastic: boolean): Uint8Array {
  if (isFp8(dtype)) return stochastic ? encodeFp8Stochastic(values, dtype, seedFromName(key)) : encodeFp8(values, dtype);
  return encodeFromF32(values, dtype);
}

function parseChoice(dtype: ApplyOptions['dtype']): DType | 'keep' {
  if (dtype === undefined || dtype === 'keep') return 'keep';
  return isCodecDType(dtype) ? dtype : parseDType(dtype);
}

export async function applyToBase(options: ApplyOptions): Promise<ApplyReport> {
  const started = performance.now();
  const { ctx } = options;
  const dtype = parseChoice(options.dtype);
  if (dtype !== 'keep' && !isFloatDType(dtype)) throw new ApplyError(`output dtype ${dtype} is not a floating-point dtype`);
  const plan = await planApply(options);
  const backend = activeBackend() === 'none' ? await useBackend() : activeBackend();
  const report: ApplyReport = {
    backend, files: [], modules: 0, omitted: plan.omitted, ignoredTextEncoders: plan.ignored, notes: [], seconds: 0,
  };
  const log = ctx?.log;
  log?.(`apply ${options.loras.length} LoRA${options.loras.length === 1 ? '' : 's'} to ${plan.files.map((f) => f.in).join(', ')} on the ${backend} backend`);
  if (plan.ignored.length) report.notes.push(`${plan.ignored.length} text-encoder modules left out (ignoreTextEncoders): ${plan.ignored.slice(0, 5).join('; ')}${plan.ignored.length > 5 ? '; …' : ''}`);
  if (plan.omitted.length) report.notes.push(`${plan.omitted.length} modules of LoRAs with weight 0 left out`);

  const total = plan.files.reduce((s, f) => s + f.file.tensors.length, 0);
  let done = 0;
  const writers: SafetensorsWriter[] = [];
  try {
    for (const file of plan.files) {
      const specs: TensorSpec[] = file.file.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: outputDtype(dtype, t) }));
      const metadata = {
        ...(file.file.metadata ?? {}),
        ...options.metadata,
        loraflow: JSON.stringify({
          operation: 'apply',
          loras: options.loras.map(({ set, weight }) => ({ format: set.format, weight, ...('path' in set ? { path: String(set.path) } : {}) })),
          dtype,
        }),
      };
      const writer = await SafetensorsWriter.create(file.out, specs, { metadata, order: 'given' });
      writers.push(writer);
      const fr: ApplyFileReport = { role: file.role, in: file.in, out: file.out, tensors: specs.length, patched: 0, converted: 0, copied: 0, keptPrecision: 0, outOfRange: 0, bytes: 0 };
      for (const [i, info] of file.file.tensors.entries()) {
        checkAborted(ctx);
        const out = specs[i]!.dtype as DType;
        if (dtype !== 'keep' && out !== dtype && out === info.dtype && isCodecDType(info.dtype) && isFloatDType(info.dtype)) fr.keptPrecision++;
        const planned = file.byKey.get(info.name);
        let bytes: Uint8Array;
        if (planned) {
          const w = await file.file.readF32(info.name);
          await patchWeight(w, matrixOf(info.shape).cols, planned);
          fr.outOfRange += countBeyond(w, MAX_FINITE[out]);
          bytes = encode(w, out, info.name, Boolean(options.stochasticFp8));
          fr.patched++;
          report.modules += planned.length;
        } else if (out === info.dtype) {
          bytes = await file.file.readBytes(info.name);
          fr.copied++;
        } else {
          const values = decodeToF32(await file.file.readBytes(info.name), info.dtype as DType);
          fr.outOfRange += countBeyond(values, MAX_FINITE[out]);
          bytes = encode(values, out, info.name, Boolean(options.stochasticFp8));
          fr.converted++;
        }
        await writer.write(info.name, bytes);
        fr.bytes += bytes.byteLength;
        ctx?.onProgress?.(++done, total, info.name);
      }
      report.files.push(fr);
      if (fr.outOfRange) log?.(`${file.out}: ${fr.outOfRange} values beyond the range of the output dtype (fp8 saturates them)`);
      if (fr.keptPrecision) report.notes.push(`${file.out}: ${fr.keptPrecision} 1-D tensors (biases, norm scales) kept at their own precision instead of ${dtype}`);
    }
    checkAborted(ctx);
    for (const w of writers) await w.commit();
  } catch (e) {
    await Promise.all(writers.map((w) => w.abort()));
    throw e;
  } finally {
    await Promise.all(plan.files.map((f) => f.file.close()));
  }
  report.seconds = (performance.now() - started) / 1000;
  log?.(`applied ${report.modules} patches to ${report.files.reduce((s, f) => s + f.patched, 0)} weights in ${report.seconds.toFixed(1)} s`);
  return report;
}
