/**
 * A GGUF file opened lazily: the header is read and validated up front; tensor data is read on
 * demand by offset, one tensor (or one range of block rows) at a time, never the whole file.
 */
import type { FileHandle } from 'node:fs/promises';
import { fillBuffer, openForRead } from '../file-read.ts';
import { dequantize } from './codec.ts';
import { GgufError } from './errors.ts';
import { parseHeader, type GgufHeader, type GgufTensorInfo } from './header.ts';
import type { GgufValue } from './metadata.ts';
import { isSupportedType, type GgmlType } from './types.ts';

/** Stored bytes read per step when a whole tensor is dequantized (so memory is floats + one chunk). */
const CHUNK_BYTES = 8 << 20;

/** The metadata key under which ComfyUI-GGUF keeps the PyTorch shape of a tensor it stored reshaped. */
export const origShapeKey = (tensor: string): string => `comfy.gguf.orig_shape.${tensor}`;

export class GgufFile {
  private readonly byName: Map<string, GgufTensorInfo>;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly fileSize: number,
    private readonly header: GgufHeader,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<GgufFile> {
    const handle = await openForRead(path, (code, detail) => new GgufError(code, path, detail));
    try {
      const { size } = await handle.stat();
      return new GgufFile(path, handle, size, await parseHeader(handle, size, path));
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  get version(): number { return this.header.version; }
  get alignment(): number { return this.header.alignment; }
  /** Absolute position of the data section. */
  get dataOffset(): number { return this.header.dataOffset; }
  /** Every key-value pair, typed, in file order. */
  get metadata(): ReadonlyMap<string, GgufValue> { return this.header.metadata; }
  /** Tensor infos in file (header) order. */
  get tensors(): readonly GgufTensorInfo[] { return this.header.tensors; }
  /** `general.architecture` (`flux`, `sdxl`, `wan`, …), if present as a string. */
  get architecture(): string | undefined {
    const v = this.header.metadata.get('general.architecture');
    return v?.type === 'STRING' ? v.value : undefined;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): GgufTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new GgufError('NO_SUCH_TENSOR', this.path, 'no tensor of this name in the file', name);
    return t;
  }

  /**
   * The PyTorch/safetensors shape of a tensor: ComfyUI-GGUF's `comfy.gguf.orig_shape.NAME`
   * (ARRAY of INT32, row-major) when the converter stored it reshaped, else `dims` reversed.
   */
  torchShape(name: string): number[] {
    const t = this.info(name);
    const v = this.header.metadata.get(origShapeKey(name));
    if (!v) return [...t.shape];
    if (v.type !== 'ARRAY' || v.itemType !== 'INT32') throw new GgufError('BAD_METADATA', this.path, `${origShapeKey(name)} must be an ARRAY of INT32`, name);
    const shape = v.value as number[];
    if (shape.some((d) => d < 0) || shape.reduce((p, d) => p * d, 1) !== t.elements) {
      throw new GgufError('BAD_METADATA', this.path, `${origShapeKey(name)} [${shape}] does not hold the tensor's ${t.elements} elements`, name);
    }
    return [...shape];
  }

  /** The stored bytes of one tensor, exactly as in the file. */
  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    return this.readAt(t.fileOffset, t.byteLength, name);
  }

  /**
   * The stored bytes of rows [start, start + count) (a row = ne0 elements = whole blocks):
   * `dims[1…]` flattened, so for a 2-D weight a row is one output channel.
   */
  async readRowBytes(name: string, start: number, count: number): Promise<Uint8Array> {
    const t = this.info(name);
    this.checkRows(t, start, count);
    return this.readAt(t.fileOffset + start * t.rowBytes, count * t.rowBytes, name);
  }

  /** Rows [start, start + count) dequantized to Float32 (into `out` when given: count × ne0 values). */
  async readRowsF32(name: string, start: number, count: number, out?: Float32Array): Promise<Float32Array> {
    const t = this.info(name);
    const type = this.decodable(t);
    this.checkRows(t, start, count);
    const n = count * t.rowLength;
    if (out && out.length !== n) throw new RangeError(`${this.path}: tensor "${name}": rows ${start}+${count} hold ${n} values, the output buffer ${out.length}`);
    const dst = out ?? new Float32Array(n);
    const step = Math.max(1, Math.floor(CHUNK_BYTES / Math.max(1, t.rowBytes)));
    for (let r = 0; r < count; r += step) {
      const k = Math.min(step, count - r);
      const bytes = await this.readAt(t.fileOffset + (start + r) * t.rowBytes, k * t.rowBytes, name);
      dequantize(type, bytes, dst.subarray(r * t.rowLength, (r + k) * t.rowLength));
    }
    return dst;
  }

  /** A whole tensor dequantized to Float32, in GGUF element order (= row-major over `shape`). */
  async readF32(name: string, out?: Float32Array): Promise<Float32Array> {
    const t = this.info(name);
    return this.readRowsF32(name, 0, t.rows, out);
  }

  /** Iterates a tensor in chunks of at most `rowsPerChunk` rows: [first row, values]. The buffer is reused unless `fresh`. */
  async *iterateRows(name: string, rowsPerChunk: number, fresh = false): AsyncGenerator<[start: number, values: Float32Array]> {
    const t = this.info(name);
    if (!Number.isInteger(rowsPerChunk) || rowsPerChunk < 1) throw new RangeError(`rowsPerChunk must be a positive integer, got ${rowsPerChunk}`);
    let buf: Float32Array | undefined;
    for (let r = 0; r < t.rows; r += rowsPerChunk) {
      const k = Math.min(rowsPerChunk, t.rows - r);
      const n = k * t.rowLength;
      if (fresh || !buf || buf.length < n) buf = new Float32Array(n);
      yield [r, await this.readRowsF32(name, r, k, buf.subarray(0, n))];
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private decodable(t: GgufTensorInfo): GgmlType {
    if (!isSupportedType(t.type)) {
      throw new GgufError('UNSUPPORTED_TYPE', this.path, `type ${t.type} can be copied as bytes but not dequantized (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)`, t.name);
    }
    return t.type;
  }

  private checkRows(t: GgufTensorInfo, start: number, count: number): void {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > t.rows) {
      throw new GgufError('BAD_ROW_RANGE', this.path, `rows [${start}, ${start + count}) are not within the tensor's ${t.rows} rows`, t.name);
    }
  }

  private async readAt(position: number, length: number, tensor: string): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await fillBuffer(this.handle, buf, position, (at) => new GgufError('TRUNCATED', this.path, `unexpected end of file at byte ${at} (the file shrank?)`, tensor));
    return buf;
  }
}

/** Opens, runs `fn`, and always closes. */
export async function withGguf<T>(path: string, fn: (f: GgufFile) => Promise<T>): Promise<T> {
  const f = await GgufFile.open(path);
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}
