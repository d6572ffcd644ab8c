import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { Router } from 'express';
import { z } from 'zod';
import { ApiError, parseOr400 } from '../errors.ts';
import { isInside, resolveInRoot, type Roots } from '../paths.ts';
import { readUploadedHeader } from '../header-upload.ts';
import { PROVENANCE_KEY } from '../../src/graph/index.ts';
import { modelKind } from '../model-kind.ts';

export interface FileEntry {
  name: string;
  /** Relative to the root, "/"-separated: what a recipe's file param holds. */
  path: string;
  type: 'dir' | 'file';
  size: number;
  mtime: string;
}

export interface Listing {
  root: string;
  path: string;
  entries: FileEntry[];
  /** Entries left out because a symlink points outside the root (or is dangling). */
  hidden: number;
  /** True when a recursive listing stopped at MAX_ENTRIES. */
  truncated: boolean;
}

const MAX_ENTRIES = 5000;
const MAX_DEPTH = 12;
/** Not descended into by recursive listings (a root may well be a project folder). */
const SKIP_DIRS = /^(\..*|node_modules)$/;

const query = z.object({
  root: z.string().min(1),
  path: z.string().default(''),
  recursive: z.enum(['0', '1', 'true', 'false']).default('0').transform((v) => v === '1' || v === 'true'),
  /** Keep only files with this extension (without the dot), e.g. "safetensors". */
  ext: z.string().regex(/^[A-Za-z0-9.]+$/).optional(),
});

/**
 * Lists one directory (or, recursive, every file below it, skipping hidden folders and
 * node_modules) inside a configured root. Each entry is re-checked after following symlinks, so a
 * link pointing out of the root is never shown.
 */
export async function listFiles(roots: Roots, root: string, rel: string, opts: { recursive: boolean; ext?: string }): Promise<Listing> {
  const dir = await resolveInRoot(roots, root, rel);
  const realRoot = await realpath(roots[root]!);
  const st = await stat(dir.real);
  if (!st.isDirectory()) throw new ApiError(400, 'not_a_directory', `"${dir.rel}" in root "${root}" is a file, not a directory`);
  const out: Listing = { root, path: dir.rel, entries: [], hidden: 0, truncated: false };
  const suffix = opts.ext ? `.${opts.ext.toLowerCase()}` : undefined;

  const walk = async (abs: string, relDir: string, depth: number): Promise<void> => {
    const names = (await readdir(abs)).sort((a, b) => a.localeCompare(b));
    const subdirs: [string, string][] = [];
    for (const name of names) {
      if (out.truncated) return;
      const child = path.join(abs, name);
      const childRel = relDir ? `${relDir}/${name}` : name;
      let real: string;
      let s;
      try {
        real = await realpath(child);
        s = await stat(real);
      } catch {
        out.hidden++;
        continue;
      }
      if (!isInside(realRoot, real)) {
        out.hidden++;
        continue;
      }
      const entry: FileEntry = { name, path: childRel, type: s.isDirectory() ? 'dir' : 'file', size: s.isDirectory() ? 0 : s.size, mtime: s.mtime.toISOString() };
      if (entry.type === 'dir') subdirs.push([child, childRel]);
      if (opts.recursive && entry.type === 'dir') continue;
      if (suffix && entry.type === 'file' && !name.toLowerCase().endsWith(suffix)) continue;
      if (out.entries.length >= MAX_ENTRIES) {
        out.truncated = true;
        return;
      }
      out.entries.push(entry);
    }
    if (opts.recursive && depth < MAX_DEPTH) {
      for (const [abs2, rel2] of subdirs) if (!SKIP_DIRS.test(path.basename(rel2))) await walk(abs2, rel2, depth + 1);
    }
  };
  await walk(dir.real, dir.rel, 0);
  if (!opts.recursive) out.entries.sort((a, b) => (a.type === b.type ? 0 : a.type === 'dir' ? -1 : 1));
  return out;
}

const droppedQuery = z.object({
  name: z.string().min(1).max(400),
  /** The dropped file's size in bytes: a file in a root matches only with the same size. */
  size: z.coerce.number().int().min(0).optional(),
});

export interface DroppedFile {
  name: string;
  /** lora: adapter tensors; checkpoint: a model's weights; other: neither that loraflow recognises. */
  kind: 'lora' | 'checkpoint' | 'other';
  format?: string;
  architecture: string;
  /** The file was written by loraflow and carries its recipe. */
  hasRecipe: boolean;
  /** Files in the roots with this name (and size, when given): where the server can read it. */
  matches: { root: string; path: string }[];
}

/**
 * A file dropped on the editor, from its header alone (the page sends only the header bytes): what
 * it is, and where in the roots the server has a file of that name and size, so the editor can add
 * a load node for it (the browser does not know where the file lies on disk).
 */
async function droppedFile(roots: Roots, name: string, size: number | undefined, header: Awaited<ReturnType<typeof readUploadedHeader>>): Promise<DroppedFile> {
  const { kind, format, architecture } = modelKind(header.tensors, header.metadata);
  const matches: DroppedFile['matches'] = [];
  for (const root of Object.keys(roots)) {
    try {
      const listing = await listFiles(roots, root, '', { recursive: true, ext: 'safetensors' });
      for (const e of listing.entries) if (e.type === 'file' && e.name === name && (size === undefined || e.size === size)) matches.push({ root, path: e.path });
    } catch {
      // a root that does not exist (yet) holds nothing
    }
  }
  return { name, kind, ...(format ? { format } : {}), architecture, hasRecipe: header.metadata?.[PROVENANCE_KEY] !== undefined, matches };
}

export function filesRouter(roots: Roots): Router {
  const r = Router();
  r.get('/roots', (_req, res) => {
    res.json({ roots: Object.entries(roots).map(([name, dir]) => ({ name, dir })) });
  });
  r.get('/files', async (req, res) => {
    const q = parseOr400(query, req.query, 'query');
    res.json(await listFiles(roots, q.root, q.path, { recursive: q.recursive, ext: q.ext }));
  });
  r.post('/files/dropped', async (req, res) => {
    const q = parseOr400(droppedQuery, req.query, 'query');
    const name = q.name.replace(/^.*[\\/]/, '');
    let header;
    try {
      header = await readUploadedHeader(req, name);
    } finally {
      if (!req.complete) {
        // only the header matters: answer, then drop the connection instead of reading the rest
        res.set('Connection', 'close');
        res.on('finish', () => req.destroy());
      }
    }
    res.json(await droppedFile(roots, name, q.size, header));
  });
  return r;
}
