// Plain-JS bootstrap for test/backend.worker.ts: Node 20 ignores `--import tsx` in a Worker's
// execArgv, so tsx is registered here before the TypeScript worker module is imported.
import { register } from 'tsx/esm/api';

register();
await import(new URL('./backend.worker.ts', import.meta.url).href);
