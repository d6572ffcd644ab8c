import { withSafetensors } from '../src/safetensors/reader.ts';
import { ApiError } from './errors.ts';
import { listFiles } from './routes/files.ts';
import { modelKind, kindLabel, type ModelKind } from './model-kind.ts';
import type { Roots } from './paths.ts';
import path from 'node:path';
import { realpath } from 'node:fs/promises';

/** One file of a root as the file widgets list it. */
export interface CatalogEntry extends Partial<ModelKind> {
  /** Relative to the root, "/"-separated: what a recipe's file param holds. */
  path: string;
  size: number;
  mtime: string;
  /** What the widget shows beside the name: `kohya · flux`, `checkpoint · sdxl`, why it cannot be read. */
  info: string;
  /** The header could not be read (truncated, not safetensors): said, not thrown. */
  error?: string;
}

/** Enough for any model folder; the oldest entries go first past it. */
const MAX_CACHED = 20_000;

/**
 * Every .safetensors file of a root with its format and family, from each file's header (never
 * the tensor data). Headers are read once per file version: the answer is cached by real path,
 * size and modification time, so re-listing a folder of 300 LoRAs reads nothing that has not changed.
 */
export class ModelCatalog {
  private readonly cache = new Map<string, { size: number; mtimeMs: number; kind: ModelKind | { error: string } }>();
  /** Header reads, for tests: how often the cache missed. */
  reads = 0;

  constructor(private readonly roots: Roots) {}

  async list(root: string): Promise<{ root: string; entries: CatalogEntry[]; truncated: boolean; missing?: true }> {
    let listing;
    try {
      listing = await listFiles(this.roots, root, '', { recursive: true, ext: 'safetensors' });
    } catch (e) {
      // a root whose folder is not there (yet) holds nothing; an unknown root name stays a 404
      if (e instanceof ApiError && e.code === 'not_found') return { root, entries: [], truncated: false, missing: true };
      throw e;
    }
    const dir = await realpath(this.roots[root]!);
    const entries: CatalogEntry[] = [];
    for (const e of listing.entries) {
      if (e.type !== 'file') continue;
      const k = await this.describe(path.join(dir, ...e.path.split('/')), e.size, Date.parse(e.mtime));
      const base = { path: e.path, size: e.size, mtime: e.mtime };
      entries.push('error' in k ? { ...base, info: `unreadable: ${k.error}`, error: k.error } : { ...base, ...k, info: kindLabel(k) });
    }
    return { root, entries, truncated: listing.truncated };
  }

  private async describe(file: string, size: number, mtimeMs: number): Promise<ModelKind | { error: string }> {
    const key = await realpath(file).catch(() => file);
    const hit = this.cache.get(key);
    if (hit && hit.size === size && hit.mtimeMs === mtimeMs) return hit.kind;
    this.reads++;
    let kind: ModelKind | { error: string };
    try {
      kind = await withSafetensors(key, async (f) => modelKind(f.table.keys(), f.metadata));
    } catch (e) {
      // the message names the server's absolute path; the listing already names the file
      kind = { error: (e instanceof Error ? e.message : String(e)).replaceAll(key, path.basename(key)) };
    }
    this.cache.delete(key);
    this.cache.set(key, { size, mtimeMs, kind });
    if (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    return kind;
  }
}
