/**
 * Inspection that never blocks the caller's event loop on a huge header. A header of a few MiB
 * parses in milliseconds and is read in place; a larger one (a hostile or absurd file can declare
 * 100 MB of JSON and a million tensors) is parsed in a worker thread, one such worker at a time,
 * so the server keeps answering and several big requests cannot pile their peaks of memory up.
 */
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { SafetensorsError, type SafetensorsErrorCode } from '../safetensors/errors.ts';
import type { SummaryWindow } from '../safetensors/summary.ts';
import { inspectFile, type Inspection } from './inspect-file.ts';

/** Headers up to this size are parsed on the calling thread. */
export const INLINE_HEADER_BYTES = 4 << 20;

export interface InspectRequest {
  entry: string;
  path: string;
  window: SummaryWindow;
}

export type InspectReply =
  | { ok: true; inspection: Inspection }
  | { ok: false; error: { safetensors: true; code: SafetensorsErrorCode; file: string; tensor?: string; message: string } | { safetensors: false; message: string } };

const BOOT = new URL('../graph/worker-boot.mjs', import.meta.url);
const ENTRY = new URL('./inspect-worker.ts', import.meta.url);
let queue: Promise<unknown> = Promise.resolve();

export async function inspectOffThread(path: string, window: SummaryWindow = {}): Promise<Inspection> {
  if ((await declaredHeaderBytes(path)) <= INLINE_HEADER_BYTES) return inspectFile(path, window);
  const turn = queue.then(() => inWorker(path, window));
  queue = turn.catch(() => undefined);
  return turn;
}

/** The header length the file's first 8 bytes declare (0 when it cannot say; the inline path then reports why). */
async function declaredHeaderBytes(path: string): Promise<number> {
  try {
    const handle = await open(path, 'r');
    try {
      const first = new Uint8Array(8);
      const { bytesRead } = await handle.read(first, 0, 8, 0);
      return bytesRead === 8 ? Number(new DataView(first.buffer).getBigUint64(0, true)) : 0;
    } finally {
      await handle.close();
    }
  } catch {
    return 0;
  }
}

function inWorker(path: string, window: SummaryWindow): Promise<Inspection> {
  const request: InspectRequest = { entry: ENTRY.href, path, window };
  return new Promise((resolve, reject) => {
    const worker = new Worker(BOOT, { workerData: request });
    let settled = false;
    worker.once('message', (reply: InspectReply) => {
      settled = true;
      if (reply.ok) resolve(reply.inspection);
      else reject(rebuild(reply.error));
      void worker.terminate();
    });
    worker.once('error', (e) => {
      settled = true;
      reject(e);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`inspecting ${path}: the worker exited (code ${code})`));
    });
  });
}

function rebuild(error: Extract<InspectReply, { ok: false }>['error']): Error {
  if (!error.safetensors) return new Error(error.message);
  const e = new SafetensorsError(error.code, error.file, '', error.tensor);
  e.message = error.message;
  return e;
}
