import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DTYPE_BITS, REFERENCE_DTYPE_ORDER } from '../tensor/dtype.ts';
import { SafetensorsError } from './errors.ts';

export interface TensorSpec {
  name: string;
  dtype: string;
  shape: readonly number[];
}

/**
 * `reference`: the order the official writer uses (larger dtypes first, then by name), so files we
 * write hash like files written by Python. `given`: exactly the order passed in (round trips).
 */
export type TensorOrder = 'reference' | 'given';

export interface WriterOptions {
  metadata?: Record<string, string>;
  order?: TensorOrder;
}

export function byteLength(spec: TensorSpec): number {
  return (spec.shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[spec.dtype]!) / 8;
}

export function orderTensors<T extends TensorSpec>(specs: readonly T[], order: TensorOrder): T[] {
  if (order === 'given') return [...specs];
  const rank = (d: string) => REFERENCE_DTYPE_ORDER.indexOf(d);
  return [...specs].sort((a, b) => rank(b.dtype) - rank(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Header bytes (JSON padded with spaces to a multiple of 8) for tensors laid out in `ordered` order. */
export function buildHeader(ordered: readonly TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of ordered) {
    const size = byteLength(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

/**
 * Streams a safetensors file: the header is written first from the declared shapes, then each
 * tensor as it is produced, so only one tensor needs to be in memory. Everything goes to a
 * temporary file beside the destination, renamed over it only by `commit()`; `abort()` (or any
 * failed write) removes the temporary file and leaves an existing output untouched.
 */
export class SafetensorsWriter {
  private next = 0;
  private position: number;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly tmpPath: string,
    private readonly handle: FileHandle,
    /** Tensors in the order they must be written. */
    readonly order: readonly TensorSpec[],
    headerLength: number,
  ) {
    this.position = headerLength;
  }

  static async create(path: string, specs: readonly TensorSpec[], options: WriterOptions = {}): Promise<SafetensorsWriter> {
    const names = new Set<string>();
    for (const s of specs) {
      if (names.has(s.name)) throw new SafetensorsError('DUPLICATE_NAME', path, 'two tensors with the same name', s.name);
      names.add(s.name);
      if (!Object.hasOwn(DTYPE_BITS, s.dtype)) throw new SafetensorsError('UNKNOWN_DTYPE', path, `unknown dtype "${s.dtype}"`, s.name);
    }
    const ordered = orderTensors(specs, options.order ?? 'reference');
    const header = buildHeader(ordered, options.metadata);
    const tmpPath = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
    let handle: FileHandle;
    try {
      handle = await open(tmpPath, 'wx');
    } catch (e) {
      throw new SafetensorsError('WRITE_FAILED', path, `cannot create output (${(e as Error).message})`);
    }
    const writer = new SafetensorsWriter(path, tmpPath, handle, ordered, 8 + header.byteLength);
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    await writer.guard(async () => {
      await handle.write(len, 0, 8, 0);
      await handle.write(header, 0, header.byteLength, 8);
    });
    return writer;
  }

  /** The tensor expected next, or undefined when all are written. */
  get pending(): TensorSpec | undefined {
    return this.order[this.next];
  }

  async write(name: string, bytes: Uint8Array): Promise<void> {
    const spec = this.order[this.next];
    if (!spec || spec.name !== name) {
      await this.abort();
      throw new SafetensorsError('WRITE_FAILED', this.path, `tensors must be written in header order; expected "${spec?.name ?? '(none)'}"`, name);
    }
    if (bytes.byteLength !== byteLength(spec)) {
      await this.abort();
      throw new SafetensorsError('WRITE_FAILED', this.path, `got ${bytes.byteLength} bytes for shape [${spec.shape}] ${spec.dtype}, which needs ${byteLength(spec)}`, name);
    }
    await this.guard(async () => {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await this.handle.write(bytes, done, Math.min(1 << 30, bytes.byteLength - done), this.position + done);
        done += bytesWritten;
      }
    }, name);
    this.position += bytes.byteLength;
    this.next++;
  }

  /** Flushes, closes and renames the finished file into place. */
  async commit(): Promise<void> {
    if (this.next !== this.order.length) {
      const missing = this.order[this.next]!.name;
      await this.abort();
      throw new SafetensorsError('WRITE_FAILED', this.path, `commit before every tensor was written`, missing);
    }
    await this.guard(async () => {
      await this.handle.sync();
      await this.handle.close();
      this.closed = true;
      await rename(this.tmpPath, this.path);
    });
  }

  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await rm(this.tmpPath, { force: true });
  }

  private async guard(fn: () => Promise<void>, tensor?: string): Promise<void> {
    try {
      await fn();
    } catch (e) {
      await this.abort();
      if (e instanceof SafetensorsError) throw e;
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOSPC' ? 'disk full' : err.message;
      throw new SafetensorsError('WRITE_FAILED', this.path, `write failed: ${why}; no output was left behind`, tensor);
    }
  }
}

export interface TensorEntry extends TensorSpec {
  /** The stored bytes, or a function producing them when their turn comes (keeps memory to one tensor). */
  data: Uint8Array | (() => Promise<Uint8Array>);
}

/** Writes a whole file from entries whose data may be produced lazily, one at a time. */
export async function writeSafetensors(path: string, entries: readonly TensorEntry[], options: WriterOptions = {}): Promise<void> {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const writer = await SafetensorsWriter.create(path, entries, options);
  try {
    for (const spec of writer.order) {
      const entry = byName.get(spec.name)!;
      const bytes = typeof entry.data === 'function' ? await entry.data() : entry.data;
      await writer.write(spec.name, bytes);
    }
    await writer.commit();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}
