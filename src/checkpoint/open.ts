/**
 * Opens a base checkpoint in whichever form it is: a folder (or its index, or diffusers' one
 * weights file beside its config.json) as a diffusers model folder, a file starting with the GGUF
 * magic as GGUF, anything else as a safetensors file (whose reader says what is wrong with it).
 */
import { open as openFile, stat } from 'node:fs/promises';
import { DiffusersFolderReader, locateModelFolder } from './diffusers-folder.ts';
import type { CheckpointReader } from './form.ts';
import { GgufReader } from './gguf-file.ts';
import { SafetensorsReader } from './safetensors-file.ts';

const GGUF_MAGIC = 'GGUF';

async function startsWithGguf(path: string): Promise<boolean> {
  const handle = await openFile(path, 'r').catch(() => undefined);
  if (!handle) return false;
  try {
    const buf = new Uint8Array(4);
    const { bytesRead } = await handle.read(buf, 0, 4, 0);
    return bytesRead === 4 && String.fromCharCode(...buf) === GGUF_MAGIC;
  } finally {
    await handle.close();
  }
}

export async function openCheckpoint(path: string): Promise<CheckpointReader> {
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory() || path.endsWith('.index.json') || (st?.isFile() && (await locateModelFolder(path))?.single)) return DiffusersFolderReader.open(path);
  if (st?.isFile() && (path.toLowerCase().endsWith('.gguf') || (await startsWithGguf(path)))) return GgufReader.open(path);
  return SafetensorsReader.open(path);
}
