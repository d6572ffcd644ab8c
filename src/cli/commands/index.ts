import type { Command } from '../command.ts';

/**
 * Every command of `loraflow`, in the order `--help` lists them. Each module is imported only when
 * its command runs, so `loraflow inspect` starts in milliseconds instead of first loading the
 * graph engine and TensorFlow.js. Add a command: one file, one line here.
 */
export interface CommandEntry {
  name: string;
  load(): Promise<Command>;
}

/** Imports on first use, once: later calls get the same command without touching the disk. */
function lazy(name: string, load: () => Promise<Command>): CommandEntry {
  let loaded: Promise<Command> | undefined;
  return { name, load: () => (loaded ??= load()) };
}

export const commands: readonly CommandEntry[] = [
  lazy('inspect', async () => (await import('./inspect.ts')).inspect),
  lazy('run', async () => (await import('./run.ts')).run),
  lazy('convert', async () => (await import('./convert.ts')).convert),
  lazy('merge', async () => (await import('./merge.ts')).merge),
  lazy('apply', async () => (await import('./apply.ts')).apply),
  lazy('merge-checkpoints', async () => (await import('./merge-checkpoints.ts')).mergeCheckpoints),
  lazy('extract', async () => (await import('./extract.ts')).extract),
  lazy('resize', async () => (await import('./resize.ts')).resize),
  lazy('nodes', async () => (await import('./nodes.ts')).nodes),
  lazy('families', async () => (await import('./families.ts')).families),
  lazy('recipe', async () => (await import('./recipe.ts')).recipe),
  lazy('samples', async () => (await import('./samples.ts')).samples),
  lazy('demo', async () => (await import('./demo.ts')).demo),
  lazy('serve', async () => (await import('./serve.ts')).serve),
  lazy('worker', async () => (await import('./worker.ts')).worker),
];
