import type { RunEvent } from './events.ts';
import type { RunResult } from './execute.ts';
import type { RootsConfig } from './roots.ts';

/** Messages between `GraphWorker` (main thread) and `worker-entry.ts` (the worker thread). */

export interface WorkerData {
  /** URL of worker-entry (imported by worker-boot.mjs after registering tsx for .ts files). */
  entry: string;
  /** URL of a module exporting `registry` (a NodeRegistry) and optionally `setup(options)`. */
  nodesModule: string;
  /** Passed to the module's `setup` once, before the first run (e.g. `{ backend: 'wasm' }`). */
  setup?: unknown;
}

/** The JSON-safe subset of RunOptions that crosses the thread boundary. */
export interface WorkerRunRequest {
  overrides?: Record<string, unknown>;
  roots?: RootsConfig;
  cwd?: string;
  runId: string;
  dryRun?: boolean;
  progressIntervalMs?: number;
  tempRoot?: string;
}

export type ToWorker = { type: 'run'; recipe: unknown; request: WorkerRunRequest } | { type: 'cancel'; runId: string };

export type FromWorker =
  | { type: 'event'; runId: string; event: RunEvent }
  | { type: 'result'; runId: string; result: RunResult }
  | { type: 'fatal'; message: string; stack?: string };
