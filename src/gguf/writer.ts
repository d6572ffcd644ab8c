/**
 * Streams a GGUF v3 file: header (metadata, tensor infos) first, then each tensor's data padded to
 * the alignment, one tensor at a time, in the order declared. Everything goes to a staging file
 * beside the destination (src/safetensors/staging.ts: swept if a killed process left it, removed
 * on a caught signal) and is renamed over it only by `commit()`; any failure removes it.
 * The layout is ggml's `gguf_write_to_file`: offsets packed in order, each padded to alignment.
 */
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { stagingPathFor, staged, sweepStaleStaging } from '../safetensors/staging.ts';
import { quantize } from './codec.ts';
import { GgufError } from './errors.ts';
import { DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS } from './header.ts';
import { ByteBuilder, checkItem, VALUE_TYPES, type GgufValue } from './metadata.ts';
import { isSupportedType, typeByName, typeBytes, type GgmlTypeInfo } from './types.ts';

/** ComfyUI-GGUF's converter refuses longer names (its ggml build raises GGML_MAX_NAME to 128). */
export const MAX_NAME_BYTES = 127;

export interface GgufTensorSpec {
  name: string;
  /** ggml type name: any known type for `writeBytes`; a supported one for `writeF32`. */
  type: string;
  /** Row-major shape as safetensors/PyTorch ([out, in]); stored reversed as GGUF dims. */
  shape?: readonly number[];
  /** Or the GGUF dims directly (ne0 first). Exactly one of `shape` and `dims`. */
  dims?: readonly number[];
}

export interface GgufWriterOptions {
  /** Key-value pairs in the order to write them (a Map or an object keeps insertion order). */
  metadata?: ReadonlyMap<string, GgufValue> | Readonly<Record<string, GgufValue>>;
  /** Data alignment (power of two); written as `general.alignment` when not the default 32. */
  alignment?: number;
}

interface Planned {
  name: string;
  type: GgmlTypeInfo;
  dims: number[];
  elements: number;
  bytes: number;
  offset: number;
}

const pad = (n: number, a: number): number => Math.ceil(n / a) * a;

function plan(path: string, specs: readonly GgufTensorSpec[], alignment: number): Planned[] {
  const names = new Set<string>();
  let offset = 0;
  return specs.map((s) => {
    if (typeof s.name !== 'string' || s.name === '') throw new GgufError('BAD_KEY', path, 'a tensor needs a non-empty name');
    if (names.has(s.name)) throw new GgufError('DUPLICATE_NAME', path, 'two tensors with the same name', s.name);
    names.add(s.name);
    if (new TextEncoder().encode(s.name).byteLength > MAX_NAME_BYTES) {
      throw new GgufError('BAD_KEY', path, `name longer than ${MAX_NAME_BYTES} UTF-8 bytes (GGUF loaders refuse it)`, s.name);
    }
    const type = typeByName(s.type);
    if (!type) throw new GgufError('BAD_TYPE', path, `unknown ggml type "${s.type}"`, s.name);
    if ((s.shape === undefined) === (s.dims === undefined)) throw new GgufError('BAD_DIMS', path, 'give exactly one of shape (row-major) and dims (GGUF order)', s.name);
    const dims = s.dims ? [...s.dims] : [...s.shape!].reverse();
    if (dims.length > MAX_DIMS) throw new GgufError('BAD_DIMS', path, `${dims.length} dimensions, more than the ${MAX_DIMS} GGUF allows`, s.name);
    if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new GgufError('BAD_DIMS', path, `dims [${dims}] must be non-negative integers`, s.name);
    const elements = dims.reduce((p, d) => p * d, 1);
    if ((dims[0] ?? 1) % type.blockSize !== 0) {
      throw new GgufError('BAD_DIMS', path, `rows of ${dims[0] ?? 1} elements are not whole ${type.name} blocks of ${type.blockSize} (shape [${[...dims].reverse()}])`, s.name);
    }
    const bytes = typeBytes(type, elements);
    const p = { name: s.name, type, dims, elements, bytes, offset };
    offset += pad(bytes, alignment);
    return p;
  });
}

