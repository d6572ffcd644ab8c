import type { Command } from '../command.ts';
import { inspect } from './inspect.ts';

/** Every command of `loraflow`, in the order `--help` lists them. Add a command: one file, one line here. */
export const commands: readonly Command[] = [inspect];
