import type { FileHandle } from 'node:fs/promises';
import { fillBuffer, openForRead } from '../file-read.ts';
import { decodeInto, dtypeBytes, isCodecDType } from '../tensor/dtype.ts';
import { SafetensorsError } from './errors.ts';
import { MAX_HEADER_BYTES, type TensorInfo } from './header.ts';
import { scanHeader } from './scan.ts';
import type { TensorTable } from './table.ts';
import { SCRATCH_BYTES, giveScratch, takeScratch } from './scratch.ts';

export type { TensorInfo } from './header.ts';

/**
 * A safetensors file opened lazily: only the header is read and validated up front; each tensor is
 * read on demand with one positional read, so memory holds at most the tensors the caller asks for.
 */
export class SafetensorsFile {
  private infos: TensorInfo[] | undefined;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly fileSize: number,
    readonly headerBytes: number,
    /** The tensors in data order, compact: what the file keeps (a few dozen bytes a tensor). */
    readonly table: TensorTable,
    readonly metadata: Readonly<Record<string, string>> | undefined,
  ) {}

  /**
   * Tensors in data order, as objects: made on first use and kept (the same array and objects on
   * every access). Code that walks a header of possibly millions of tensors uses `table` instead.
   */
  get tensors(): readonly TensorInfo[] {
    return (this.infos ??= this.table.toInfos());
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const handle = await openForRead(path, (code, detail) => new SafetensorsError(code, path, detail));
    try {
      const { size } = await handle.stat();
      if (size === 0) throw new SafetensorsError('EMPTY_FILE', path, 'file is empty');
      if (size < 8) throw new SafetensorsError('HEADER_LENGTH_TRUNCATED', path, `file is ${size} bytes, too short for the 8-byte header length`);
      const lenBuf = new Uint8Array(8);
      await readExactly(handle, lenBuf, 0, path);
      const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError('HEADER_TOO_LARGE', path, `header claims ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit${textHint(lenBuf)}`);
      }
      const headerLen = Number(n);
      if (8 + headerLen > size) {
        throw new SafetensorsError('HEADER_PAST_EOF', path, `header claims ${headerLen} bytes but the file has only ${size - 8} after the length (truncated?)`);
      }
      if (headerLen === 0) throw new SafetensorsError('HEADER_NOT_OBJECT', path, 'header is empty');
      const headerBuf = new Uint8Array(headerLen);
      await readExactly(handle, headerBuf, 8, path);
      const { table, metadata } = scanHeader(path, headerBuf, size);
      return new SafetensorsFile(path, handle, size, headerLen, table, metadata);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  get dataStart(): number {
    return 8 + this.headerBytes;
  }

  has(name: string): boolean {
    return this.table.indexOf(name) >= 0;
  }

  info(name: string): TensorInfo {
    return this.tensors[this.indexOf(name)]!;
  }

  private indexOf(name: string): number {
    const i = this.table.indexOf(name);
    if (i < 0) throw new SafetensorsError('NO_SUCH_TENSOR', this.path, 'no tensor of this name in the file', name);
    return i;
  }

  /** The stored bytes of one tensor, exactly as in the file. */
  async readBytes(name: string): Promise<Uint8Array> {
    const i = this.indexOf(name);
    const begin = this.table.begin(i);
    const buf = new Uint8Array(this.table.end(i) - begin);
    await readExactly(this.handle, buf, this.dataStart + begin, this.path, name);
    return buf;
  }

  /**
   * One tensor decoded to Float32 (the compute format), into `out` when given (it must hold exactly
   * the tensor's values; reusing one buffer across tensors spares the page faults of a fresh one).
   * Read and decoded in chunks with the next chunk's read in flight while one is decoded, so memory
   * holds the floats plus two chunks, never the floats plus the whole stored tensor.
   */
  async readF32(name: string, out?: Float32Array): Promise<Float32Array> {
    const i = this.indexOf(name);
    const t = { dtype: this.table.dtype(i), begin: this.table.begin(i), end: this.table.end(i) };
    if (!isCodecDType(t.dtype)) {
      throw new SafetensorsError('UNKNOWN_DTYPE', this.path, `dtype ${t.dtype} is valid safetensors but loraflow cannot decode it`, name);
    }
    const dtype = t.dtype;
    const size = dtypeBytes(dtype);
    const n = (t.end - t.begin) / size;
    if (out && out.length !== n) throw new RangeError(`${this.path}: tensor "${name}" has ${n} values, the output buffer ${out.length}`);
    const dst = out ?? new Float32Array(n);
    const start = this.dataStart + t.begin;
    if (dtype === 'F32') {
      await readExactly(this.handle, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), start, this.path, name);
      return dst;
    }
    const step = Math.floor(SCRATCH_BYTES / size);
    const buffers = [takeScratch(), takeScratch()];
    const read = (k: number) => {
      const count = Math.min(step, n - k * step);
      const chunk = buffers[k % 2]!.subarray(0, count * size);
      return readExactly(this.handle, chunk, start + k * step * size, this.path, name).then(() => chunk);
    };
    const chunks = Math.ceil(n / step);
    try {
      let next = chunks > 0 ? read(0) : undefined;
      for (let k = 0; k < chunks; k++) {
        const chunk = await next!;
        next = k + 1 < chunks ? read(k + 1) : undefined;
        decodeInto(chunk, dtype, dst.subarray(k * step, k * step + chunk.byteLength / size));
      }
    } finally {
      buffers.forEach(giveScratch);
    }
    return dst;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Opens, runs `fn`, and always closes. */
export async function withSafetensors<T>(path: string, fn: (f: SafetensorsFile) => Promise<T>): Promise<T> {
  const f = await SafetensorsFile.open(path);
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

/** A "length" made of printable ASCII means the file is text: an HTML error page or a Git LFS pointer saved under the model's name. */
function textHint(first8: Uint8Array): string {
  if (!first8.every((b) => b >= 0x20 && b < 0x7f)) return '';
  return `; the file starts with the text "${String.fromCharCode(...first8)}", so it is probably an HTML page or a Git LFS pointer, not a safetensors file`;
}

/** Positional reads until `buf` is full; the file ending first is FILE_TOO_SHORT. */
function readExactly(handle: FileHandle, buf: Uint8Array, position: number, path: string, tensor?: string): Promise<void> {
  return fillBuffer(handle, buf, position, (at) => new SafetensorsError('FILE_TOO_SHORT', path, `unexpected end of file at byte ${at}`, tensor));
}
