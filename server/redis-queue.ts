import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { ApiError } from './errors.ts';
import type { EventHub } from './event-hub.ts';
import { CANCEL_TTL_S, DEFAULT_QUEUE_NAME, cancelChannel, cancelKey, connectRedis, type QueueJobData, type QueueJobResult, type QueueProgress } from './queue-protocol.ts';
import type { RunJob, RunRecord, RunStatus, Runs } from './run-queue.ts';
import { RunRecords, TERMINAL } from './run-records.ts';

/**
 * The server's run queue when runs execute on `loraflow worker` processes: each run is a BullMQ
 * job on Redis (its id the run id). The server keeps the same run records as the in-process queue,
 * built from what BullMQ streams back through Redis (QueueEvents): the job becoming active, the
 * workers' progress updates (each one a run event, tagged with the worker), completion, failure,
 * and stalls (a worker that stopped renewing its lock: killed, crashed or cut off). Cancel removes
 * a waiting job, or tells the worker holding it over Redis pub/sub.
 */

export interface RedisQueueOptions {
  /** redis://HOST:PORT */
  url: string;
  /** BullMQ queue name (default "loraflow-runs"): servers and workers sharing it share the runs. */
  name?: string;
  historyLimit?: number;
}

const FINISHED = new Set<RunStatus>(['success', 'error', 'cancelled']);

/** Per-run bookkeeping that is not part of the record the API returns. */
interface Tracking {
  /** The terminal event the worker sent for the current attempt, if any. */
  terminal?: string;
}

/** BullMQ's reasons, said so that a user knows what happened. */
function explainFailure(reason: string, worker: string | undefined): string {
  if (/stalled more than allowable limit/i.test(reason)) {
    return `the run was given up: the worker running it${worker ? ` (${worker})` : ''} stopped responding (killed, crashed or cut off from Redis) more often than allowed (${reason}); no output was written under its final name`;
  }
  return reason;
}

export class RedisRunQueue extends RunRecords implements Runs {
  readonly kind = 'redis';
  private readonly tracking = new Map<string, Tracking>();
  private closed = false;

  private constructor(
    hub: EventHub,
    private readonly queue: Queue,
    private readonly events: QueueEvents,
    private readonly commands: Redis,
    readonly queueName: string,
    private readonly historyLimit: number,
  ) {
    super(hub);
  }