function metadataEntries(path: string, options: GgufWriterOptions, alignment: number): [string, GgufValue][] {
  const m = options.metadata;
  const entries: [string, GgufValue][] = m instanceof Map ? [...m.entries()] : Object.entries(m ?? {});
  const keys = new Set<string>();
  for (const [k, v] of entries) {
    if (k === '') throw new GgufError('BAD_KEY', path, 'metadata keys must not be empty');
    if (keys.has(k)) throw new GgufError('DUPLICATE_KEY', path, `metadata key "${k}" given twice`);
    keys.add(k);
    const known = (VALUE_TYPES as readonly string[]).includes(v?.type);
    if (!known) throw new GgufError('BAD_VALUE_TYPE', path, `metadata "${k}": unknown value type ${String(v?.type)}`);
    const items = v.type === 'ARRAY' ? v.value : [v.value];
    const itemType = v.type === 'ARRAY' ? v.itemType : v.type;
    if (v.type === 'ARRAY' && (!Array.isArray(v.value) || (itemType as string) === 'ARRAY' || !(VALUE_TYPES as readonly string[]).includes(itemType))) {
      throw new GgufError('BAD_VALUE_TYPE', path, `metadata "${k}": an ARRAY needs an item type other than ARRAY and a list of values`);
    }
    for (const item of items) {
      const why = checkItem(itemType, item);
      if (why) throw new GgufError('BAD_METADATA', path, `metadata "${k}": ${why}`);
    }
  }
  const a = entries.find(([k]) => k === 'general.alignment')?.[1];
  if (a && (a.type !== 'UINT32' || a.value !== alignment)) {
    throw new GgufError('BAD_ALIGNMENT', path, `metadata general.alignment (${a.type} ${String(a.value)}) disagrees with the writer's alignment ${alignment}`);
  }
  if (!a && alignment !== DEFAULT_ALIGNMENT) entries.push(['general.alignment', { type: 'UINT32', value: alignment }]);
  return entries;
}

