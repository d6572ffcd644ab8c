/**
 * A process killed mid-write leaves no staging file: every catchable fatal signal removes them and
 * the process still dies of that signal; SIGINT cancels the run and cleans up; after SIGKILL the
 * next writer in that folder sweeps the dead process's file; `serve` stops on SIGTERM/SIGHUP with
 * its runs cancelled and their files removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { FATAL_SIGNALS } from '../src/safetensors/staging.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { fluxCheckpointEntries } from '../src/samples/flux-checkpoint.ts';
import { writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { exists } from './helpers/files.ts';
import { waitFor as poll } from './helpers/wait.ts';

const BIN = fileURLToPath(new URL('../bin/loraflow.js', import.meta.url));
const tmp = useTempDir('loraflow-signals-');
// Widths ÷16: a ~90 MB BF16 base, so an apply takes long enough to be caught in the middle.
const FACTOR = 16;

beforeAll(async () => {
  await writeSafetensors(tmp.path('base.safetensors'), fluxCheckpointEntries({ scale: FACTOR, dtype: 'BF16', seed: 0 }));
  await writeSampleLora(tmp.path('lora.safetensors'), { format: 'kohya', rank: 4, scale: 1, seed: 3, factor: FACTOR });
}, 120_000);

interface Child {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function cli(args: string[]): Child {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return { child, stderr: () => err, exit };
}

// polled often: a staging file must be caught before the write finishes
const waitFor = <T>(what: string, get: () => Promise<T | undefined> | T | undefined) => poll(what, get, { ms: 60_000, every: 10 });

const stagingIn = async (dir: string) => (await readdir(dir)).filter((n) => n.endsWith('.tmp'));

/** Starts an apply into `dir`, and stops it (SIGSTOP) once its staging file exists, before it can finish. */
async function applyCaughtMidWrite(dir: string): Promise<Child & { staging: string }> {
  await rm(tmp.path(dir), { recursive: true, force: true });
  await mkdir(tmp.path(dir), { recursive: true });
  const run = cli(['apply', 'base.safetensors', `${dir}/merged.safetensors`, 'lora.safetensors']);
  const staging = await waitFor(`a staging file in ${dir} (stderr: ${run.stderr()})`, async () => (await stagingIn(tmp.path(dir)))[0]);
  run.child.kill('SIGSTOP');
  // the run's staging name, or the writer's staging name for it: both carry the pid
  expect(staging).toMatch(new RegExp(`^\\.\\.?merged\\.safetensors\\.(${run.child.pid}\\.[0-9a-f]{12}\\.tmp\\.)?${run.child.pid}\\.[0-9a-f]{12}\\.tmp$`));
  expect(await exists(tmp.path(dir, 'merged.safetensors')), 'the run finished before it could be stopped').toBe(false);
  return { ...run, staging };
}

describe('a CLI run killed mid-write', () => {
  it.each(FATAL_SIGNALS.filter((s) => s !== 'SIGINT'))('%s: the staging file is removed and the process dies of the signal', async (signal) => {
    const run = await applyCaughtMidWrite(`out-${signal}`);
    run.child.kill(signal);
    run.child.kill('SIGCONT');
    expect(await run.exit).toEqual({ code: null, signal });
    expect(await readdir(tmp.path(`out-${signal}`))).toEqual([]);
  });

  it('SIGINT cancels the run: exit 1, no file left', async () => {
    const run = await applyCaughtMidWrite('out-SIGINT');
    run.child.kill('SIGINT');
    run.child.kill('SIGCONT');
    expect((await run.exit).code).toBe(1);
    expect(run.stderr()).toMatch(/cancel/i);
    expect(await readdir(tmp.path('out-SIGINT'))).toEqual([]);
  });

  it('a second SIGINT quits at once (exit 130) through the exit hook, still without leaving a file', async () => {
    const run = await applyCaughtMidWrite('out-SIGINT2');
    run.child.kill('SIGINT');
    run.child.kill('SIGCONT');
    await waitFor('the cancel message', () => (/cancelling/.test(run.stderr()) ? true : undefined));
    run.child.kill('SIGINT');
    const { code } = await run.exit;
    // 1 when the cooperative cancel won the race with the second Ctrl+C; either way nothing is left
    expect([130, 1]).toContain(code);
    expect(await readdir(tmp.path('out-SIGINT2'))).toEqual([]);
  });

  it('SIGKILL leaves the file; the next run in that folder sweeps it, and leaves a live process\'s file alone', async () => {
    const killed = await applyCaughtMidWrite('out-SIGKILL');
    killed.child.kill('SIGKILL');
    expect((await killed.exit).signal).toBe('SIGKILL');
    expect(await stagingIn(tmp.path('out-SIGKILL'))).toEqual([killed.staging]);

    const live = await applyCaughtMidWrite('out-live');
    // a live process's staging file, moved into the folder the next run writes to
    await rm(tmp.path('out-live', live.staging));
    const liveName = `.other.safetensors.${live.child.pid}.0123456789ab.tmp`;
    await writeFile(tmp.path('out-SIGKILL', liveName), 'x');

    const next = cli(['apply', 'base.safetensors', 'out-SIGKILL/second.safetensors', 'lora.safetensors']);
    expect((await next.exit).code, next.stderr()).toBe(0);
    expect((await readdir(tmp.path('out-SIGKILL'))).sort()).toEqual([liveName, 'second.safetensors']);
    live.child.kill('SIGKILL');
    await live.exit;
  });
});

describe('loraflow serve', () => {
  it.each(['SIGTERM', 'SIGHUP'] as const)('%s stops it with its run cancelled and no staging file left (exit 0)', async (signal) => {
    const dir = `serve-${signal}`;
    await mkdir(tmp.path(dir), { recursive: true });
    const s = cli(['serve', '--port', '0']);
    const url = await waitFor('the server URL', () => /loraflow editor: (http:\/\/127\.0\.0\.1:\d+)\//.exec(s.stderr())?.[1]);
    const recipe = {
      format: 'loraflow.recipe',
      schemaVersion: 1,
      nodes: {
        base: { type: 'load-model', params: { path: 'base.safetensors' } },
        lora: { type: 'load-lora', params: { path: 'lora.safetensors' } },
        merge: { type: 'merge-into-base', in: { base: 'base.model', loras: ['lora.lora'] }, params: { path: `${dir}/merged.safetensors` } },
      },
    };
    const res = await fetch(`${url}/api/runs`, { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: url }, body: JSON.stringify({ recipe }) });
    expect(res.status, await res.clone().text()).toBeLessThan(300);
    await waitFor('a staging file', async () => (await stagingIn(tmp.path(dir)))[0]);
    s.child.kill(signal);
    expect((await s.exit).code, s.stderr()).toBe(0);
    expect(await readdir(tmp.path(dir))).toEqual([]);
  });
});
