import { readFileSync } from 'node:fs';

/** loraflow's version, from package.json (recorded in run provenance). */
export const LORAFLOW_VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
