import { randomUUID } from 'node:crypto';
import { RunCache } from './cache.ts';
import type { RunEvent } from './events.ts';
import { runRecipe, type RunOptions, type RunStatus } from './execute.ts';
import { formatProblem } from './problems.ts';
import type { SweepPoint } from './sweep.ts';

/**
 * Runs a sweep's points one after another in this process, all through one result cache: a node
 * whose inputs are the same at two points (the LoRAs loaded before a merge swept over weights) is
 * computed once. A point that fails or is invalid is recorded and the next one runs; cancelling
 * stops the current point and skips the rest.
 */

export interface SweepPointResult {
  index: number;
  label: string;
  values: Record<string, unknown>;
  runId: string;
  status: RunStatus | 'skipped';
  ms: number;
  /** Files the point wrote (final paths). */
  written: string[];
  /** A dry run's files that the point would write. */
  wouldWrite?: string[];
  /** Nodes that came from the cache (computed at an earlier point). */
  cached: string[];
  /** One line saying what went wrong, for the summary table. */
  error?: string;
}

export type SweepEvent =
  | { type: 'sweep.start'; total: number; points: { index: number; label: string }[] }
  | { type: 'sweep.point.start'; index: number; total: number; label: string; runId: string }
  | ({ type: 'sweep.point.done'; total: number } & SweepPointResult)
  | { type: 'sweep.done'; total: number; failed: number; ms: number };

export interface SweepResult {
  points: SweepPointResult[];
  failed: number;
  ms: number;
}

export interface SweepRunOptions extends Omit<RunOptions, 'overrides' | 'runId' | 'onEvent'> {
  /** Each point's run events, with the point they belong to. */
  onEvent?: (event: RunEvent, point: SweepPoint) => void;
  onSweepEvent?: (event: SweepEvent) => void;
}

export function pointFailed(r: Pick<SweepPointResult, 'status'>): boolean {
  return r.status !== 'success' && r.status !== 'planned';
}

function errorLine(outcome: Awaited<ReturnType<typeof runRecipe>>): string | undefined {
  if (outcome.status === 'invalid') return `${(outcome.problems ?? []).map(formatProblem).join('; ')}`;
  if (!outcome.error) return outcome.status === 'cancelled' ? 'cancelled' : undefined;
  const e = outcome.error;
  return e.nodeId ? `node "${e.nodeId}" (${e.nodeType}): ${e.message}` : e.message;
}

export async function runSweep(recipe: unknown, points: readonly SweepPoint[], options: SweepRunOptions): Promise<SweepResult> {
  const started = performance.now();
  const { onEvent, onSweepEvent, cache: given, ...runOptions } = options;
  const cache = given ?? new RunCache();
  const total = points.length;
  const results: SweepPointResult[] = [];
  onSweepEvent?.({ type: 'sweep.start', total, points: points.map((p) => ({ index: p.index, label: p.label })) });
  try {
    for (const point of points) {
      const runId = randomUUID();
      const base = { index: point.index, label: point.label, values: point.values, runId };
      if (options.signal?.aborted) {
        const skipped: SweepPointResult = { ...base, status: 'skipped', ms: 0, written: [], cached: [], error: 'not run: the sweep was cancelled' };
        results.push(skipped);
        onSweepEvent?.({ type: 'sweep.point.done', total, ...skipped });
        continue;
      }
      onSweepEvent?.({ type: 'sweep.point.start', index: point.index, total, label: point.label, runId });
      const outcome = await runRecipe(recipe, { ...runOptions, cache, runId, overrides: point.overrides, onEvent: onEvent && ((e) => onEvent(e, point)) });
      const error = errorLine(outcome);
      const r: SweepPointResult = {
        ...base,
        status: outcome.status,
        ms: outcome.ms,
        written: outcome.written,
        ...(outcome.status === 'planned' ? { wouldWrite: outcome.plan?.writes ?? [] } : {}),
        cached: outcome.cached,
        ...(error !== undefined ? { error } : {}),
      };
      results.push(r);
      onSweepEvent?.({ type: 'sweep.point.done', total, ...r });
    }
  } finally {
    if (!given) await cache.clear();
  }
  const failed = results.filter(pointFailed).length;
  const ms = Math.round(performance.now() - started);
  onSweepEvent?.({ type: 'sweep.done', total, failed, ms });
  return { points: results, failed, ms };
}
