/** Every tensor of a safetensors file, as stored, for byte-level comparisons between files. */
import { withSafetensors } from '../../src/safetensors/reader.ts';

export interface StoredTensor {
  dtype: string;
  shape: number[];
  /** Exactly the stored bytes; a plain Uint8Array (its `.slice()` copies, unlike a Buffer's), so `.slice().buffer` holds this tensor only. */
  bytes: Uint8Array;
}

export function tensorsOf(path: string): Promise<Map<string, StoredTensor>> {
  return withSafetensors(path, async (f) => {
    const out = new Map<string, StoredTensor>();
    for (const t of f.tensors) out.set(t.name, { dtype: t.dtype, shape: t.shape, bytes: await f.readBytes(t.name) });
    return out;
  });
}

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;
