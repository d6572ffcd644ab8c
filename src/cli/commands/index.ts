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

export const commands: readonly CommandEntry[] = [
  { name: 'inspect', load: async () => (await import('./inspect.ts')).inspect },
  { name: 'run', load: async () => (await import('./run.ts')).run },
  { name: 'convert', load: async () => (await import('./convert.ts')).convert },
  { name: 'merge', load: async () => (await import('./merge.ts')).merge },
  { name: 'apply', load: async () => (await import('./apply.ts')).apply },
  { name: 'extract', load: async () => (await import('./extract.ts')).extract },
  { name: 'resize', load: async () => (await import('./resize.ts')).resize },
  { name: 'nodes', load: async () => (await import('./nodes.ts')).nodes },
  { name: 'recipe', load: async () => (await import('./recipe.ts')).recipe },
  { name: 'samples', load: async () => (await import('./samples.ts')).samples },
  { name: 'demo', load: async () => (await import('./demo.ts')).demo },
  { name: 'serve', load: async () => (await import('./serve.ts')).serve },
];
