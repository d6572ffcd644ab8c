import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { stableStringify } from './canonical.ts';

/**
 * Content-addressed cache of node results within the process. A node's key hashes its type and
 * version, its params, the keys of the results it reads (so a key stands for the whole upstream
 * sub-graph, never for node ids) and the size + mtime of the files it reads (of every file under
 * a folder, every shard of an index). The recipe's `ui` block never enters a key. An output node's entry also
 * remembers the files it wrote, and is only reused while they are still there unchanged.
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
  /**
   * A folder: every file under it; a sharded-weights index: every shard it names. Each with its
   * own size and mtime (a missing shard as size −1), since rewriting a shard of a model folder in
   * place changes neither the index nor the folder's own stat.
   */
  parts?: FileFingerprint[];
}

/** Folder levels walked below a read path (a pipeline folder's `unet/` and its files). */
const FOLDER_DEPTH = 3;

async function filesUnder(dir: string, depth: number): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isFile()) out.push(p);
    else if (e.isDirectory() && depth > 1) out.push(...(await filesUnder(p, depth - 1)));
  }
  return out;
}

/** The shards a Hugging Face sharded-weights index (`*.index.json`, `{"weight_map": {tensor: file}}`) names beside it. */
async function indexShards(path: string): Promise<string[]> {
  try {
    const doc = JSON.parse(await readFile(path, 'utf8')) as { weight_map?: Record<string, unknown> };
    const files = new Set(Object.values(doc.weight_map ?? {}).filter((f): f is string => typeof f === 'string'));
    return [...files].map((f) => join(dirname(path), f));
  } catch {
    return [];
  }
}

/** What a read of `path` depends on besides its own stat: the files of a folder, the shards of an index. */
async function coveredFiles(path: string, isDirectory: boolean): Promise<string[]> {
  if (isDirectory) return filesUnder(path, FOLDER_DEPTH).catch(() => []);
  return path.endsWith('.index.json') ? indexShards(path) : [];
}

async function statPrint(path: string): Promise<(FileFingerprint & { dir: boolean }) | undefined> {
  try {
    const st = await stat(path);
    return { path, size: st.size, mtimeMs: st.mtimeMs, dir: st.isDirectory() };
  } catch {
    return undefined;
  }
}

export async function fingerprintFile(path: string): Promise<FileFingerprint | undefined> {
  const own = await statPrint(path);
  if (!own) return undefined;
  const { dir, ...print } = own;
  const files = (await coveredFiles(path, dir)).sort();
  if (!files.length) return print;
  const parts = await Promise.all(
    files.map(async (f) => {
      const p = await statPrint(f);
      return p ? { path: p.path, size: p.size, mtimeMs: p.mtimeMs } : { path: f, size: -1, mtimeMs: 0 };
    }),
  );
  return { ...print, parts };
}

/** Whether a file (and every part of a model folder) is as it was. */
export function sameFingerprint(a: FileFingerprint, b: FileFingerprint): boolean {
  if (a.size !== b.size || a.mtimeMs !== b.mtimeMs || (a.parts?.length ?? 0) !== (b.parts?.length ?? 0)) return false;
  return (a.parts ?? []).every((p, i) => p.path === b.parts![i]!.path && sameFingerprint(p, b.parts![i]!));
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
      if (!now || !sameFingerprint(now, w)) {
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
