import { randomUUID } from 'node:crypto';
import { ApiError } from './errors.ts';
import type { EventHub, EventInput } from './event-hub.ts';
import type { RunJob, RunRecord } from './run-queue.ts';

/** Events after which a run's log is complete (`run.invalid`: the worker's own validation refused it). */
export const TERMINAL = new Set(['run.success', 'run.error', 'run.cancelled', 'run.invalid']);

/**
 * What both run queues (in-process, Redis) keep alike: the run records by id in submission order,
 * lookup and the newest-first list the API serves, and events stamped with their run and published.
 * Where runs execute, and so what "queued" and "running" mean, is each queue's own.
 */
export abstract class RunRecords {
  protected readonly runs = new Map<string, RunRecord>();

  protected constructor(protected readonly hub: EventHub) {}

  get(id: string): RunRecord {
    const r = this.runs.get(id);
    if (!r) throw new ApiError(404, 'unknown_run', `no run with id "${id}"`);
    return r;
  }

  /** What the run was submitted with; a queue whose records may lack it (Redis) looks further. */
  async job(id: string): Promise<RunJob> {
    const r = this.get(id);
    return { recipe: r.recipe, overrides: r.overrides };
  }

  /** Newest first. */
  list(): RunRecord[] {
    return [...this.runs.values()].reverse();
  }

  /** A new queued record of `job`, kept under a fresh id. */
  protected newRecord(job: RunJob): RunRecord {
    const rec: RunRecord = {
      id: randomUUID(), status: 'queued', createdAt: new Date().toISOString(), recipe: job.recipe, overrides: job.overrides, ...(job.sweep ? { sweep: job.sweep } : {}), ...(job.rerunOf ? { rerunOf: job.rerunOf } : {}), events: [],
    };
    this.runs.set(rec.id, rec);
    return rec;
  }

  /** The run.queued event of a new record at its place in the queue, then the queue's status. */
  protected announceQueued(rec: RunRecord, position: number): void {
    this.record(rec, { type: 'run.queued', position, ...(rec.sweep ? { sweep: rec.sweep } : {}) });
    this.publishStatus();
  }

  protected record(r: RunRecord, e: EventInput): void {
    r.events.push(this.hub.publish({ ...e, runId: r.id }));
  }

  protected abstract publishStatus(): void;
}
