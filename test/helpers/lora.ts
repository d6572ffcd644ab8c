/** LoRA files read back into the canonical model: opened, used, always closed; their ΔW compared. */
import { readLora } from '../../src/formats/read.ts';
import type { AdapterSet } from '../../src/formats/model.ts';
import { compareSets } from '../../src/testing/lora-fixtures.ts';
import { referenceDeltas, type TargetDelta } from '../../src/testing/reference-delta.ts';

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
