/**
 * Detection for an open file: the key set plus the values of its alphas (one tiny read each, so
 * a header-only inspection stays fast), which let detection report alphas and tell a split_qkv
 * file from a converted one.
 */
import type { SafetensorsFile } from '../safetensors/reader.ts';
import { detectFormat, type Detection } from './detect.ts';
import { parseRole } from './keys/roles.ts';

export async function detectFile(file: SafetensorsFile): Promise<Detection> {
  const scalars = new Map<string, number>();
  for (const t of file.tensors) {
    if (t.shape.reduce((a, b) => a * b, 1) !== 1 || parseRole(t.name)?.role !== 'alpha') continue;
    try {
      scalars.set(t.name, (await file.readF32(t.name))[0]!);
    } catch {
      // an alpha in a dtype loraflow cannot decode is reported by detection without its value
    }
  }
  return detectFormat(file.tensors, file.metadata, scalars);
}
