// Worker bootstrap for the compute pool: registers tsx (Node 20 ignores `--import tsx` in a
// Worker's execArgv), then loads the TypeScript worker. Plain JS because it runs before tsx.
const { register } = await import('tsx/esm/api');
register();
await import(new URL('./compute-worker.ts', import.meta.url).href);
