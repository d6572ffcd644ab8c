import { EXIT_CODE } from '../../errors.ts';
import { planSweep } from '../../graph/sweep-plan.ts';
import { pointFailed, runSweep } from '../../graph/sweep-run.ts';
import type { SweepSpec } from '../../graph/sweep.ts';
import { registry, setup } from '../../../nodes/index.ts';
import { EXIT_INVALID_INPUT, EXIT_OK } from '../command.ts';
import type { RunFlags } from './execute.ts';
import { summaryTable, sweepReporter } from './sweep-report.ts';

/**
 * `loraflow run RECIPE --sweep …`: plans every point (globs, per-point output names, no two
 * points writing one file), runs them in this process through one cache, and prints the summary
 * table on stdout. Exit code: 0 when every point succeeded, 1 when one failed or was cancelled,
 * 2 when the only failures are invalid points.
 */
export async function executeSweep(recipe: unknown, spec: SweepSpec, flags: RunFlags & { name: string }): Promise<number> {
  const { points } = await planSweep(recipe, spec, { registry, roots: flags.roots, name: flags.name });
  if (flags.backend) await setup({ backend: flags.backend });
  const err = (s: string) => void process.stderr.write(s);
  const out = (s: string) => void process.stdout.write(s);
  const reporter = sweepReporter({ json: flags.jsonEvents, write: out, err, live: !!process.stderr.isTTY, columns: process.stderr.columns || 100 });
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) process.exit(130);
    if (!flags.jsonEvents) err('\ncancelling the sweep (press Ctrl+C again to quit at once)…\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  let result;
  try {
    result = await runSweep(recipe, points, {
      registry,
      roots: flags.roots,
      dryRun: flags.dryRun,
      signal: controller.signal,
      onEvent: (e, p) => reporter.run(e, p),
      onSweepEvent: (e) => reporter.sweep(e),
    });
  } finally {
    reporter.finish();
    process.off('SIGINT', onSigint);
  }
  if (!flags.jsonEvents) out(`${summaryTable(result.points)}\n`);
  const failed = result.points.filter(pointFailed);
  if (failed.length === 0) return EXIT_OK;
  return failed.every((p) => p.status === 'invalid') ? EXIT_INVALID_INPUT : EXIT_CODE.failure;
}
