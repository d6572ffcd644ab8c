// Worker bootstrap: registers tsx (so the TypeScript entry and the node package load as they do
// everywhere else in loraflow), then imports the entry. Plain JS because it runs before tsx is
// active. Node 20 ignores `--import tsx` in a Worker's execArgv for the worker's own modules, so
// the hook is registered here instead.
import { workerData } from 'node:worker_threads';

const entry = workerData.entry;
if (entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(entry);
