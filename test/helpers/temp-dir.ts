/**
 * A scratch directory for one test file or one describe block: made before its tests, removed with
 * everything in it after them. Call it where vitest collects hooks (top level or inside describe);
 * hooks registered after it run after it is made and before it is removed (vitest runs before-hooks
 * in order and after-hooks in reverse).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export interface TempDir {
  /** The directory itself. */
  readonly dir: string;
  /** A path inside it. */
  path(...parts: string[]): string;
}

export function useTempDir(prefix: string): TempDir {
  let made: string | undefined;
  beforeAll(async () => {
    made = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    if (made) await rm(made, { recursive: true, force: true });
  });
  const dir = (): string => {
    // Module-level code runs at collection time, before any hook: a clear message beats join(undefined).
    if (made === undefined) throw new Error(`temp dir ${prefix}… used before its beforeAll hook ran`);
    return made;
  };
  return {
    get dir() {
      return dir();
    },
    path: (...parts) => join(dir(), ...parts),
  };
}
