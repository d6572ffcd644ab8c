import { hostname } from 'node:os';
import { pathToFileURL } from 'node:url';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { GraphWorker, type RootsConfig } from '../src/graph/index.ts';
import { DEFAULT_NODES_MODULE, forwardEvent, outcomeOf } from './engine.ts';
import type { EventInput } from './event-hub.ts';
import { DEFAULT_QUEUE_NAME, cancelChannel, cancelKey, connectRedis, type QueueJobData, type QueueJobResult, type QueueProgress } from './queue-protocol.ts';

/**
 * `loraflow worker`: takes runs from the BullMQ queue and executes them, each in a graph worker
 * thread (so the heavy math never blocks the event loop that renews the job's lock and streams
 * its events), up to `concurrency` at a time. Every run event goes back as a progress update of
 * the job; a cancel published by a server aborts the run. Outputs are staged and renamed only when
 * a run succeeds, so a worker killed mid-run leaves nothing under the final name: its job's lock
 * expires, another worker's stall check puts it back in the queue (once; a second stall fails it
 * with BullMQ's reason) and the run starts again there.
 */

export interface QueueWorkerOptions {
  url: string;
  queueName?: string;
  /** Shown in the editor next to each run (default HOST:PID). */
  name?: string;
  concurrency?: number;
  roots: RootsConfig;
  /** What relative roots resolve against. */
  cwd: string;
  nodesModule?: string | URL;
  backend?: string;
  /** How long a job stays locked without renewal before other workers treat it as stalled (default 30 s). */
  lockMs?: number;
  log?: (line: string) => void;
}

export interface RunningQueueWorker {
  name: string;
  /** Stops taking jobs and waits for the running ones to end. */
  close(): Promise<void>;
}

function toUrl(m: string | URL): string {
  if (m instanceof URL) return m.href;
  return /^[a-z]+:/i.test(m) ? m : pathToFileURL(m).href;
}

const cancelled = (why: string) => Object.assign(new Error(why), { name: 'AbortError' });

/** Graph worker threads, one per concurrent run, each keeping its result cache between runs. */
class ThreadPool {
  private readonly idle: GraphWorker[] = [];
  private readonly all = new Set<GraphWorker>();
  constructor(private readonly make: () => GraphWorker) {}

  acquire(): GraphWorker {
    const w = this.idle.pop() ?? this.make();
    this.all.add(w);
    return w;
  }

  release(w: GraphWorker, dead: boolean): void {
    if (dead) {
      this.all.delete(w);
      void w.close();
    } else this.idle.push(w);
  }

  async close(): Promise<void> {
    await Promise.all([...this.all].map((w) => w.close()));
  }
}

export async function startQueueWorker(opts: QueueWorkerOptions): Promise<RunningQueueWorker> {
  const queueName = opts.queueName ?? DEFAULT_QUEUE_NAME;
  const name = opts.name ?? `${hostname()}:${process.pid}`;
  const lockMs = opts.lockMs ?? 30_000;
  const log = opts.log ?? (() => undefined);
  const commands = await connectRedis(opts.url, 'loraflow-worker');
  const subscriber = commands.duplicate();
  subscriber.on('error', (e: Error) => log(`cancel channel: ${e.message} (reconnecting)`));
  const controllers = new Map<string, AbortController>();
  subscriber.on('message', (_channel: string, runId: string) => controllers.get(runId)?.abort(cancelled('cancelled by the user')));
  await subscriber.subscribe(cancelChannel(queueName));
  const nodesModule = toUrl(opts.nodesModule ?? DEFAULT_NODES_MODULE);
  const pool = new ThreadPool(() => new GraphWorker({ nodesModule, setup: opts.backend ? { backend: opts.backend } : undefined }));

  const processJob = async (job: Job<QueueJobData>, _token?: string, signal?: AbortSignal): Promise<QueueJobResult> => {
    const runId = job.id!;
    const attempt = Math.max(1, job.attemptsStarted);
    const controller = new AbortController();
    controllers.set(runId, controller);
    signal?.addEventListener('abort', () => controller.abort(cancelled('cancelled by the worker')), { once: true });
    // Progress updates keep their order (one after another); a failed one is logged, never fatal to the run.
    let sent: Promise<unknown> = Promise.resolve();
    const send = (event: EventInput) => {
      const p: QueueProgress = { worker: name, attempt, event };
      sent = sent.then(() => job.updateProgress(p as unknown as object)).catch((e: Error) => log(`run ${runId}: event not sent: ${e.message}`));
    };
    send({ type: 'run.assigned' });
    log(`run ${runId}: started${attempt > 1 ? ` (attempt ${attempt})` : ''}${job.data.sweep ? ` (sweep point ${job.data.sweep.index}/${job.data.sweep.total})` : ''}`);
    if (await commands.exists(cancelKey(queueName, runId))) controller.abort(cancelled('cancelled by the user'));
    const thread = pool.acquire();
    let dead = false;
    try {
      const handle = thread.run(job.data.recipe, { runId, overrides: job.data.overrides, roots: opts.roots, cwd: opts.cwd, signal: controller.signal, onEvent: (e) => send(forwardEvent(e)) });
      const result = await handle.result;
      dead = result.error?.errorName === 'WorkerError';
      const outcome = outcomeOf(result);
      if (dead) send({ type: 'run.error', message: outcome.error?.message ?? 'worker thread failed', errorType: 'executor_failed' });
      await sent;
      log(`run ${runId}: ${outcome.status}${outcome.error ? `: ${outcome.error.message}` : ''}`);
      if (outcome.status === 'success') return { status: 'success', worker: name, result: outcome.result };
      // Not worth retrying: the same recipe on the same files fails the same way (and a cancel is final).
      throw new UnrecoverableError(outcome.status === 'cancelled' ? 'cancelled' : (outcome.error?.message ?? 'run failed'));
    } finally {
      controllers.delete(runId);
      pool.release(thread, dead);
    }
  };

  const worker = new Worker<QueueJobData, QueueJobResult>(queueName, processJob, {
    connection: { url: opts.url },
    name,
    concurrency: opts.concurrency ?? 1,
    lockDuration: lockMs,
    // Check for others' stalled jobs twice per lock period: a dead worker's run restarts within about one lock period.
    stalledInterval: Math.max(500, Math.round(lockMs / 2)),
    maxStalledCount: 1,
  });
  worker.on('error', (e) => log(`queue error: ${e.message}`));
  await worker.waitUntilReady();

  return {
    name,
    async close() {
      await worker.close();
      await pool.close();
      subscriber.disconnect();
      commands.disconnect();
    },
  };
}
