/**
 * `convertLora(in, out, { to })`: read any layout, write a writable one. The input is never
 * modified (writing over it is refused) and keys the reader could not place are reported by name.
 */
import { fileIdentity } from '../file-identity.ts';
import type { OpContext } from '../adapter/context.ts';
import type { DType } from '../tensor/dtype.ts';
import { LoraFormatError } from '../adapter/errors.ts';
import { openLora } from './read.ts';
import { assertWritable } from './detect.ts';
import { writeLora } from './write/index.ts';
import type { WriteFormat } from './write/names.ts';

export interface ConvertOptions {
  to: WriteFormat;
  dtype?: DType;
  ctx?: OpContext;
  metadata?: Record<string, string>;
}

export interface ConvertReport {
  input: string;
  output: string;
  from: string;
  to: WriteFormat;
  architecture: string;
  /** Patches read from the input. */
  modulesRead: number;
  /** Modules and tensors in the output. */
  modules: number;
  tensorsWritten: number;
  bytesWritten: number;
  /** Input keys that are not in the output because nothing could place them. */
  unknownKeys: string[];
  notes: string[];
}

export async function convertLora(inPath: string, outPath: string, opts: ConvertOptions): Promise<ConvertReport> {
  if (fileIdentity(inPath, 'input') === fileIdentity(outPath, 'output')) {
    throw new LoraFormatError('SAME_PATH', `${outPath}: the output would overwrite the input; choose another output path`);
  }
  const file = await openLora(inPath);
  const { set } = file;
  try {
    // refused here first, so the message names the input file
    assertWritable({ ...set, path: inPath }, `writing a ${opts.to} LoRA`);
    const written = await writeLora(outPath, set, { format: opts.to, dtype: opts.dtype, ctx: opts.ctx, metadata: opts.metadata, operation: 'convert' });
    const notes = [...set.notes, ...written.notes];
    if (set.unknownKeys.length > 0) {
      const msg = `${set.unknownKeys.length} input keys could not be placed and are not in the output: ${set.unknownKeys.slice(0, 5).join(', ')}${set.unknownKeys.length > 5 ? ', …' : ''}`;
      notes.push(msg);
      opts.ctx?.log?.(msg);
    }
    return {
      input: inPath,
      output: outPath,
      from: set.format,
      to: opts.to,
      architecture: set.architecture,
      modulesRead: set.patches.length,
      modules: written.modules,
      tensorsWritten: written.tensors,
      bytesWritten: written.bytes,
      unknownKeys: set.unknownKeys,
      notes,
    };
  } finally {
    await file.close();
  }
}
