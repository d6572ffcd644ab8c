import { scanHeader } from './scan.ts';
import type { TensorTable } from './table.ts';

/** The reference implementation's MAX_HEADER_SIZE. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte offsets relative to the start of the data buffer, end exclusive. */
  begin: number;
  end: number;
}

export interface ParsedHeader {
  /** Tensors in data order (sorted by offset); made from `table` on first use. */
  tensors: TensorInfo[];
  /** The same tensors in compact form (what the reader and the inspection keep). */
  table: TensorTable;
  metadata: Record<string, string> | undefined;
  /** Length of the JSON header (N), padding included. */
  headerBytes: number;
  /** Total bytes of the data buffer. */
  dataBytes: number;
}

/**
 * Validates a header exactly as the reference implementation (safetensors' `Metadata::validate`)
 * does, with one error code per rule so a broken file says what is wrong with it. `fileSize` is
 * the size of the whole file; `undefined` checks the header against the data size it declares
 * (a header sent on its own). The parse is a single pass over the bytes (see scan.ts) that keeps
 * the tensors as a compact table, not an object per tensor.
 */
export function parseHeader(file: string, headerBytes: Uint8Array, fileSize?: number): ParsedHeader {
  const { table, metadata, dataBytes } = scanHeader(file, headerBytes, fileSize);
  let tensors: TensorInfo[] | undefined;
  return {
    get tensors() {
      return (tensors ??= table.toInfos());
    },
    set tensors(value: TensorInfo[]) {
      tensors = value;
    },
    table,
    metadata,
    headerBytes: headerBytes.byteLength,
    dataBytes,
  };
}
