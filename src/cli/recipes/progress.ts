import type { RunEvent } from '../../graph/events.ts';
import { formatProblems } from '../../graph/problems.ts';

/**
 * How `loraflow run` (and every command built on a recipe) shows a run: a live progress bar per
 * node on a terminal, plain lines otherwise (logs, CI), or one JSON object per event
 * (`--json-events`). Human output goes to stderr so stdout stays clean for results.
 */

export interface Reporter {
  event(e: RunEvent): void;
  /** Clears any live line before other output. */
  finish(): void;
}

type Write = (text: string) => void;

function bar(value: number, max: number, width = 24): string {
  const f = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}] ${String(Math.round(f * 100)).padStart(3)}%`;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function short(summary: unknown): string {
  if (summary === null || summary === undefined) return '';
  const text = JSON.stringify(summary);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

export function jsonReporter(write: Write): Reporter {
  return { event: (e) => write(`${JSON.stringify(e)}\n`), finish: () => undefined };
}

/** Live bars when `live` (a TTY), one line per step otherwise (progress every 10% at most). */
export function humanReporter(write: Write, live: boolean, columns = 100): Reporter {
  let liveLine = false;
  const lastDecile = new Map<string, number>();
  const clear = () => {
    if (liveLine) write('\r\x1b[K');
    liveLine = false;
  };
  const line = (text: string) => {
    clear();
    write(`${text}\n`);
  };
  return {
    finish: clear,
    event(e) {
      switch (e.type) {
        case 'run.invalid':
          line(formatProblems(e.problems));
          break;
        case 'run.plan':
        case 'run.start': {
          const p = e.plan;
          if (e.type === 'run.start') line(`run ${e.runId.slice(0, 8)}: ${p.run.length} node(s) to run${p.cached.length ? `, ${p.cached.length} cached` : ''}${p.skipped.length ? `, ${p.skipped.length} not needed` : ''}`);
          for (const m of p.migrations) line(`  migrated: ${m}`);
          break;
        }
        case 'node.cached':
          line(`= ${e.nodeId} (${e.nodeType}) cached`);
          break;
        case 'node.start':
          line(`> ${e.nodeId} (${e.nodeType})`);
          lastDecile.set(e.nodeId, -1);
          break;
        case 'node.progress': {
          if (live) {
            const text = `  ${e.nodeId} ${bar(e.value, e.max)} ${e.value}/${e.max}${e.label ? ` ${e.label}` : ''}`;
            write(`\r\x1b[K${text.slice(0, Math.max(20, columns - 1))}`);
            liveLine = true;
          } else {
            const decile = e.max > 0 ? Math.floor((10 * e.value) / e.max) : 0;
            if (decile > (lastDecile.get(e.nodeId) ?? -1)) {
              lastDecile.set(e.nodeId, decile);
              line(`  ${e.nodeId} ${e.value}/${e.max}${e.label ? ` ${e.label}` : ''}`);
            }
          }
          break;
        }
        case 'node.log':
          line(`  ${e.nodeId}: ${e.message}`);
          break;
        case 'node.done':
          line(`✓ ${e.nodeId} (${e.nodeType}) ${seconds(e.ms)}  ${short(e.summary)}`);
          break;
        case 'run.success':
          line(`done in ${seconds(e.ms)}${e.written.length ? `; wrote ${e.written.join(', ')}` : ''}`);
          break;
        case 'run.cancelled':
          line(`cancelled${e.nodeId ? ` in ${e.nodeId} (${e.nodeType})` : ''} after ${seconds(e.ms)}; no output files were written${e.executed.length ? ` (finished: ${e.executed.join(', ')})` : ''}`);
          break;
        case 'run.error': {
          const where = e.nodeId ? `node "${e.nodeId}" (${e.nodeType}) failed: ` : 'run failed: ';
          line(`✗ ${where}${e.message}`);
          if (e.inputs && Object.keys(e.inputs).length > 0) line(`  inputs: ${short(e.inputs)}`);
          line(`  already done: ${e.executed.length ? e.executed.join(', ') : 'nothing'}; no output files were written`);
          if (process.env.LORAFLOW_DEBUG && e.stack) line(e.stack);
          break;
        }
      }
    },
  };
}
