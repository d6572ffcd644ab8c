/**
 * What `serve` and `worker` share: the long-running commands take no positionals, name the Redis
 * queue, the model roots and the compute backend alike, and stop on the same signals.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkRedisUrl, DEFAULT_QUEUE_NAME } from '../../server/queue-protocol.ts';
import { UsageError } from './command.ts';
import { RUN_OPTIONS, parseRoots, runFlags, type RunFlags } from './recipes/execute.ts';

/** Signals that stop a service gracefully; what a second one does is the service's own. */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

const SERVICE_OPTIONS = {
  root: { type: 'string', multiple: true, default: [] as string[] },
  backend: RUN_OPTIONS.backend,
  queue: { type: 'string' },
  'queue-name': { type: 'string', default: DEFAULT_QUEUE_NAME },
} as const;

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof SERVICE_OPTIONS & O }>>;

export interface ServiceArgs<O extends Options> {
  values: Parsed<O>['values'];
  roots: Record<string, string[]>;
  backend: RunFlags['backend'];
}

/** `args` of the service `command` against the shared options and its own; positionals are refused by name. */
export function parseServiceArgs<O extends Options>(command: string, args: string[], options: O): ServiceArgs<O> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { ...SERVICE_OPTIONS, ...options } }) as Parsed<O>;
  if (positionals.length > 0) throw new UsageError(`${command} takes no positional arguments, got ${positionals.join(' ')}`);
  const shared = values as Parsed<Record<never, never>>['values'];
  return { values, roots: parseRoots(shared.root), backend: runFlags({ backend: shared.backend }).backend };
}

/** A --queue URL checked, its fault a usage error. */
export function redisUrlArg(text: string): string {
  try {
    return checkRedisUrl(text);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Writes one line to stderr, where the services say what they do. */
export const logLine = (s: string): void => void process.stderr.write(`${s}\n`);
