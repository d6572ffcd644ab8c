/**
 * GGUF as a form (city96's ComfyUI-GGUF layout: the checkpoint's own tensor names, quantized
 * matrices, small tensors in F32/F16). Tensors are listed with their PyTorch shapes (ComfyUI-GGUF's
 * `comfy.gguf.orig_shape.*` applied) and ggml types as dtypes; bytes and row ranges are read by
 * offset, so a patched weight is dequantized block by block, never the file. The writer keeps the
 * input's metadata, alignment, dims and types (src/gguf/writer.ts: staged, renamed on commit).
 */
import { GgufFile } from '../gguf/reader.ts';
import { GgufWriter } from '../gguf/writer.ts';
import type { GgufValue } from '../gguf/metadata.ts';
import { blockSize } from './encoding.ts';
import type { CheckpointReader, CheckpointWriter, GgufFacts, OutputSpec } from './form.ts';
import { PositionedReader, type Located as Positioned } from './positioned-reader.ts';

interface Located extends Positioned {
  dims: readonly number[];
}

export class GgufReader extends PositionedReader<Located> implements CheckpointReader {
  readonly container = 'gguf' as const;
  readonly metadata = undefined;
  readonly gguf: GgufFacts;

  private constructor(path: string, private readonly file: GgufFile) {
    super(path, file.tensors.map((t) => ({ name: t.name, shape: file.torchShape(t.name), dtype: t.type, byteLength: t.byteLength, position: t.fileOffset, dims: t.dims })));
    this.gguf = { metadata: file.metadata, alignment: file.alignment, dims: (name) => this.info(name).dims };
  }

  static async open(path: string): Promise<GgufReader> {
    return new GgufReader(path, await GgufFile.open(path));
  }

  get fileSize(): number {
    return this.file.fileSize;
  }

  /** A row range only of whole quant blocks per row. */
  override async read(name: string, into?: Uint8Array, rowStart?: number, rows?: number): Promise<Uint8Array> {
    const t = this.info(name);
    const rowElements = t.shape.slice(1).reduce((a, b) => a * b, 1);
    if ((rowStart !== undefined || rows !== undefined) && rowElements % blockSize(t.dtype) !== 0) {
      throw new RangeError(`${this.path}: tensor "${name}": rows of ${rowElements} ${t.dtype} values are not whole blocks, so they cannot be read apart`);
    }
    return super.read(name, into, rowStart, rows);
  }

  async close(): Promise<void> {
    await this.closeHandle();
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
