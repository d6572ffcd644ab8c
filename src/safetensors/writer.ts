import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DTYPE_BITS, REFERENCE_DTYPE_ORDER, dtypeBytes, encodeInto, isCodecDType } from '../tensor/dtype.ts';
import { SafetensorsError } from './errors.ts';
import { SCRATCH_BYTES, giveScratch, takeScratch } from './scratch.ts';
import { openSink, type Sink } from './sink.ts';
import { stagingPathFor, staged, sweepStaleStaging } from './staging.ts';

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
  /** false: write through the page cache even where direct I/O is available (see sink.ts). */
  direct?: boolean;
}

export function byteLength(spec: TensorSpec): number {
  return (spec.shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[spec.dtype]!) / 8;
}

export function orderTensors<T extends TensorSpec>(specs: readonly T[], order: TensorOrder): T[] {
  if (order === 'given') return [...specs];
  const rank = (d: string) => REFERENCE_DTYPE_ORDER.indexOf(d);
  return [...specs].sort((a, b) => rank(b.dtype) - rank(a.dtype) || compareUtf8(a.name, b.name));
}

/** Rust compares `String`s by their UTF-8 bytes, which is code point order (not UTF-16 unit order). */
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const x = a[Symbol.iterator]();
  const y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next();
    const q = y.next();
    if (p.done || q.done) return p.done ? (q.done ? 0 : -1) : 1;
    const d = p.value.codePointAt(0)! - q.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * Header bytes (JSON padded with spaces to a multiple of 8) for tensors laid out in `ordered` order.
 * The JSON is assembled member by member so keys keep this order whatever they look like (a JS
 * object would hoist integer-like names and swallow `__proto__`). Metadata, when given (even
 * empty), comes first, as the reference writer does.
 */
