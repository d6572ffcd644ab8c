/** Worker side of `inspectOffThread`: inspects one file and posts the result or the error back. */
import { parentPort, workerData } from 'node:worker_threads';
import { SafetensorsError } from '../safetensors/errors.ts';
import { inspectFile } from './inspect-file.ts';
import type { InspectReply, InspectRequest } from './inspect-off-thread.ts';

const { path, window } = workerData as InspectRequest;
const post = (m: InspectReply) => parentPort!.postMessage(m);
try {
  post({ ok: true, inspection: await inspectFile(path, window) });
} catch (e) {
  const err = e as Error;
  post(e instanceof SafetensorsError
    ? { ok: false, error: { safetensors: true, code: e.code, file: e.file, tensor: e.tensor, message: e.message } }
    : { ok: false, error: { safetensors: false, message: err.message ?? String(e) } });
}
