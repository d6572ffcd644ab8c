import { existsSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { LoraflowError } from '../errors.ts';

/**
 * Model roots: file-path params are resolved against the directory configured for their kind
 * (`loras`, `checkpoints`, `output`, …), the current directory when the kind is not configured.
 * A kind may have several directories: a relative path resolves against the first, an absolute
 * path is accepted when it lies inside any of them. Nothing may escape its root, neither with `..`
 * nor through a symbolic link (the nearest existing ancestor is resolved before the check).
 */

export type RootsConfig = Readonly<Record<string, string | readonly string[]>>;

export class PathEscapeError extends LoraflowError {
  constructor(
    readonly value: string,
    readonly kind: string,
    readonly roots: readonly string[],
  ) {
    super('input', 'PATH_ESCAPE', `path "${value}" is outside the ${kind} root (${roots.join(', ')}); use a path inside it or configure the root (--root ${kind}=DIR)`);
    this.name = 'PathEscapeError';
  }
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** The real location of `path`, following links in the part of it that exists. */
function realLocation(path: string): string {
  let existing = path;
  const tail: string[] = [];
  while (!existsSync(existing)) {
    const parent = dirname(existing);
    if (parent === existing) return path;
    tail.unshift(existing.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
    existing = parent;
  }
  return resolve(realpathSync(existing), ...tail);
}

export function rootsFor(roots: RootsConfig, kind: string, cwd: string): string[] {
  const r = roots[kind];
  const list = r === undefined ? [cwd] : typeof r === 'string' ? [r] : [...r];
  return list.map((d) => resolve(cwd, d));
}

export type PathResolver = (value: string, kind: string) => string;

export function createPathResolver(roots: RootsConfig = {}, cwd: string = process.cwd()): PathResolver {
  return (value, kind) => {
    if (typeof value !== 'string' || value.length === 0) throw new Error(`empty ${kind} path`);
    if (value.includes('\0')) throw new Error(`${kind} path contains a NUL byte`);
    const dirs = rootsFor(roots, kind, cwd);
    const candidates = isAbsolute(value) ? [resolve(value)] : [resolve(dirs[0]!, value)];
    for (const p of candidates) {
      const real = realLocation(p);
      if (dirs.some((d) => inside(d, p) && inside(realLocation(d), real))) return p;
    }
    throw new PathEscapeError(value, kind, dirs);
  };
}
