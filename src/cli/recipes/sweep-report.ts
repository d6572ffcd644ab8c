import { relative } from 'node:path';
import type { RunEvent } from '../../graph/events.ts';
import type { SweepPoint } from '../../graph/sweep.ts';
import type { SweepEvent, SweepPointResult } from '../../graph/sweep-run.ts';
import { humanReporter, type Reporter } from './progress.ts';

/**
 * How `loraflow run --sweep` shows a sweep: a bar over the points, each point's own node
 * progress (the single-run reporter), and a summary table at the end; or, with --json-events,
 * every run event (tagged with its point) and sweep event as one JSON line.
 */

type Write = (text: string) => void;

export interface SweepReporter {
  run(e: RunEvent, point: SweepPoint): void;
  sweep(e: SweepEvent): void;
  finish(): void;
}

function pointsBar(done: number, total: number, width = 20): string {
  const n = total > 0 ? Math.round((width * done) / total) : 0;
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}]`;
}

export function sweepReporter(opts: { json: boolean; write: Write; err: Write; live: boolean; columns: number }): SweepReporter {
  if (opts.json) {
    return {
      run: (e, point) => opts.write(`${JSON.stringify({ ...e, point: point.index })}\n`),
      sweep: (e) => opts.write(`${JSON.stringify(e)}\n`),
      finish: () => undefined,
    };
  }
  let current: Reporter | undefined;
  return {
    run: (e) => current?.event(e),
    sweep(e) {
      if (e.type === 'sweep.start') opts.err(`sweep: ${e.total} point(s)\n`);
      else if (e.type === 'sweep.point.start') {
        current?.finish();
        current = humanReporter(opts.err, opts.live, opts.columns);
        opts.err(`\n${pointsBar(e.index - 1, e.total)} point ${e.index}/${e.total}: ${e.label}\n`);
      } else if (e.type === 'sweep.point.done' && e.status === 'skipped') opts.err(`point ${e.index}/${e.total}: skipped (cancelled)\n`);
      else if (e.type === 'sweep.done') {
        current?.finish();
        opts.err(`\n${pointsBar(e.total, e.total)} ${e.total} point(s) in ${(e.ms / 1000).toFixed(1)} s; ${e.failed ? `${e.failed} failed` : 'all succeeded'}\n`);
      }
    },
    finish: () => current?.finish(),
  };
}

/** The table after a sweep: one row per point (point, values, status, outputs, seconds, error). */
export function summaryTable(points: readonly SweepPointResult[], cwd = process.cwd()): string {
  const rows = points.map((p) => [
    String(p.index),
    p.label,
    p.status,
    p.wouldWrite
      ? `would write ${p.wouldWrite.map((w) => relative(cwd, w) || w).join(', ') || 'nothing'}`
      : p.written.map((w) => relative(cwd, w) || w).join(', ') || (p.status === 'success' ? '(cached)' : '–'),
    (p.ms / 1000).toFixed(2),
    p.error ?? '',
  ]);
  const head = ['point', 'values', 'status', 'outputs', 'seconds', 'error'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
