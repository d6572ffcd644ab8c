import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { stableStringify } from './canonical.ts';

/**
 * Content-addressed cache of node results within the process. A node's key hashes its type and
 * version, its params, the keys of the results it reads (so a key stands for the whole upstream
 * sub-graph, never for node ids) and the size + mtime of the files it reads. The recipe's `ui`
 * block never enters a key. An output node's entry also remembers the files it wrote, and is only
 * reused while they are still there unchanged.
 *
 * Retention: after each run only the entries of that run's recipe are kept (ComfyUI's classic
 * policy). This is what makes it safe to free a dropped entry's resources (open files): a kept
 * entry can only reference results of its own ancestors, whose keys belong to the same recipe.
 * Runs that share a cache take turns (`exclusive`).
 */

export interface FileFingerprint {
  path: string;
  size: number;
  mtimeMs: number;
}

export async function fingerprintFile(path: string): Promise<FileFingerprint | undefined> {
  try {
    const st = await stat(path);
    return { path, size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  }
}

export function cacheKey(parts: unknown): string {
  return createHash('sha256').update(stableStringify(parts)).digest('hex');
}

export interface CacheEntry {
  nodeType: string;
  outputs: Record<string, unknown>;
  summary: unknown;
  /** Files the node wrote; the entry is stale once any of them changed or disappeared. */
  written: FileFingerprint[];
  dispose?: () => void | Promise<void>;
}

export class RunCache {
  private readonly entries = new Map<string, CacheEntry>();
  private queue: Promise<unknown> = Promise.resolve();

  get size(): number {
    return this.entries.size;
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** The entry for `key`, if present and its written files are unchanged (a stale entry is dropped). */
  async lookup(key: string): Promise<CacheEntry | undefined> {
    const e = this.entries.get(key);
    if (!e) return undefined;
    for (const w of e.written) {
      const now = await fingerprintFile(w.path);
      if (!now || now.size !== w.size || now.mtimeMs !== w.mtimeMs) {
        await this.drop(key);
        return undefined;
      }
    }
    return e;
  }

  set(key: string, entry: CacheEntry): void {
    this.entries.set(key, entry);
  }

  async retainOnly(keep: ReadonlySet<string>): Promise<void> {
    for (const key of [...this.entries.keys()]) if (!keep.has(key)) await this.drop(key);
  }

  async clear(): Promise<void> {
    for (const key of [...this.entries.keys()]) await this.drop(key);
  }

  /** Runs `fn` after every earlier `exclusive` call has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async drop(key: string): Promise<void> {
    const e = this.entries.get(key);
    this.entries.delete(key);
    await e?.dispose?.();
  }
}
