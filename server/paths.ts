import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { ApiError } from './errors.ts';

/** Configured model roots: name → absolute directory (loras, checkpoints, output, …). */
export type Roots = Readonly<Record<string, string>>;

/**
 * Checks a client-supplied relative path lexically: no absolute paths (POSIX or Windows style),
 * no `..` segments, no NUL bytes, no backslashes (a Windows separator smuggled into a name).
 * Returns the normalised segments, empty for the root itself.
 */
export function relativeSegments(rel: string): string[] {
  if (rel.includes('\0')) throw new ApiError(400, 'bad_path', 'path contains a NUL byte');
  if (rel.includes('\\')) throw new ApiError(400, 'bad_path', `path "${rel}" contains a backslash; use "/"`);
  if (rel.startsWith('/') || /^[A-Za-z]:/.test(rel)) throw new ApiError(400, 'bad_path', `path "${rel}" is absolute; give a path relative to the root`);
  const segments = rel.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new ApiError(400, 'bad_path', `path "${rel}" contains ".."`);
  return segments;
}

export function rootDir(roots: Roots, name: string): string {
  const dir = Object.hasOwn(roots, name) ? roots[name] : undefined;
  if (dir === undefined) {
    throw new ApiError(404, 'unknown_root', `no root named "${name}"; configured roots: ${Object.keys(roots).join(', ') || '(none)'}`);
  }
  return dir;
}

export function isInside(parent: string, child: string): boolean {
  const r = path.relative(parent, child);
  return r === '' || (!r.startsWith('..') && !path.isAbsolute(r));
}

export interface ResolvedPath {
  /** The lexical location under the root (what the user sees). */
  path: string;
  /** The same file with every symlink followed; proven to lie inside the root's real path. */
  real: string;
  /** The segments relative to the root, joined with "/". */
  rel: string;
}

/**
 * Resolves `rel` inside the root `name` and proves, after following symlinks, that it stays inside:
 * a link in the root pointing at /etc is refused like `../../etc`. A path that does not exist is a 404.
 */
export async function resolveInRoot(roots: Roots, name: string, rel: string): Promise<ResolvedPath> {
  const dir = rootDir(roots, name);
  const segments = relativeSegments(rel);
  const lexical = path.join(dir, ...segments);
  const realRoot = await realOrThrow(dir, `root "${name}" (${dir})`);
  const real = await realOrThrow(lexical, `"${segments.join('/')}" in root "${name}"`);
  if (!isInside(realRoot, real)) {
    throw new ApiError(403, 'path_escapes_root', `"${segments.join('/')}" resolves outside root "${name}"`);
  }
  return { path: lexical, real, rel: segments.join('/') };
}

async function realOrThrow(p: string, label: string): Promise<string> {
  try {
    return await realpath(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ApiError(404, 'not_found', `${label} does not exist`);
    if (code === 'ELOOP') throw new ApiError(400, 'bad_path', `${label} is a symlink loop`);
    if (code === 'EACCES' || code === 'EPERM') throw new ApiError(403, 'permission_denied', `${label}: permission denied`);
    throw e;
  }
}
