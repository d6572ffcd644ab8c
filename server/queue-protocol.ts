import { Redis } from 'ioredis';
import type { EventInput } from './event-hub.ts';
import type { RunJob } from './run-queue.ts';

/**
 * What `loraflow serve --queue` and `loraflow worker --queue` agree on: the BullMQ queue (one job
 * per run, its id the run id), how a worker reports run events (job progress updates, which BullMQ
 * streams to every QueueEvents listener through Redis), and how a cancel reaches the worker that
 * holds a run (a Redis key the worker checks before starting, and a pub/sub message while it runs).
 */

export const DEFAULT_QUEUE_NAME = 'loraflow-runs';

/** The job's data: the run as submitted. */
export type QueueJobData = RunJob & { submittedAt: string };

/** One progress update of a job: a run event of one attempt, or the worker taking the job. */
export interface QueueProgress {
  worker: string;
  /** 1 for the first start; more after a worker died and the job was retried. */
  attempt: number;
  event: EventInput;
}

/** What a finished job returns (BullMQ keeps it as the job's return value). */
export interface QueueJobResult {
  status: 'success';
  worker: string;
  result: unknown;
}

export const cancelChannel = (queue: string): string => `loraflow:${queue}:cancel`;
export const cancelKey = (queue: string, runId: string): string => `loraflow:${queue}:cancelled:${runId}`;
/** A cancel request outlives any run it could reach. */
export const CANCEL_TTL_S = 24 * 3600;

/** `redis://[user:pass@]host:port[/db]` (or `rediss://`), checked early so a typo is an argument error, not a hang. */
export function checkRedisUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--queue "${url}": expected redis://HOST:PORT`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`--queue "${url}": expected a redis:// or rediss:// URL`);
  if (!u.hostname) throw new Error(`--queue "${url}": no host`);
  return url;
}

/**
 * A connection as BullMQ wants it for workers and blocking readers (no per-command retry limit;
 * BullMQ retries itself). Connecting fails fast with the address in the message.
 */
export async function connectRedis(url: string, name: string): Promise<Redis> {
  let connected = false;
  let lastError: Error | undefined;
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    lazyConnect: true,
    connectionName: name,
    // The first connection fails at once (a wrong address is the user's to fix); later drops reconnect.
    retryStrategy: (times) => (connected ? Math.min(times * 200, 2000) : null),
  });
  redis.on('error', (e: Error) => void (lastError = e));
  try {
    await redis.connect();
    connected = true;
  } catch (e) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${url}: ${(lastError ?? (e as Error)).message}`);
  }
  return redis;
}
