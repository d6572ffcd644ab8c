#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so a clean clone needs no build step.
import { register } from 'tsx/esm/api';

register();
// `loraflow … | head`: a reader that stops early is not an error worth a stack trace
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
