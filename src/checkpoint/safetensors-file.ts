/**
 * The single safetensors file as a form: the header validated once (src/safetensors/reader.ts),
 * tensor bytes and row ranges read with positional reads into the caller's buffers (apply's
 * pipeline reuses a ring of them), and the streaming writer (staged, renamed on commit).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { SafetensorsFile } from '../safetensors/reader.ts';
import { SafetensorsWriter } from '../safetensors/writer.ts';
import { CheckpointError } from './errors.ts';
import type { CheckpointReader, CheckpointWriter, OutputSpec, StoredTensor } from './form.ts';

interface Located extends StoredTensor {
  /** Absolute file position of the first byte. */
  position: number;
}

/** Bytes per row of a stored tensor (rows over the first dimension), checked against the request. */
export function rowRange(path: string, t: StoredTensor, rowStart: number | undefined, rows: number | undefined): { offset: number; length: number } {
  if (rowStart === undefined && rows === undefined) return { offset: 0, length: t.byteLength };
  const total = t.shape[0] ?? 1;
  const start = rowStart ?? 0;
  const count = rows ?? total - start;
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > total || (t.byteLength % Math.max(1, total)) !== 0) {
    throw new RangeError(`${path}: tensor "${t.name}": rows [${start}, ${start + count}) are not a row range of [${t.shape}] ${t.dtype}`);
  }
  const per = total === 0 ? 0 : t.byteLength / total;
  return { offset: start * per, length: count * per };
}

/** Fills `buf` from `position` with positional reads (one read is capped near 2 GB). */
export async function readFully(handle: FileHandle, buf: Uint8Array, position: number, path: string, tensor: string): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await handle.read(buf, done, Math.min(1 << 30, buf.byteLength - done), position + done);
    if (bytesRead === 0) throw new CheckpointError('TRUNCATED', path, `unexpected end of file at byte ${position + done} (the file shrank?)`, tensor);
    done += bytesRead;
  }
}

export class SafetensorsReader implements CheckpointReader {
  readonly container = 'safetensors' as const;
  readonly tensors: readonly Located[];
  private readonly byName: Map<string, Located>;
  private handle: FileHandle | undefined;

  private constructor(
    readonly path: string,
    /** The validated header (its own handle, closed with this reader). */
    readonly file: SafetensorsFile,
  ) {
    this.tensors = file.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, byteLength: t.end - t.begin, position: file.dataStart + t.begin }));
    this.byName = new Map(this.tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<SafetensorsReader> {
    return new SafetensorsReader(path, await SafetensorsFile.open(path));
  }

  get metadata(): Readonly<Record<string, string>> | undefined {
    return this.file.metadata;
  }

  get fileSize(): number {
    return this.file.fileSize;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): StoredTensor {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError('NO_SUCH_TENSOR', this.path, 'no tensor of this name in the file', name);
    return t;
  }

  fileOf(): string {
    return this.path;
  }

  async read(name: string, into?: Uint8Array, rowStart?: number, rows?: number): Promise<Uint8Array> {
    const t = this.info(name) as Located;
    const { offset, length } = rowRange(this.path, t, rowStart, rows);
    const buf = into ?? new Uint8Array(length);
    if (buf.byteLength !== length) throw new RangeError(`${this.path}: tensor "${name}": ${length} bytes to read into a buffer of ${buf.byteLength}`);
    this.handle ??= await open(this.path, 'r');
    await readFully(this.handle, buf, t.position + offset, this.path, name);
    return buf;
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    await this.file.close();
  }
}

/** A safetensors output in the given tensor order (round trips keep the input's), metadata first. */
export class SafetensorsOutput implements CheckpointWriter {
  private constructor(private readonly writer: SafetensorsWriter) {}

  static async create(path: string, specs: readonly OutputSpec[], metadata: Record<string, string> | undefined): Promise<SafetensorsOutput> {
    return new SafetensorsOutput(await SafetensorsWriter.create(path, specs, { metadata, order: 'given' }));
  }

  get path(): string {
    return this.writer.path;
  }

  get order(): readonly OutputSpec[] {
    return this.writer.order;
  }

  write(name: string, bytes: Uint8Array): Promise<void> {
    return this.writer.write(name, bytes);
  }

  commit(): Promise<void> {
    return this.writer.commit();
  }

  abort(): Promise<void> {
    return this.writer.abort();
  }
}
