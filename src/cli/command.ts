/**
 * What every CLI command is, and how a command says "the input is wrong" (exit code 2) as opposed
 * to "the run failed" (exit code 1).
 */
import { EXIT_CODE, LoraflowError } from '../errors.ts';

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full help text: synopsis, arguments, options. */
  usage: string;
  /** Receives the arguments after the command name; returns the exit code. */
  run(args: string[]): Promise<number>;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = EXIT_CODE.failure;
export const EXIT_INVALID_INPUT = EXIT_CODE.input;

/** Wrong arguments or an unusable input file: the user must change something, retrying won't help. */
export class UsageError extends LoraflowError {
  constructor(message: string) {
    super('input', 'USAGE', message);
    this.name = 'UsageError';
  }
}
