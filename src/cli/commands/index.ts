import type { Command } from '../command.ts';
import { apply } from './apply.ts';
import { convert } from './convert.ts';
import { demo } from './demo.ts';
import { extract } from './extract.ts';
import { inspect } from './inspect.ts';
import { merge } from './merge.ts';
import { nodes } from './nodes.ts';
import { recipe } from './recipe.ts';
import { resize } from './resize.ts';
import { run } from './run.ts';
import { samples } from './samples.ts';

/** Every command of `loraflow`, in the order `--help` lists them. Add a command: one file, one line here. */
export const commands: readonly Command[] = [inspect, run, convert, merge, apply, extract, resize, nodes, recipe, samples, demo];
