/**
 * The one error type of loraflow's domain. Every error says whose move it is — `input`: the user
 * must change an argument, a file or a recipe (retrying will not help); `failure`: the run itself
 * failed (a full disk, a bug, a cancelled run) — and that one fact is mapped, here and nowhere
 * else, to the CLI's exit code and the API's HTTP status.
 */

export type Fault = 'input' | 'failure';

export class LoraflowError extends Error {
  constructor(
    readonly fault: Fault,
    /** Stable, machine-readable: what went wrong (`MERGE`, `NON_FINITE`, `NOT_FOUND`, …). */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'LoraflowError';
  }
}

/** The user's input is wrong: exit 2, HTTP 422. */
export function inputError(code: string, message: string): LoraflowError {
  return new LoraflowError('input', code, message);
}

/** The run failed through no fault of the input: exit 1, HTTP 500. */
export function runFailure(code: string, message: string): LoraflowError {
  return new LoraflowError('failure', code, message);
}

/** System errors about a path the user named: it is missing, a directory, a link loop… */
const PATH_ERRNOS = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG', 'EACCES', 'EPERM']);

/**
 * Whose move an error is. Errors that crossed a worker boundary arrive as plain objects and keep
 * their `fault`; Node's argument-parser and path errors are the user's; everything else failed.
 */
export function faultOf(error: unknown): Fault {
  const e = error as { fault?: unknown; code?: unknown; syscall?: unknown } | undefined;
  if (e?.fault === 'input' || e?.fault === 'failure') return e.fault;
  if (typeof e?.code === 'string') {
    if (e.code.startsWith('ERR_PARSE_ARGS')) return 'input';
    if (typeof e.syscall === 'string' && PATH_ERRNOS.has(e.code) && !/write/.test(e.syscall)) return 'input';
  }
  return 'failure';
}

export const EXIT_CODE: Readonly<Record<Fault, number>> = { input: 2, failure: 1 };
/** 422: the request was well formed, but what it names (a file, a recipe) cannot be used. */
export const HTTP_STATUS: Readonly<Record<Fault, number>> = { input: 422, failure: 500 };