export function buildHeader(ordered: readonly TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  const members: string[] = [];
  if (metadata !== undefined) {
    const meta = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    members.push(`"__metadata__":{${meta.join(',')}}`);
  }
  let offset = 0;
  for (const t of ordered) {
    const size = byteLength(t);
    members.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] })}`);
    offset += size;
  }
  const json = new TextEncoder().encode(`{${members.join(',')}}`);
  const padded = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20);
  padded.set(json);
  return padded;
}

/** Refuses specs the reader would reject, before anything is written. */
function validateSpecs(path: string, specs: readonly TensorSpec[]): void {
  const names = new Set<string>();
  for (const s of specs) {
    if (s.name === '__metadata__') throw new SafetensorsError('BAD_ENTRY', path, '"__metadata__" is reserved for the metadata and cannot name a tensor', s.name);
    if (names.has(s.name)) throw new SafetensorsError('DUPLICATE_NAME', path, 'two tensors with the same name', s.name);
    names.add(s.name);
    if (!Object.hasOwn(DTYPE_BITS, s.dtype)) throw new SafetensorsError('UNKNOWN_DTYPE', path, `unknown dtype "${s.dtype}"`, s.name);
    if (!Array.isArray(s.shape) || !s.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError('BAD_SHAPE', path, `shape must be a list of non-negative integers, got ${JSON.stringify(s.shape)}`, s.name);
    }
    const bytes = byteLength(s);
    if (!Number.isSafeInteger(bytes)) {
      const code = Number.isSafeInteger(bytes * 8) ? 'MISALIGNED' : 'BAD_SHAPE';
      throw new SafetensorsError(code, path, `shape [${s.shape}] of ${s.dtype} is not a whole number of bytes (or too large)`, s.name);
    }
  }
}

/**
 * Streams a safetensors file: the header is written first from the declared shapes, then each
 * tensor as it is produced, so only one tensor needs to be in memory. Everything goes to a
 * temporary file beside the destination, renamed over it only by `commit()`; `abort()` (or any
 * failed write) removes the temporary file and leaves an existing output untouched.
 */
export class SafetensorsWriter {
  private next = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly tmpPath: string,
    private readonly sink: Sink,
    /** Tensors in the order they must be written. */
    readonly order: readonly TensorSpec[],
  ) {}

  static async create(path: string, specs: readonly TensorSpec[], options: WriterOptions = {}): Promise<SafetensorsWriter> {
    validateSpecs(path, specs);
    for (const [k, v] of Object.entries(options.metadata ?? {})) {
      if (typeof v !== 'string') throw new SafetensorsError('BAD_METADATA', path, `metadata value for "${k}" is ${typeof v}, but every value must be a string`);
    }
    const ordered = orderTensors(specs, options.order ?? 'reference');
    const header = buildHeader(ordered, options.metadata);
    await sweepStaleStaging(dirname(path));
    const tmpPath = stagingPathFor(path);
    let sink: Sink;
    try {
      sink = await openSink(tmpPath, { direct: options.direct });
    } catch (e) {
      await rm(tmpPath, { force: true });
      staged(tmpPath);
      throw new SafetensorsError('WRITE_FAILED', path, `cannot create output (${(e as Error).message})`);
    }
    const writer = new SafetensorsWriter(path, tmpPath, sink, ordered);
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    await writer.guard(async () => {
      await sink.append(len);
      await sink.append(header);
    });
    return writer;
  }

  /** Whether the file goes to the device directly (O_DIRECT) rather than through the page cache. */
  get direct(): boolean {
    return this.sink.direct;
  }

  /** The tensor expected next, or undefined when all are written. */
  get pending(): TensorSpec | undefined {
    return this.order[this.next];
  }

  /** Checks that `name` is the tensor due next and `bytes` its exact size; aborts the file otherwise. */
  private async checkNext(name: string, bytes: number): Promise<TensorSpec> {
    const spec = this.order[this.next];
    if (!spec || spec.name !== name) {
      await this.abort();
      throw new SafetensorsError('WRITE_FAILED', this.path, `tensors must be written in header order; expected "${spec?.name ?? '(none)'}"`, name);
    }
    if (bytes !== byteLength(spec)) {
      await this.abort();
      throw new SafetensorsError('WRITE_FAILED', this.path, `got ${bytes} bytes for shape [${spec.shape}] ${spec.dtype}, which needs ${byteLength(spec)}`, name);
    }
    return spec;
  }

  /** Writes the stored bytes of the tensor due next. */
  async write(name: string, bytes: Uint8Array): Promise<void> {
    await this.checkNext(name, bytes.byteLength);
    await this.guard(() => this.sink.append(bytes), name);
    this.next++;
  }

  /**
   * Encodes Float32 values to the declared dtype and writes them, chunk by chunk through two reused
   * buffers (one being encoded while the other is written), so no stored copy of the whole tensor
   * is ever allocated.
   */
  async writeF32(name: string, values: Float32Array): Promise<void> {
    const declared = this.order[this.next]?.dtype;
    if (declared === undefined || !isCodecDType(declared)) {
      await this.abort();
      throw new SafetensorsError('WRITE_FAILED', this.path, `cannot encode Float32 values as ${declared ?? '(no tensor due)'}`, name);
    }
    const size = dtypeBytes(declared);
    await this.checkNext(name, values.length * size);
    const step = Math.floor(SCRATCH_BYTES / size);
    const buffers = [takeScratch(), takeScratch()];
    try {
      await this.guard(async () => {
        let writing: Promise<void> | undefined;
        for (let k = 0, i = 0; i < values.length; k++, i += step) {
          const part = values.subarray(i, Math.min(values.length, i + step));
          const chunk = encodeInto(part, declared, buffers[k % 2]!.subarray(0, part.length * size));
          await writing;
          writing = this.sink.append(chunk);
        }
        await writing;
      }, name);
    } finally {
      buffers.forEach(giveScratch);
    }
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
      await this.sink.finish();
      await this.sink.close();
      this.closed = true;
      await rename(this.tmpPath, this.path);
      staged(this.tmpPath);
    });
    await syncDirectory(dirname(this.path));
  }

  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.sink.close().catch(() => undefined);
    }
    await rm(this.tmpPath, { force: true });
    staged(this.tmpPath);
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

/**
 * Makes the rename itself durable (the directory entry), where the platform can sync a directory.
 * The file is complete either way, so a refusal here is not an error.
 */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Windows cannot open or sync directories; some filesystems refuse fsync on them
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
