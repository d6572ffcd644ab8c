/**
 * Staging files: where an output is written before it is renamed into place. Their names carry
 * the writing process's pid (`.NAME.PID.HEX.tmp`), so that
 *  - a process killed by a signal it can catch removes every staging file of all its threads
 *    (writers may run in worker threads; each announces its files on a BroadcastChannel, which
 *    reaches the main thread, where signals arrive), then dies of that same signal;
 *  - files left by a process that could not clean up (SIGKILL, power loss) are swept by the next
 *    writer in that folder, once their pid is no longer alive.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BroadcastChannel, isMainThread } from 'node:worker_threads';

const STAGING_NAME = /^\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/** Signals whose default action ends the process and that a Node process can catch. */
export const FATAL_SIGNALS = [
  'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGTERM', 'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGXCPU', 'SIGXFSZ', 'SIGTRAP', 'SIGABRT', 'SIGIO', 'SIGSYS',
] as const satisfies readonly NodeJS.Signals[];

type StagingMessage = { add: string } | { remove: string };

/** Staging files of this process not yet renamed or removed (in the main thread: of every thread). */
const live = new Set<string>();
let channel: BroadcastChannel | undefined;

function announce(message: StagingMessage): void {
  if (isMainThread) return;
  channel ??= new BroadcastChannel('loraflow-staging');
  channel.unref();
  channel.postMessage(message);
}

/** The staging path for `dest`, registered as live before the caller creates it. */
export function stagingPathFor(dest: string): string {
  const path = join(dirname(dest), `.${basename(dest)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  live.add(path);
  announce({ add: path });
  return path;
}

/** The staging file is gone (renamed into place or removed). */
export function staged(path: string): void {
  live.delete(path);
  announce({ remove: path });
}

/** Removes every live staging file or folder (a diffusers folder output), synchronously (safe in a signal or exit handler). */
export function removeLiveStaging(): void {
  for (const path of live) {
    try {
      rmSync(path, { force: true, recursive: true });
    } catch {
      // already renamed or removed
    }
  }
  live.clear();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes staging files (and staged folders) in `dir` whose process is gone; returns their names. A file of a live
 * process (this one included) is never touched; a pid reused by another process keeps its file
 * until that process ends too.
 */
export async function sweepStaleStaging(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const name of names) {
    const m = STAGING_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || alive(pid)) continue;
    const path = join(dir, name);
    try {
      // files, and staged folder outputs; never a symlink
      const st = await lstat(path);
      if (!st.isFile() && !st.isDirectory()) continue;
      await rm(path, { force: true, recursive: true });
      swept.push(name);
    } catch {
      // raced with another sweeper, or not ours to remove
    }
  }
  return swept;
}

let installed = false;

/**
 * In the main thread: collects the staging files worker threads announce, removes every live one
 * when the process exits, and on a fatal signal that no one else handles removes them and dies of
 * the same signal (so the exit status still says which). A signal some other listener handles
 * (the CLI's first Ctrl+C cancels a run cooperatively; `serve` stops on SIGTERM) is left to it.
 */
export function installStagingCleanup(): void {
  if (installed || !isMainThread) return;
  installed = true;
  const listener = new BroadcastChannel('loraflow-staging');
  listener.unref();
  listener.onmessage = (event) => {
    const message = (event as { data: StagingMessage }).data;
    if ('add' in message) live.add(message.add);
    else live.delete(message.remove);
  };
  process.on('exit', removeLiveStaging);
  for (const signal of FATAL_SIGNALS) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return;
      removeLiveStaging();
      process.off(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
