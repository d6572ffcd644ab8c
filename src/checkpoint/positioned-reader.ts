/**
 * What the single-file readers share: tensors listed with their absolute file positions, looked
 * up by name, and their bytes (or a row range) read by position through one handle opened on the
 * first read.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { fillBuffer } from '../file-read.ts';
import { CheckpointError } from './errors.ts';
import type { StoredTensor } from './form.ts';

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

/** Fills `buf` from `position`; the file ending first is TRUNCATED. */
export function readFully(handle: FileHandle, buf: Uint8Array, position: number, path: string, tensor: string): Promise<void> {
  return fillBuffer(handle, buf, position, (at) => new CheckpointError('TRUNCATED', path, `unexpected end of file at byte ${at} (the file shrank?)`, tensor));
}

export interface Located extends StoredTensor {
  /** Absolute file position of the first byte. */
  position: number;
}

export abstract class PositionedReader<T extends Located> {
  private readonly byName: Map<string, T>;
  private handle: FileHandle | undefined;

  protected constructor(
    readonly path: string,
    readonly tensors: readonly T[],
  ) {
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): T {
    const t = this.byName.get(name);
    if (!t) throw new CheckpointError('NO_SUCH_TENSOR', this.path, 'no tensor of this name in the file', name);
    return t;
  }

  fileOf(): string {
    return this.path;
  }

  async read(name: string, into?: Uint8Array, rowStart?: number, rows?: number): Promise<Uint8Array> {
    const t = this.info(name);
    const { offset, length } = rowRange(this.path, t, rowStart, rows);
    const buf = into ?? new Uint8Array(length);
    if (buf.byteLength !== length) throw new RangeError(`${this.path}: tensor "${name}": ${length} bytes to read into a buffer of ${buf.byteLength}`);
    this.handle ??= await open(this.path, 'r');
    await readFully(this.handle, buf, t.position + offset, this.path, name);
    return buf;
  }

  /** Closes the read handle (the subclass closes its own header file). */
  protected async closeHandle(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}