  static async open(hub: EventHub, opts: RedisQueueOptions): Promise<RedisRunQueue> {
    const name = opts.name ?? DEFAULT_QUEUE_NAME;
    const commands = await connectRedis(opts.url, 'loraflow-server');
    // Read the event stream from where it is now, known before the reader starts: no event of a run submitted from here on can be missed.
    const last = (await commands.xrevrange(`bull:${name}:events`, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0';
    const queue = new Queue(name, { connection: { url: opts.url } });
    const events = new QueueEvents(name, { connection: { url: opts.url }, lastEventId: last });
    await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
    const q = new RedisRunQueue(hub, queue, events, commands, name, opts.historyLimit ?? 200);
    q.listen();
    await q.loadExisting();
    return q;
  }

  async submit(job: RunJob): Promise<RunRecord> {
    const rec = this.newRecord(job);
    const data: QueueJobData = { ...job, submittedAt: rec.createdAt };
    await this.queue.add('run', data, { jobId: rec.id, attempts: 1, removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } });
    this.announceQueued(rec, this.queueLength);
    return rec;
  }

  /** A run this server only listed (submitted elsewhere, or before a restart) may know its recipe from its job on Redis alone. */
  override async job(id: string): Promise<RunJob> {
    const r = this.get(id);
    if (r.recipe === undefined) {
      const job = await this.queue.getJob(id);
      if (job) this.fill(r, job);
    }
    return { recipe: r.recipe, overrides: r.overrides };
  }

  get queueLength(): number {
    return [...this.runs.values()].filter((r) => r.status === 'queued').length;
  }

  get runningIds(): string[] {
    return [...this.runs.values()].filter((r) => r.status === 'running').map((r) => r.id);
  }

  get runningId(): string | undefined {
    return this.runningIds[0];
  }

  /** A waiting job is removed at once; a running one is told to stop, wherever its worker is. */
  async cancel(id: string): Promise<RunRecord> {
    const r = this.get(id);
    if (FINISHED.has(r.status)) throw new ApiError(409, 'run_finished', `run "${id}" already finished with status ${r.status}`);
    // The mark covers the race with a worker taking the job right now: it looks before it starts.
    await this.commands.set(cancelKey(this.queueName, id), '1', 'EX', CANCEL_TTL_S);
    if (r.status === 'queued') {
      const job = await this.queue.getJob(id);
      // remove() refuses a job a worker holds (locked): then it is running, and the message below stops it.
      const removed = job ? await job.remove().then(() => true, () => false) : true;
      if (removed) {
        this.finish(r, 'cancelled');
        this.record(r, { type: 'run.cancelled', reason: 'cancelled while queued' });
        this.publishStatus();
        return r;
      }
    }
    await this.commands.publish(cancelChannel(this.queueName), id);
    return r;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Runs go on on their workers; another server on the same queue (or this one restarted) sees them.
    await this.events.close();
    await this.queue.close();
    this.commands.disconnect();
  }

  async idle(): Promise<void> {
    while ([...this.runs.values()].some((r) => !FINISHED.has(r.status))) await new Promise((res) => setTimeout(res, 25));
  }

  protected publishStatus(): void {
    const running = this.runningIds;
    this.hub.publish({ type: 'status', queueRemaining: this.queueLength, running: running[0] ?? null, runningIds: running });
  }

  private finish(r: RunRecord, status: RunStatus): void {
    r.status = status;
    r.finishedAt = new Date().toISOString();
    this.trimHistory();
  }

  /** The record of a job this server did not submit (another server, or before a restart). */
  private ensure(jobId: string): RunRecord {
    let r = this.runs.get(jobId);
    if (r) return r;
    r = { id: jobId, status: 'queued', createdAt: new Date().toISOString(), recipe: undefined, overrides: {}, events: [] };
    this.runs.set(jobId, r);
    const rec = r;
    void this.queue.getJob(jobId).then((job) => job && this.fill(rec, job), () => undefined);
    return r;
  }

  private fill(r: RunRecord, job: Job): void {
    const data = job.data as Partial<QueueJobData>;
    r.recipe ??= data.recipe;
    if (data.overrides) r.overrides = data.overrides;
    if (data.sweep) r.sweep = data.sweep;
    if (data.rerunOf) r.rerunOf = data.rerunOf;
    if (data.submittedAt) r.createdAt = data.submittedAt;
  }

  private listen(): void {
    const ev = this.events;
    ev.on('active', ({ jobId }) => {
      const r = this.ensure(jobId);
      r.status = 'running';
      r.startedAt ??= new Date().toISOString();
      this.tracking.set(jobId, {});
      this.publishStatus();
    });
    ev.on('progress', ({ jobId, data }) => {
      const p = data as unknown as QueueProgress;
      if (typeof p !== 'object' || p === null || typeof p.event?.type !== 'string') return;
      const r = this.ensure(jobId);
      if (p.event.type === 'run.assigned') {
        r.worker = p.worker;
        r.attempts = p.attempt;
        r.status = 'running';
        this.tracking.set(jobId, {});
      }
      this.record(r, { ...p.event, worker: p.worker, attempt: p.attempt });
      if (TERMINAL.has(p.event.type)) this.tracking.set(jobId, { terminal: p.event.type });
    });
    ev.on('completed', ({ jobId, returnvalue }) => {
      const r = this.ensure(jobId);
      const ret = returnvalue as unknown as QueueJobResult | undefined;
      r.result = ret?.result;
      if (ret?.worker) r.worker = ret.worker;
      this.finish(r, 'success');
      this.publishStatus();
    });
    ev.on('failed', ({ jobId, failedReason }) => {
      const r = this.ensure(jobId);
      const terminal = this.tracking.get(jobId)?.terminal;
      if (terminal === 'run.cancelled') this.finish(r, 'cancelled');
      else {
        const message = terminal ? failedReason : explainFailure(failedReason, r.worker);
        r.error = { message };
        // A worker that died sent no terminal event: the clients still get exactly one.
        if (!terminal) this.record(r, { type: 'run.error', message, errorType: 'worker_lost', ...(r.worker ? { worker: r.worker } : {}) });
        this.finish(r, 'error');
      }
      this.tracking.delete(jobId);
      this.publishStatus();
    });
    ev.on('stalled', ({ jobId }) => {
      const r = this.ensure(jobId);
      r.status = 'queued';
      this.tracking.set(jobId, {});
      this.record(r, {
        type: 'run.stalled',
        ...(r.worker ? { worker: r.worker } : {}),
        message: `worker ${r.worker ?? '?'} stopped responding during attempt ${r.attempts ?? 1} (killed, crashed or cut off from Redis); the run is back in the queue for another worker, and nothing it wrote is under the final name`,
      });
      this.publishStatus();
    });
    ev.on('error', () => undefined); // reconnects on its own; a closed server stops listening
  }

  /** Runs already on the queue when this server starts: listed with their state (their past events stay with the server that saw them). */
  private async loadExisting(): Promise<void> {
    const states: [string, RunStatus][] = [['waiting', 'queued'], ['prioritized', 'queued'], ['active', 'running'], ['completed', 'success'], ['failed', 'error']];
    const found: { at: number; r: RunRecord }[] = [];
    for (const [state, status] of states) {
      const jobs = await this.queue.getJobs([state as 'waiting'], 0, this.historyLimit - 1);
      for (const job of jobs) {
        if (!job?.id || this.runs.has(job.id)) continue;
        const r: RunRecord = { id: job.id, status, createdAt: new Date(job.timestamp).toISOString(), recipe: undefined, overrides: {}, events: [] };
        this.fill(r, job);
        const progress = job.progress as Partial<QueueProgress> | undefined;
        if (typeof progress === 'object' && progress?.worker) r.worker = progress.worker;
        if (job.processedOn) r.startedAt = new Date(job.processedOn).toISOString();
        if (job.finishedOn) r.finishedAt = new Date(job.finishedOn).toISOString();
        if (status === 'error') {
          if (progress?.event?.type === 'run.cancelled') r.status = 'cancelled';
          else r.error = { message: explainFailure(job.failedReason ?? 'failed', r.worker) };
        }
        if (status === 'success') r.result = (job.returnvalue as QueueJobResult | undefined)?.result;
        found.push({ at: job.timestamp, r });
      }
    }
    // Oldest first, as submissions are kept (list() shows the newest first).
    for (const { r } of found.sort((a, b) => a.at - b.at)) if (!this.runs.has(r.id)) this.runs.set(r.id, r);
  }

  private trimHistory(): void {
    const finished = [...this.runs.values()].filter((r) => FINISHED.has(r.status));
    for (const r of finished.slice(0, Math.max(0, finished.length - this.historyLimit))) {
      this.runs.delete(r.id);
      this.tracking.delete(r.id);
    }
  }
}
