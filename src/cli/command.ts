/**
 * What every CLI command is, and how a command says "the input is wrong" (exit code 2) as opposed
 * to "the run failed" (exit code 1).
 */

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
export const EXIT_FAILED = 1;
export const EXIT_INVALID_INPUT = 2;

/** Wrong arguments or an unusable input file: the user must change something, retrying won't help. */
export class UsageError extends Error {
  readonly exitCode = EXIT_INVALID_INPUT;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
