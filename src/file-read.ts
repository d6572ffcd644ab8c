/**
 * Opening a file for reading and filling a buffer from it by position, as every reader of model
 * files does. Each reader keeps its own error type and codes: the helpers say what went wrong
 * (`fault`, `short`) and the reader makes the error of it.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';

/** Why a path cannot be opened for reading, in the codes the readers' errors share. */
export type OpenFault = 'NOT_FOUND' | 'NOT_A_FILE' | 'PERMISSION';

/** Opens a regular file read-only; a missing path, a folder or a refused permission goes to `fault`. */
export async function openForRead(path: string, fault: (code: OpenFault, detail: string) => Error): Promise<FileHandle> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw openError(e, fault);
  }
  if (!st.isFile()) throw fault('NOT_A_FILE', st.isDirectory() ? 'is a directory, not a file' : 'is not a regular file');
  try {
    return await open(path, 'r');
  } catch (e) {
    throw openError(e, fault);
  }
}

function openError(e: unknown, fault: (code: OpenFault, detail: string) => Error): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return fault('NOT_FOUND', 'no such file');
  if (code === 'EACCES' || code === 'EPERM') return fault('PERMISSION', 'permission denied');
  if (code === 'EISDIR') return fault('NOT_A_FILE', 'is a directory, not a file');
  return e as Error;
}

/** Fills `buf` from `position` with positional reads (one read is capped near 2 GB); `short(at)` is thrown where the file ends first. */
export async function fillBuffer(handle: FileHandle, buf: Uint8Array, position: number, short: (at: number) => Error): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await handle.read(buf, done, Math.min(1 << 30, buf.byteLength - done), position + done);
    if (bytesRead === 0) throw short(position + done);
    done += bytesRead;
  }
}
