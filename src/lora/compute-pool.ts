/**
 * Worker threads that run applyToBase's chunk tasks in parallel with the calling thread, each
 * with its own backend instance. On the CPU backends each thread computes on one core, so spreading
 * whole-row blocks over the cores is what lets a merge keep up with the disk. Tasks carry
 * SharedArrayBuffer views: nothing is copied between threads.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { yieldToEventLoop } from '../tensor/cooperative.ts';
import { runChunk, type ChunkCounts, type ChunkTask } from './chunk-task.ts';

const BOOT = new URL('./compute-worker-boot.mjs', import.meta.url);

/** Most workers worth starting: each holds its own backend heap and scratch (70–100 MB), and peak RSS must stay under 1.5 GB. */
const MAX_THREADS = 6;

/**
 * Worker threads for a backend. On CPU backends the calling thread computes too (see runAll) while
 * it reads, writes and dispatches, and the kernel copies file data on libuv's threads: all cores
 * but one. GPU and native backends parallelise themselves.
 */
export function defaultThreads(backend: string): number {
  const cores = availableParallelism();
  return backend === 'wasm' || backend === 'cpu' ? Math.min(MAX_THREADS, cores - 1) : 0;
}

interface Pending {
  resolve: (counts: ChunkCounts) => void;
  reject: (e: Error) => void;
}

export class ComputePool {
  private readonly idle: Worker[] = [];
  private readonly queue: { task: ChunkTask; pending: Pending }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly busy = new Map<Worker, number>();
  private nextId = 0;
  private failure: Error | undefined;

  private constructor(private readonly workers: Worker[]) {}

  /** Starts `size` workers on `backend`; size 0 gives a pool that runs tasks inline. */
  static async start(size: number, backend: string): Promise<ComputePool> {
    const workers = Array.from({ length: size }, () => new Worker(BOOT, { workerData: { backend } }));
    const pool = new ComputePool(workers);
    try {
      await Promise.all(workers.map((w) => pool.ready(w)));
    } catch (e) {
      await pool.close();
      throw e;
    }
    for (const w of workers) pool.attach(w);
    return pool;
  }

  get threads(): number {
    return this.workers.length;
  }

  private ready(w: Worker): Promise<void> {
    return new Promise((resolve, reject) => {
      const onMessage = (msg: { ready?: string; failed?: string }) => {
        w.off('error', onError);
        if (msg.ready) resolve();
        else reject(new Error(`compute worker could not start its backend: ${msg.failed}`));
      };
      const onError = (e: Error) => reject(new Error(`compute worker failed to start: ${e.message}`));
      w.once('message', onMessage);
      w.once('error', onError);
    });
  }

  private attach(w: Worker): void {
    w.on('message', (msg: { id: number; result?: ChunkCounts; error?: string }) => {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      this.busy.delete(w);
      if (msg.error !== undefined) p?.reject(new Error(msg.error));
      else p?.resolve(msg.result!);
      this.release(w);
    });
    w.on('error', (e) => this.fail(new Error(`compute worker failed: ${e.message}`)));
    w.on('exit', (code) => {
      if (code !== 0) this.fail(new Error(`compute worker exited with code ${code}`));
    });
    this.idle.push(w);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    for (const q of this.queue.splice(0)) q.pending.reject(e);
  }

  private release(w: Worker): void {
    const next = this.queue.shift();
    if (next) this.dispatch(w, next.task, next.pending);
    else this.idle.push(w);
  }

  private dispatch(w: Worker, task: ChunkTask, pending: Pending): void {
    const id = this.nextId++;
    this.pending.set(id, pending);
    this.busy.set(w, id);
    w.postMessage({ id, task });
  }

  /** Runs a task on a free worker (queued when all are busy), or inline when the pool has none. */
  run(task: ChunkTask): Promise<ChunkCounts> {
    if (this.workers.length === 0) return runChunk(task);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const pending = { resolve, reject };
      const w = this.idle.pop();
      if (w) this.dispatch(w, task, pending);
      else this.queue.push({ task, pending });
    });
  }

  /**
   * Runs every task, on the workers and on the calling thread together: the caller takes the next
   * queued task whenever it is free (turning the event loop between tasks so finished workers get
   * their next one), so no core waits while tasks remain. Results come in task order.
   */
  async runAll(tasks: readonly ChunkTask[]): Promise<ChunkCounts[]> {
    const results: ChunkCounts[] = new Array<ChunkCounts>(tasks.length);
    let next = 0;
    const onWorkers = async (): Promise<void> => {
      for (let i = next++; i < tasks.length; i = next++) results[i] = await this.run(tasks[i]!);
    };
    const workers = Array.from({ length: this.workers.length }, onWorkers);
    for (let i = next++; i < tasks.length; i = next++) {
      results[i] = await runChunk(tasks[i]!);
      await yieldToEventLoop();
    }
    await Promise.all(workers);
    return results;
  }

  async close(): Promise<void> {
    this.fail(new Error('compute pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
