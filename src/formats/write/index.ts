/**
 * `writeLora(path, set, { format })`: the canonical AdapterSet → a kohya, diffusers or comfyui file,
 * streamed one tensor at a time through `writeSafetensors` (temporary file + rename, so a failed or
 * cancelled write leaves nothing behind).
 */
import { checkAborted, type OpContext } from '../../adapter/context.ts';
import { byteLength, writeSafetensors, type TensorEntry } from '../../safetensors/writer.ts';
import type { DType } from '../../tensor/dtype.ts';
import { countNonFiniteStored } from '../../tensor/finite.ts';
import type { AdapterSet } from '../../adapter/model.ts';
import { assertWritable } from '../detect.ts';
import { LoraFormatError } from '../../adapter/errors.ts';
import { planFused } from './fused.ts';
import { outputMetadata } from './metadata.ts';
import type { WriteFormat } from './names.ts';
import { planSplit } from './split.ts';

export interface WriteOptions {
  format: WriteFormat;
  /** Store every tensor in this dtype (default: keep each tensor's own). */
  dtype?: DType;
  /** Extra header metadata (overrides what is carried over). */
  metadata?: Record<string, string>;
  ctx?: OpContext;
  /** Recorded in the `loraflow` provenance entry (default `write`). */
  operation?: string;
}

export interface WriteReport {
  path: string;
  format: WriteFormat;
  tensors: number;
  modules: number;
  bytes: number;
  notes: string[];
  /** Written tensors holding NaN or ±Inf (an input let through with allowNonFinite, an overflow of the output dtype), by name. */
  nonFinite: NonFiniteTensor[];
}

/** A written tensor with non-finite values, and how many. */
export interface NonFiniteTensor {
  tensor: string;
  count: number;
}

/** The note and log line for tensors written with non-finite values. */
export function nonFiniteNote(found: readonly NonFiniteTensor[]): string {
  const total = found.reduce((s, f) => s + f.count, 0);
  const list = found.slice(0, 8).map((f) => `${f.tensor} (${f.count})`).join(', ');
  return `${found.length} tensor${found.length === 1 ? '' : 's'} written with non-finite values (NaN/±Inf, ${total} in all): ${list}${found.length > 8 ? `, and ${found.length - 8} more` : ''}`;
}

export async function writeLora(path: string, set: AdapterSet, opts: WriteOptions): Promise<WriteReport> {
  assertWritable(set, `writing a ${opts.format} LoRA`);
  checkAborted(opts.ctx);
  if (set.patches.length === 0) {
    // a LoRA file without modules changes nothing; writing one would hide that (a filter that kept nothing, …)
    throw new LoraFormatError('NO_MODULES', `${path}: nothing to write: this ${set.format} LoRA has no modules${set.notes.length ? ` (${set.notes.slice(0, 3).join('; ')})` : ''}`);
  }
  const plan = opts.format === 'diffusers' ? await planSplit(set, opts.dtype) : await planFused(set, opts.format, opts.dtype);
  const metadata = outputMetadata({
    set,
    format: opts.format,
    ranks: plan.ranks,
    alphas: plan.alphas,
    lycoris: set.patches.some((p) => p.adapter.kind === 'loha' || p.adapter.kind === 'lokr'),
    operation: opts.operation ?? 'write',
    extra: opts.metadata,
  });
  const total = plan.tensors.length;
  let done = 0;
  const nonFinite: NonFiniteTensor[] = [];
  const entries: TensorEntry[] = plan.tensors.map(({ name, tensor }) => ({
    name,
    dtype: tensor.dtype,
    shape: tensor.shape,
    data: async () => {
      checkAborted(opts.ctx);
      const bytes = await tensor.bytes();
      const count = countNonFiniteStored(bytes, tensor.dtype);
      if (count > 0) nonFinite.push({ tensor: name, count });
      opts.ctx?.onProgress?.(++done, total, name);
      return bytes;
    },
  }));
  await writeSafetensors(path, entries, { metadata, order: 'reference' });
  const bytes = entries.reduce((s, e) => s + byteLength(e), 0);
  const notes = [...plan.notes];
  if (nonFinite.length > 0) notes.push(nonFiniteNote(nonFinite));
  for (const n of notes) opts.ctx?.log?.(n);
  return { path, format: opts.format, tensors: total, modules: plan.modules, bytes, notes, nonFinite };
}

