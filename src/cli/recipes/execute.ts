import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { EXIT_CODE } from '../../errors.ts';
import { runRecipe, type RunOutcome } from '../../graph/execute.ts';
import type { PlanInfo } from '../../graph/events.ts';
import type { RootsConfig } from '../../graph/roots.ts';
import { BACKEND_CHOICES, isBackendChoice } from '../../tensor/backend.ts';
import { registry, setup } from '../../../nodes/index.ts';
import { EXIT_INVALID_INPUT, EXIT_OK, UsageError } from '../command.ts';
import { humanReporter, jsonReporter } from './progress.ts';

/**
 * Running a recipe from the command line, shared by `loraflow run` and every single-operation
 * command (each builds a small recipe and runs it here, so `--dry-run` and `--json-events` work
 * the same everywhere).
 */

export const RUN_OPTIONS = {
  'dry-run': { type: 'boolean', default: false },
  'json-events': { type: 'boolean', default: false },
  backend: { type: 'string' },
} as const;

export const RUN_OPTIONS_HELP = `  --dry-run        validate and show the plan (what runs, what is cached, what is written); write nothing
  --json-events    print every run event as one JSON object per line on stdout
  --backend NAME   compute backend: auto, wasm, webgpu, tensorflow (default: auto / $LORAFLOW_BACKEND)`;

export interface RunFlags {
  dryRun: boolean;
  jsonEvents: boolean;
  backend?: string;
  overrides?: Record<string, string>;
  roots?: RootsConfig;
}

export function runFlags(values: { 'dry-run'?: boolean; 'json-events'?: boolean; backend?: string }): RunFlags {
  if (values.backend !== undefined && !isBackendChoice(values.backend)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got "${values.backend}"`);
  return { dryRun: !!values['dry-run'], jsonEvents: !!values['json-events'], backend: values.backend };
}

function printPlan(plan: PlanInfo, write: (s: string) => void): void {
  const state = (id: string) => (plan.cached.includes(id) ? 'cached' : plan.run.includes(id) ? 'run' : 'not needed');
  write('plan (dry run, nothing written):\n');
  for (const id of plan.order) write(`  ${state(id).padEnd(10)} ${id}${plan.targets.includes(id) ? '  (output)' : ''}\n`);
  for (const w of plan.writes) write(`  would write ${w}\n`);
}

/** Runs `recipe` with the CLI's reporting; returns the exit code (0 ok, 1 failed or cancelled, 2 invalid). */
export async function executeRecipe(recipe: unknown, flags: RunFlags): Promise<number> {
  if (flags.backend) await setup({ backend: flags.backend });
  const err = (s: string) => void process.stderr.write(s);
  const reporter = flags.jsonEvents ? jsonReporter((s) => void process.stdout.write(s)) : humanReporter(err, !!process.stderr.isTTY, process.stderr.columns || 100);
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    if (!flags.jsonEvents) err('\ncancelling (press Ctrl+C again to quit at once)…\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  let outcome: RunOutcome;
  try {
    outcome = await runRecipe(recipe, {
      registry,
      overrides: flags.overrides,
      roots: flags.roots,
      dryRun: flags.dryRun,
      signal: controller.signal,
      onEvent: (e) => reporter.event(e),
    });
  } finally {
    reporter.finish();
    process.off('SIGINT', onSigint);
  }
  if (outcome.status === 'planned' && !flags.jsonEvents && outcome.plan) printPlan(outcome.plan, err);
  if (outcome.status === 'success' && !flags.jsonEvents) {
    for (const [id, summary] of Object.entries(outcome.outputs)) process.stdout.write(`${id}: ${JSON.stringify(summary)}\n`);
  }
  if (outcome.status === 'success' || outcome.status === 'planned') return EXIT_OK;
  if (outcome.status === 'invalid') return EXIT_INVALID_INPUT;
  return EXIT_CODE[outcome.error?.fault ?? 'failure'];
}

/** `NAME=DIR` entries → roots; a name given twice gets both directories. */
export function parseRoots(list: readonly string[]): Record<string, string[]> {
  const roots: Record<string, string[]> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) throw new UsageError(`--root "${item}": expected NAME=DIR (e.g. loras=./models/loras)`);
    (roots[item.slice(0, eq)] ??= []).push(item.slice(eq + 1));
  }
  return roots;
}

/**
 * Paths given on the command line of a single-operation command: recipes name them relative to the
 * current directory when inside it, absolute otherwise, and every directory they live in becomes a
 * root of its kind (so the roots' containment rule holds without the user configuring anything).
 */
export class CliPaths {
  private readonly dirs = new Map<string, Set<string>>();
  constructor(private readonly cwd = process.cwd()) {}

  add(path: string, kind: string): string {
    const abs = resolve(this.cwd, path);
    const rel = relative(this.cwd, abs);
    const inside = rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
    const set = this.dirs.get(kind) ?? new Set([this.cwd]);
    if (!inside) set.add(dirname(abs));
    this.dirs.set(kind, set);
    // resolve() drops a trailing separator, which is what says "a directory" to the path checks
    const trail = /[\\/]$/.test(path) ? sep : '';
    return (inside ? rel : abs) + trail;
  }

  roots(): Record<string, string[]> {
    return Object.fromEntries([...this.dirs].map(([k, v]) => [k, [...v]]));
  }
}

/** `path[:weight]` → path and weight (the suffix counts only when it is a number, so `C:\x` stays a path). */
export function parseWeighted(arg: string): { path: string; weight: number } {
  const i = arg.lastIndexOf(':');
  if (i > 0) {
    const w = arg.slice(i + 1);
    if (w !== '' && Number.isFinite(Number(w))) return { path: arg.slice(0, i), weight: Number(w) };
    // a number that is no usable weight, not part of a file name
    if (/^[+-]?(nan|inf(inity)?|[\d.]+e[+-]?\d+)$/i.test(w)) throw new UsageError(`"${arg}": the weight ${w} is not a finite number`);
  }
  return { path: arg, weight: 1 };
}