export class GgufWriter {
  private next = 0;
  private written = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly tmpPath: string,
    private readonly handle: FileHandle,
    private readonly planned: readonly Planned[],
    private readonly dataStart: number,
    readonly alignment: number,
  ) {}

  static async create(path: string, specs: readonly GgufTensorSpec[], options: GgufWriterOptions = {}): Promise<GgufWriter> {
    const alignment = options.alignment ?? DEFAULT_ALIGNMENT;
    if (!Number.isInteger(alignment) || alignment < 1 || alignment > 0xffffffff || (alignment & (alignment - 1)) !== 0) {
      throw new GgufError('BAD_ALIGNMENT', path, `alignment ${alignment} is not a power of 2`);
    }
    const entries = metadataEntries(path, options, alignment);
    const planned = plan(path, specs, alignment);
    const h = new ByteBuilder();
    h.u32(GGUF_MAGIC);
    h.u32(3);
    h.u64(planned.length);
    h.u64(entries.length);
    for (const [k, v] of entries) h.kv(k, v);
    for (const t of planned) {
      h.string(t.name);
      h.u32(t.dims.length);
      for (const d of t.dims) h.u64(d);
      h.u32(t.type.id);
      h.u64(t.offset);
    }
    h.zeros(pad(h.length, alignment) - h.length);
    const header = h.result();
    await sweepStaleStaging(dirname(path));
    const tmpPath = stagingPathFor(path);
    let handle: FileHandle;
    try {
      handle = await open(tmpPath, 'wx');
    } catch (e) {
      staged(tmpPath);
      throw new GgufError('WRITE_FAILED', path, `cannot create output (${(e as Error).message})`);
    }
    const writer = new GgufWriter(path, tmpPath, handle, planned, header.byteLength, alignment);
    await writer.guard(() => writer.append(header));
    return writer;
  }

  /** The tensor expected next (name, type, GGUF dims), or undefined when all are written. */
  get pending(): { name: string; type: string; dims: readonly number[] } | undefined {
    const t = this.planned[this.next];
    return t && { name: t.name, type: t.type.name, dims: t.dims };
  }

  /** Writes the stored bytes (already encoded as the declared type) of the tensor due next. */
  async writeBytes(name: string, bytes: Uint8Array): Promise<void> {
    const t = await this.due(name);
    if (bytes.byteLength !== t.bytes) {
      await this.abort();
      throw new GgufError('WRITE_FAILED', this.path, `got ${bytes.byteLength} bytes for ${t.elements} ${t.type.name} values, which take ${t.bytes}`, name);
    }
    await this.guard(async () => {
      await this.append(bytes);
      await this.padTo(t);
    }, name);
    this.next++;
  }

  /**
   * Encodes Float32 values (GGUF element order = row-major over the shape) as the declared type
   * with ggml's reference quantizer and writes them, a few MB of rows at a time.
   */
  async writeF32(name: string, values: Float32Array): Promise<void> {
    const t = await this.due(name);
    if (!isSupportedType(t.type.name)) {
      await this.abort();
      throw new GgufError('UNSUPPORTED_TYPE', this.path, `cannot quantize to ${t.type.name}; write its bytes with writeBytes`, name);
    }
    if (values.length !== t.elements) {
      await this.abort();
      throw new GgufError('WRITE_FAILED', this.path, `got ${values.length} values for dims [${t.dims}], which hold ${t.elements}`, name);
    }
    const type = t.type.name;
    const row = t.dims[0] ?? 1;
    const rows = row === 0 ? 0 : t.elements / row;
    const step = Math.max(1, Math.floor((4 << 20) / Math.max(1, row)));
    await this.guard(async () => {
      for (let r = 0; r < rows; r += step) {
        const k = Math.min(step, rows - r);
        await this.append(quantize(type, values.subarray(r * row, (r + k) * row)));
      }
      await this.padTo(t);
    }, name);
    this.next++;
  }

  /** Flushes, closes and renames the finished file into place. */
  async commit(): Promise<void> {
    if (this.next !== this.planned.length) {
      const missing = this.planned[this.next]!.name;
      await this.abort();
      throw new GgufError('WRITE_FAILED', this.path, 'commit before every tensor was written', missing);
    }
    await this.guard(async () => {
      await this.handle.sync();
      await this.handle.close();
      this.closed = true;
      await rename(this.tmpPath, this.path);
      staged(this.tmpPath);
    });
  }

  /** Removes the staging file; an existing output under the final name is left untouched. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await rm(this.tmpPath, { force: true });
    staged(this.tmpPath);
  }

  private async due(name: string): Promise<Planned> {
    const t = this.planned[this.next];
    if (this.closed || !t || t.name !== name) {
      await this.abort();
      throw new GgufError('WRITE_FAILED', this.path, `tensors must be written in the declared order; expected "${t?.name ?? '(none)'}"`, name);
    }
    return t;
  }

  private async append(bytes: Uint8Array): Promise<void> {
    for (let done = 0; done < bytes.byteLength;) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, this.written);
      done += bytesWritten;
      this.written += bytesWritten;
    }
  }

  private async padTo(t: Planned): Promise<void> {
    const end = this.dataStart + t.offset + pad(t.bytes, this.alignment);
    if (end > this.written) await this.append(new Uint8Array(end - this.written));
  }

  private async guard(fn: () => Promise<void>, tensor?: string): Promise<void> {
    try {
      await fn();
    } catch (e) {
      await this.abort();
      if (e instanceof GgufError) throw e;
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOSPC' ? 'disk full' : err.message;
      throw new GgufError('WRITE_FAILED', this.path, `write failed: ${why}; no output was left behind`, tensor);
    }
  }
}

export interface GgufTensorEntry extends GgufTensorSpec {
  /** Stored bytes, or Float32 values to quantize, or a function producing either when its turn comes. */
  data: Uint8Array | Float32Array | (() => Promise<Uint8Array | Float32Array>);
}

/** Writes a whole file from entries whose data may be produced lazily, one tensor in memory at a time. */
export async function writeGguf(path: string, entries: readonly GgufTensorEntry[], options: GgufWriterOptions = {}): Promise<void> {
  const writer = await GgufWriter.create(path, entries, options);
  try {
    for (const e of entries) {
      const data = typeof e.data === 'function' ? await e.data() : e.data;
      if (data instanceof Float32Array) await writer.writeF32(e.name, data);
      else await writer.writeBytes(e.name, data);
    }
    await writer.commit();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}
