/**
 * Detection for an open file: the key set plus the values of its alphas (one tiny read each, so
 * a header-only inspection stays fast), which let detection report alphas and tell a split_qkv
 * file from a converted one. Walks the file's compact tensor table, so a header of a million
 * tensors does not become a million TensorInfo objects on the way.
 */
import type { SafetensorsFile } from '../safetensors/reader.ts';
import { detectFormat, type Detection } from './detect.ts';
import { parseRole } from './keys/roles.ts';

export async function detectFile(file: SafetensorsFile): Promise<Detection> {
  const table = file.table;
  const scalars = new Map<string, number>();
  for (let i = 0; i < table.length; i++) {
    if (table.numel(i) !== 1) continue;
    const name = table.name(i);
    if (parseRole(name)?.role !== 'alpha') continue;
    try {
      scalars.set(name, (await file.readF32(name))[0]!);
    } catch {
      // an alpha in a dtype loraflow cannot decode is reported by detection without its value
    }
  }
  return detectFormat(table.keys(), file.metadata, scalars);
}
