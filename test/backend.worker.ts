/**
 * Runs inside a worker_threads Worker (test/backend.test.ts): starts the backend named in
 * workerData, multiplies two small matrices there, and reports what happened.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { activeBackend, type BackendChoice, useBackend } from '../src/tensor/backend.ts';
import { matmul } from '../src/tensor/linalg.ts';

const { choice } = workerData as { choice: BackendChoice };
try {
  const backend = await useBackend(choice);
  const product = await matmul(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], Float32Array.from([1, 0, 0, 1, 1, 1]), [3, 2]);
  parentPort?.postMessage({ ok: true, backend, active: activeBackend(), product: Array.from(product) });
} catch (error) {
  parentPort?.postMessage({ ok: false, error: error instanceof Error ? error.message : String(error) });
}
