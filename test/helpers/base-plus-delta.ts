import { expect } from 'vitest';
import type { SafetensorsFile } from '../../src/safetensors/reader.ts';

/**
 * Checks an applied checkpoint against W + ΔW tensor by tensor: a tensor without a delta is the
 * base's bytes exactly; one with a delta is returned with its normwise error max|o − (w + d)| /
 * max|w + d| (the f32 product and one f32 rounding of W + ΔW). Returns the errors by tensor.
 */
export async function basePlusDeltaErrors(base: SafetensorsFile, out: SafetensorsFile, deltaOf: (name: string) => { data: ArrayLike<number> } | undefined): Promise<Map<string, number>> {
  const errors = new Map<string, number>();
  for (const t of base.tensors) {
    const d = deltaOf(t.name);
    if (!d) {
      expect(Buffer.from(await out.readBytes(t.name)).equals(Buffer.from(await base.readBytes(t.name))), t.name).toBe(true);
      continue;
    }
    const w = await base.readF32(t.name);
    const o = await out.readF32(t.name);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < w.length; i++) {
      diff = Math.max(diff, Math.abs(o[i]! - (w[i]! + d.data[i]!)));
      scale = Math.max(scale, Math.abs(w[i]! + d.data[i]!));
    }
    errors.set(t.name, diff / scale);
  }
  return errors;
}
