import { realpathSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { inputError } from './errors.ts';

/**
 * What a path names on disk, so that two spellings of one file compare equal: an existing file is
 * its device and inode (every alias — a symlinked directory, a relative symlink, a hard link, `..`
 * — lands on the same pair); a file still to be written is its real parent directory plus its name.
 * Path strings alone cannot protect an input from being written over.
 */
export type FileIdentity = string;

/** `stat` that reports a missing path as undefined and every other failure (a link loop, …) by name. */
function statOrUndefined(path: string, what: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return undefined;
    if (err.code === 'ELOOP') throw inputError('SYMLINK_LOOP', `${path}: the ${what} path runs into a loop of symbolic links`);
    if (err.code === 'ENOTDIR') throw inputError('NOT_A_DIRECTORY', `${path}: a part of the ${what} path is a file, not a directory`);
    throw inputError('BAD_PATH', `${path}: cannot use the ${what} path (${err.code ?? err.message})`);
  }
}

export function fileIdentity(path: string, what = 'file'): FileIdentity {
  const abs = resolve(path);
  const st = statOrUndefined(abs, what);
  if (st) return `inode:${st.dev}:${st.ino}`;
  // A new file: the parent may itself be missing (it will be refused when written) or an alias.
  const parent = dirname(abs);
  let realParent = parent;
  if (statOrUndefined(parent, what)) realParent = realpathSync(parent);
  return `path:${join(realParent, basename(abs))}`;
}

/**
 * Why an output file cannot be written at `resolved` (spelt `given` by the user), or undefined
 * when it can: the name ends in a separator, or it is (or resolves to) a directory.
 */
export function outputPathProblem(given: string, resolved: string): string | undefined {
  if (/[\\/]$/.test(given) || /(^|[\\/])\.{1,2}$/.test(given)) return `"${given}" names a directory; give the output a file name`;
  const st = statOrUndefined(resolved, 'output');
  if (st?.isDirectory()) return `${resolved} is a directory; give the output a file name inside it`;
  return undefined;
}
