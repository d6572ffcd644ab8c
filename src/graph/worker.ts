import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { RunEventListener } from './events.ts';
import type { RunResult } from './execute.ts';
import type { RootsConfig } from './roots.ts';
import type { FromWorker, ToWorker, WorkerData } from './worker-protocol.ts';

/**
 * Runs recipes in a worker_threads Worker, so heavy math never blocks the caller's event loop
 * (the server stays responsive; progress and cancel keep flowing). Events are posted back as they
 * happen; `cancel()` aborts the run's signal inside the worker. One `GraphWorker` runs its recipes
 * one after another and keeps its result cache between them; `runRecipeInWorker` is the one-shot form.
 */

export interface GraphWorkerOptions {
  /** Module exporting `registry` (NodeRegistry) and optionally `setup(options)`: a path or URL. */
  nodesModule: string | URL;
  /** Given to the module's `setup` before the first run. */
  setup?: unknown;
}

export interface WorkerRunOptions {
  overrides?: Record<string, unknown>;
  roots?: RootsConfig;
  cwd?: string;
  runId?: string;
  dryRun?: boolean;
  progressIntervalMs?: number;
  tempRoot?: string;
  onEvent?: RunEventListener;
  /** Cancels the run when aborted (same as calling `cancel()`). */
  signal?: AbortSignal;
}

export interface RunHandle {
  runId: string;
  result: Promise<RunResult>;
  cancel(): void;
}

const ENTRY = new URL('./worker-entry.ts', import.meta.url);
const BOOT = new URL('./worker-boot.mjs', import.meta.url);

function moduleUrl(m: string | URL): string {
  if (m instanceof URL) return m.href;
  if (/^[a-z]+:/i.test(m)) return m;
  return new URL(m, `file://${process.cwd()}/`).href;
}

function failed(runId: string, message: string): RunResult {
  return { runId, status: 'error', ms: 0, outputs: {}, written: [], executed: [], cached: [], error: { errorName: 'WorkerError', fault: 'failure', message } };
}

export class GraphWorker {
  private readonly worker: Worker;
  private readonly runs = new Map<string, { resolve: (r: RunResult) => void; onEvent?: RunEventListener }>();
  private dead: string | undefined;

  constructor(options: GraphWorkerOptions) {
    const data: WorkerData = { entry: ENTRY.href, nodesModule: moduleUrl(options.nodesModule), setup: options.setup };
    // TypeScript sources load through tsx, registered by the bootstrap (see worker-boot.mjs).
    this.worker = new Worker(BOOT, { workerData: data });
    this.worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    this.worker.on('error', (e) => this.fail(`worker failed: ${e.message}`));
    this.worker.on('exit', (code) => this.fail(`worker exited (code ${code})`));
  }

  run(recipe: unknown, options: WorkerRunOptions = {}): RunHandle {
    const runId = options.runId ?? randomUUID();
    const { onEvent, signal, ...rest } = options;
    const result = new Promise<RunResult>((resolve) => {
      if (this.dead) return resolve(failed(runId, this.dead));
      this.runs.set(runId, { resolve, onEvent });
      this.post({ type: 'run', recipe, request: { ...rest, runId } });
    });
    const cancel = () => this.post({ type: 'cancel', runId });
    if (signal) {
      if (signal.aborted) cancel();
      else signal.addEventListener('abort', cancel, { once: true });
      void result.then(() => signal.removeEventListener('abort', cancel));
    }
    return { runId, result, cancel };
  }

  async close(): Promise<void> {
    this.dead ??= 'worker closed';
    await this.worker.terminate();
  }

  private post(msg: ToWorker): void {
    if (!this.dead) this.worker.postMessage(msg);
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === 'fatal') return this.fail(msg.message);
    const run = this.runs.get(msg.runId);
    if (!run) return;
    if (msg.type === 'event') run.onEvent?.(msg.event);
    else {
      this.runs.delete(msg.runId);
      run.resolve(msg.result);
    }
  }

  private fail(message: string): void {
    this.dead ??= message;
    for (const [runId, run] of this.runs) run.resolve(failed(runId, message));
    this.runs.clear();
  }
}

/** Runs one recipe in a fresh worker, which is closed when the run ends. */
export function runRecipeInWorker(recipe: unknown, options: WorkerRunOptions & GraphWorkerOptions): RunHandle {
  const { nodesModule, setup, ...runOptions } = options;
  const worker = new GraphWorker({ nodesModule, setup });
  const handle = worker.run(recipe, runOptions);
  return { ...handle, result: handle.result.finally(() => worker.close()) };
}
