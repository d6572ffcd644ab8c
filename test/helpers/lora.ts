/** LoRA files read back into the canonical model: opened, used, always closed; their ΔW compared. */
import { expect } from 'vitest';
import { readLora } from '../../src/formats/read.ts';
import type { AdapterSet } from '../../src/adapter/model.ts';
import { compareSets } from '../../src/samples/lora-fixtures.ts';
import { referenceDeltas, type TargetDelta } from '../../src/samples/reference-delta.ts';

export async function withLora<T>(path: string, fn: (set: AdapterSet) => Promise<T>): Promise<T> {
  const handle = await readLora(path);
  try {
    return await fn(handle);
  } finally {
    await handle.close();
  }
}

/** The dense f64 ΔW per base weight that a LoRA file applies, optionally after transforming its set. */
export const deltasOf = (path: string, transform: (s: AdapterSet) => AdapterSet = (s) => s): Promise<Map<string, TargetDelta>> =>
  withLora(path, (s) => referenceDeltas(transform(s)));

/** How far the ΔW of file `b` is from that of file `a` (compareSets on the two files). */
export const compareFiles = (a: string, b: string): ReturnType<typeof compareSets> =>
  withLora(a, (x) => withLora(b, (y) => compareSets(x, y)));

/**
 * Every ΔW of `want` is in `got` within `tolerance` (worst element error over the largest |ΔW|, per
 * target, each checked under its name); extra targets in `got` are not looked at.
 */
export function expectDeltasClose(want: Map<string, TargetDelta>, got: Map<string, TargetDelta>, tolerance: number): void {
  for (const [key, d] of want) {
    const g = got.get(key)!;
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < d.data.length; i++) {
      worst = Math.max(worst, Math.abs(g.data[i]! - d.data[i]!));
      scale = Math.max(scale, Math.abs(d.data[i]!));
    }
    expect(worst / scale, key).toBeLessThan(tolerance);
  }
}
