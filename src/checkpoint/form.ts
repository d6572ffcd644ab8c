/**
 * The forms a base checkpoint comes in, behind one interface: what apply and extract read a base
 * through (its tensors with names, shapes and stored dtypes; one tensor's stored bytes, or a range
 * of its rows; its metadata) and write one through (tensors in a declared order, staged under a
 * temporary name, renamed into place by `commit`, removed by `abort`). A form is a container
 * (one safetensors file, a diffusers folder of shards, a GGUF file); key names (original or
 * diffusers) and value encodings (scaled fp8) are layers above it (canonical.ts, output-plan.ts).
 */
import type { GgufValue } from '../gguf/metadata.ts';

export type Container = 'safetensors' | 'diffusers-folder' | 'gguf';

export interface StoredTensor {
  readonly name: string;
  /** Row-major (PyTorch) shape; for a GGUF tensor its reversed dims, or ComfyUI-GGUF's original shape. */
  readonly shape: readonly number[];
  /** A safetensors dtype (`BF16`, `F8_E4M3`, …) or a ggml type (`Q8_0`, `Q4_K`, …; `F32`/`F16`/`BF16` are the same bytes as safetensors'). */
  readonly dtype: string;
  readonly byteLength: number;
}

/** A diffusers folder's own facts, kept so a folder is written back as it was. */
export interface FolderFacts {
  /** Shards in order: file name, its tensors in data order, its header metadata. */
  shards: readonly { file: string; tensors: readonly string[]; metadata: Readonly<Record<string, string>> | undefined }[];
  /** Whether the folder has an index (one unsharded file has none). */
  indexed: boolean;
  /** The index's own `metadata` object, as read. */
  indexMetadata?: Readonly<Record<string, unknown>>;
  /** The model folder's config.json, when it has one (copied to a folder output). */
  config?: string;
}

/** A GGUF file's own facts, kept so a GGUF is written back as it was. */
export interface GgufFacts {
  metadata: ReadonlyMap<string, GgufValue>;
  alignment: number;
  /** The tensor's GGUF dims (ne0 first), as stored. */
  dims(name: string): readonly number[];
}

export interface CheckpointReader {
  readonly container: Container;
  /** The path the user named (a file, a folder, an index), for messages. */
  readonly path: string;
  /** Tensors in storage order (a folder: shard by shard). */
  readonly tensors: readonly StoredTensor[];
  /** String metadata (safetensors header; a folder's first shard; GGUF: none, see `gguf`). */
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** Bytes on disk, every shard together. */
  readonly fileSize: number;
  readonly folder?: FolderFacts;
  readonly gguf?: GgufFacts;
  has(name: string): boolean;
  info(name: string): StoredTensor;
  /** The file holding a tensor (a folder's shard), for messages. */
  fileOf(name: string): string;
  /**
   * Stored bytes of rows [rowStart, rowStart + rows) of a tensor (rows over its first dimension;
   * the whole tensor when omitted), read into `into` (exactly that many bytes) with positional reads.
   */
  read(name: string, into?: Uint8Array, rowStart?: number, rows?: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A tensor to write: its name, row-major shape and stored dtype (safetensors dtype or ggml type). */
export interface OutputSpec {
  name: string;
  shape: readonly number[];
  dtype: string;
}

export interface CheckpointWriter {
  /** The path the output will have once committed. */
  readonly path: string;
  /** The tensors in the order they must be written. */
  readonly order: readonly OutputSpec[];
  /** The stored bytes of the tensor due next. */
  write(name: string, bytes: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  /** Removes everything staged; an existing output is left untouched. */
  abort(): Promise<void>;
}
