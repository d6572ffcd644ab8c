/** A compute pool worker: starts the backend it is told to use, then runs chunk tasks as they come. */
import { parentPort, workerData } from 'node:worker_threads';
import { useBackend, type BackendChoice } from '../tensor/backend.ts';
import { runChunk, type ChunkTask } from './chunk-task.ts';

const port = parentPort!;
try {
  const backend = await useBackend((workerData as { backend: BackendChoice }).backend);
  port.on('message', async (msg: { id: number; task: ChunkTask }) => {
    try {
      port.postMessage({ id: msg.id, result: await runChunk(msg.task) });
    } catch (e) {
      port.postMessage({ id: msg.id, error: (e as Error).message });
    }
  });
  port.postMessage({ ready: backend });
} catch (e) {
  port.postMessage({ failed: (e as Error).message });
}
