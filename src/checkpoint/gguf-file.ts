/**
 * GGUF as a form (city96's ComfyUI-GGUF layout: the checkpoint's own tensor names, quantized
 * matrices, small tensors in F32/F16). Tensors are listed with their PyTorch shapes (ComfyUI-GGUF's
 * `comfy.gguf.orig_shape.*` applied) and ggml types as dtypes; bytes and row ranges are read by
 * offset, so a patched weight is dequantized block by block, never the file. The writer keeps the
 * input's metadata, alignment, dims and types (src/gguf/writer.ts: staged, renamed on commit).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { GgufFile } from '../gguf/reader.ts';
import { GgufWriter } from '../gguf/writer.ts';
import type { GgufValue } from '../gguf/metadata.ts';
import { blockSize } from './encoding.ts';
import { CheckpointError } from './errors.ts';
import type { CheckpointReader, CheckpointWriter, GgufFacts, OutputSpec, StoredTensor } from './form.ts';
import { readFully, rowRange } from './safetensors-file.ts';

interface Located extends StoredTensor {
  position: number;
  dims: readonly number[];
}

export class GgufReader implements CheckpointReader {
  readonly container = 'gguf' as const;
  readonly metadata = undefined;
  readonly tensors: readonly Located[];
  readonly gguf: GgufFacts;
  private readonly byName: Map<string, Located>;
  private handle: FileHandle | undefined;

  private constructor(readonly path: string, private readonly file: GgufFile) {
    this.tensors = file.tensors.map((t) => ({ name: t.name, shape: file.torchShape(t.name), dtype: t.type, byteLength: t.byteLength, position: t.fileOffset, dims: t.dims }));
    this.byName = new Map(this.tensors.map((t) => [t.name, t]));
    this.gguf = { metadata: file.metadata, alignment: file.alignment, dims: (name) => (this.info(name) as Located).dims };
  }

  static async open(path: string): Promise<GgufReader> {
    return new GgufReader(path, await GgufFile.open(path));
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
    const rowElements = t.shape.slice(1).reduce((a, b) => a * b, 1);
    if ((rowStart !== undefined || rows !== undefined) && rowElements % blockSize(t.dtype) !== 0) {
      throw new RangeError(`${this.path}: tensor "${name}": rows of ${rowElements} ${t.dtype} values are not whole blocks, so they cannot be read apart`);
    }
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

export class GgufOutput implements CheckpointWriter {
  private constructor(private readonly writer: GgufWriter, readonly order: readonly OutputSpec[]) {}

  /** `dims` gives a tensor's stored GGUF dims (a tensor ComfyUI-GGUF stored reshaped keeps its reshaped dims and orig_shape key). */
  static async create(path: string, specs: readonly OutputSpec[], opts: { metadata: ReadonlyMap<string, GgufValue>; alignment: number; dims: (name: string) => readonly number[] }): Promise<GgufOutput> {
    const writer = await GgufWriter.create(path, specs.map((s) => ({ name: s.name, type: s.dtype, dims: opts.dims(s.name) })), { metadata: opts.metadata, alignment: opts.alignment });
    return new GgufOutput(writer, specs);
  }

  get path(): string {
    return this.writer.path;
  }

  write(name: string, bytes: Uint8Array): Promise<void> {
    return this.writer.writeBytes(name, bytes);
  }

  commit(): Promise<void> {
    return this.writer.commit();
  }

  abort(): Promise<void> {
    return this.writer.abort();
  }
}
