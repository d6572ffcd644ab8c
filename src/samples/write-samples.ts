import { mkdir } from 'node:fs/promises';
import { FAMILIES } from '../formats/families.ts';
import type { SampleFile } from '../formats/family.ts';
import { writeTableSamples } from './table-samples.ts';

/**
 * Built-in sample data: each family's files, with every real key name and block count and widths
 * shrunk (÷64), so every recipe in graphs/ runs in seconds — written by the family itself, or from
 * a table family's sample spec. All deterministic: writing them twice gives identical bytes.
 */

/** Writes every sample file into `dir`; returns what was written. */
export async function writeSamples(dir: string): Promise<SampleFile[]> {
  await mkdir(dir, { recursive: true });
  const written: SampleFile[] = [];
  for (const family of FAMILIES) {
    if (family.writeSamples) written.push(...(await family.writeSamples(dir)));
    else if (family.samples) written.push(...(await writeTableSamples(dir, family)));
  }
  return written;
}
