/** The shared steps of the "convert to every writable format, then onwards" tests (FLUX and SD). */
import { expect } from 'vitest';
import { convertLora, LoraFormatError, type WriteFormat } from '../../src/formats/index.ts';
import { exists } from './files.ts';

/** Converting `src` to `to` must fail as INEXPRESSIBLE, with an error matching `words`, and leave no `out` file. */
export async function expectInexpressible(src: string, out: string, to: WriteFormat, words: RegExp): Promise<void> {
  const err = await convertLora(src, out, { to }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(LoraFormatError);
  expect((err as LoraFormatError).code).toBe('INEXPRESSIBLE');
  expect((err as Error).message).toMatch(words);
  expect(await exists(out)).toBe(false);
}

/**
 * The onward conversions: each written format to the next one, the last back to the first, so every
 * writer's output is also read and rewritten by another writer. One format alone has none.
 */
export function onwardPairs(written: readonly WriteFormat[]): [from: WriteFormat, to: WriteFormat][] {
  return written.flatMap((from, i) => {
    const to = written[(i + 1) % written.length]!;
    return to === from ? [] : [[from, to] as [WriteFormat, WriteFormat]];
  });
}
