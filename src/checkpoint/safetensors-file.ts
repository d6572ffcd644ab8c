/**
 * The single safetensors file as a form: the header validated once (src/safetensors/reader.ts),
 * tensor bytes and row ranges read with positional reads into the caller's buffers (apply's
 * pipeline reuses a ring of them), and the streaming writer (staged, renamed on commit).
 */
import { SafetensorsFile } from '../safetensors/reader.ts';
import { SafetensorsWriter } from '../safetensors/writer.ts';
import { PositionedReader, type Located } from './positioned-reader.ts';
import type { CheckpointReader, CheckpointWriter, OutputSpec } from './form.ts';


export class SafetensorsReader extends PositionedReader<Located> implements CheckpointReader {
  readonly container = 'safetensors' as const;

  private constructor(
    path: string,
    /** The validated header (its own handle, closed with this reader). */
    readonly file: SafetensorsFile,
  ) {
    super(path, file.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, byteLength: t.end - t.begin, position: file.dataStart + t.begin })));
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

  async close(): Promise<void> {
    await this.closeHandle();
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
