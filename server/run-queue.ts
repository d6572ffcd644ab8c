import { ApiError } from './errors.ts';
import type { EventHub, EventInput, ServerEvent } from './event-hub.ts';
import { RunRecords, TERMINAL } from './run-records.ts';

export type RunStatus = 'queued' | 'running' | 'success' | 'error' | 'cancelled';

/** Which point of which sweep a run is (sweeps are submitted as one run per point). */
export interface SweepTag {
  id: string;
  /** 1-based. */
  index: number;
  total: number;
  label: string;
}

/** What one run needs: the recipe as submitted and the overrides to apply to its exposed params. */
export interface RunJob {
  recipe: unknown;
  overrides: Record<string, unknown>;
  sweep?: SweepTag;
  /** The run this one repeats (POST /api/runs/:id/rerun). */
  rerunOf?: string;
}

/** What an executor reports when a run ends (events carry the details as they happen). */
export interface RunOutcome {
  status: 'success' | 'error' | 'cancelled';
  /** What the run produced: output summaries per target node, files written, nodes run and cached, timing. */
  result?: unknown;
  error?: { message: string; nodeId?: string; [k: string]: unknown };
}

/**
 * Runs one job to the end. It must report progress through `emit` (run/node events without seq;
 * the queue stamps them) and stop soon after `signal` aborts, returning status 'cancelled'.
 */
export type Executor = (runId: string, job: RunJob, emit: (e: EventInput) => void, signal: AbortSignal) => Promise<RunOutcome>;

export interface RunRecord {
  id: string;
  status: RunStatus;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  recipe: unknown;
  overrides: Record<string, unknown>;
  /** Who executes it: "in-process" for the server's own queue, the worker's name with a Redis queue. */
  worker?: string;
  /** How many times a worker started it (more than 1: a worker died and the run was retried). */
  attempts?: number;
  sweep?: SweepTag;
  rerunOf?: string;
  /** This run's events in order (the same objects the WebSocket sent, with their server seq). */
  events: ServerEvent[];
  result?: unknown;
  error?: RunOutcome['error'];
}

/** Only these fields go in list views; full event logs come from GET /api/runs/:id. */
export function runSummary(r: RunRecord) {
  const { events, recipe: _recipe, ...rest } = r;
  return { ...rest, eventCount: events.length, lastSeq: events.at(-1)?.seq ?? null };
}

/**
 * What the routes, the WebSocket and the server need of a run queue: the in-process one below, or
 * the Redis one (redis-queue.ts) whose runs execute on `loraflow worker` processes.
 */
export interface Runs {
  /** "in-process" or "redis". */
  readonly kind: string;
  submit(job: RunJob): Promise<RunRecord>;
  get(id: string): RunRecord;
  /** The recipe and overrides a run was submitted with (the history's "Open recipe" and "Re-run"). */
  job(id: string): Promise<RunJob>;
  list(): RunRecord[];
  cancel(id: string): Promise<RunRecord>;
  readonly queueLength: number;
  /** The first running run (what older clients read as "running"). */
  readonly runningId: string | undefined;
  readonly runningIds: string[];
  close(): Promise<void>;
  /** Resolves when nothing is queued or running (tests). */
  idle(): Promise<void>;
}

/**
 * A FIFO of runs executed strictly one at a time (LoRA merges want all the machine's memory), with
 * cancel by id for both the queued and the running job, and a bounded history of finished runs.
 */
export class RunQueue extends RunRecords implements Runs {
  readonly kind = 'in-process';
  private readonly pending: string[] = [];
  private current?: { id: string; abort: AbortController; done: Promise<void> };

  constructor(
    hub: EventHub,
    private readonly execute: Executor,
    private readonly historyLimit = 200,
  ) {
    super(hub);
  }

  async submit(job: RunJob): Promise<RunRecord> {
    const rec = this.newRecord(job);
    this.pending.push(rec.id);
    this.announceQueued(rec, this.pending.length);
    this.pump();
    return rec;
  }

  get queueLength(): number {
    return this.pending.length;
  }

  get runningId(): string | undefined {
    return this.current?.id;
  }

  get runningIds(): string[] {
    return this.current ? [this.current.id] : [];
  }

  /** Cancels a queued run at once, or asks the running one to stop; finished runs are a 409. */
  async cancel(id: string): Promise<RunRecord> {
    return this.cancelNow(id);
  }

  private cancelNow(id: string): RunRecord {
    const r = this.get(id);
    if (r.status === 'queued') {
      this.pending.splice(this.pending.indexOf(id), 1);
      r.status = 'cancelled';
      r.finishedAt = new Date().toISOString();
      this.record(r, { type: 'run.cancelled', reason: 'cancelled while queued' });
      this.publishStatus();
      return r;
    }
    if (r.status === 'running' && this.current?.id === id) {
      this.current.abort.abort(Object.assign(new Error('cancelled by the user'), { name: 'AbortError' }));
      return r;
    }
    throw new ApiError(409, 'run_finished', `run "${id}" already finished with status ${r.status}`);
  }

  /** Cancels everything and waits for the running job to stop (server shutdown). */
  async close(): Promise<void> {
    for (const id of [...this.pending]) this.cancelNow(id);
    const cur = this.current;
    if (cur) {
      cur.abort.abort(Object.assign(new Error('server shutting down'), { name: 'AbortError' }));
      await cur.done;
    }
  }

  /** Resolves when nothing is queued or running (tests). */
  async idle(): Promise<void> {
    while (this.current) await this.current.done;
  }

  protected publishStatus(): void {
    this.hub.publish({ type: 'status', queueRemaining: this.pending.length, running: this.current?.id ?? null });
  }

  private pump(): void {
    if (this.current) return;
    const id = this.pending.shift();
    if (id === undefined) return;
    const r = this.runs.get(id)!;
    const abort = new AbortController();
    r.status = 'running';
    r.startedAt = new Date().toISOString();
    r.worker = 'in-process';
    r.attempts = 1;
    const done = this.runOne(r, abort.signal).finally(() => {
      this.current = undefined;
      this.trimHistory();
      this.publishStatus();
      this.pump();
    });
    this.current = { id, abort, done };
    this.publishStatus();
  }

  private async runOne(r: RunRecord, signal: AbortSignal): Promise<void> {
    let outcome: RunOutcome;
    try {
      outcome = await this.execute(r.id, { recipe: r.recipe, overrides: r.overrides }, (e) => this.record(r, e), signal);
    } catch (e) {
      // An executor that throws (worker crashed, engine bug) still ends the run with an event.
      const message = e instanceof Error ? e.message : String(e);
      outcome = { status: signal.aborted ? 'cancelled' : 'error', error: { message } };
      this.record(r, signal.aborted ? { type: 'run.cancelled', reason: message } : { type: 'run.error', message, errorType: 'executor_failed' });
    }
    // Clients wait for a terminal event; make sure there is exactly one whatever the executor did.
    const terminal = `run.${outcome.status}`;
    if (!r.events.some((e) => TERMINAL.has(e.type))) {
      this.record(r, outcome.status === 'error' ? { type: terminal, ...outcome.error, message: outcome.error?.message ?? 'run failed' } : { type: terminal });
    }
    r.status = outcome.status;
    r.result = outcome.result;
    r.error = outcome.error;
    r.finishedAt = new Date().toISOString();
  }

  private trimHistory(): void {
    const finished = [...this.runs.values()].filter((r) => r.status !== 'queued' && r.status !== 'running');
    for (const r of finished.slice(0, Math.max(0, finished.length - this.historyLimit))) this.runs.delete(r.id);
  }
}
