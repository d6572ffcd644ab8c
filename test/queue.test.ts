/**
 * `loraflow serve --queue` with `loraflow worker` processes on a real redis-server (a private one on
 * a free loopback port, nothing saved): runs and sweep points spread over two workers (which one
 * ran each is recorded, outputs checked by value), events reaching the WebSocket through Redis, a
 * worker killed mid-run (its job retried on the other, the output correct, never a partial file
 * under the final name), and cancel from the server stopping a run on a worker. The workers load
 * the engine's test nodes (numbers instead of LoRAs: exact, fast, and with delays to kill into).
 * Last, the editor (headless Chromium): its Queue tab lists the runs with their workers and
 * submits the graph on the canvas as a sweep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './helpers/browser.ts';
import WebSocket from 'ws';
import { TEST_NODES, startTestServer, testRecipe, type TestServer } from './helpers/server-harness.ts';
import { waitFor } from './helpers/wait.ts';
import { redisServerInstalled, startTestRedis, type TestRedis } from '../server/testing/redis.ts';

const BIN = fileURLToPath(new URL('../bin/loraflow.js', import.meta.url));
const HAVE_REDIS = redisServerInstalled();
if (!HAVE_REDIS) console.warn('test/queue.test.ts: SKIPPED — redis-server is not installed (apt-get install redis-server; .ci/run installs it)');

/** Short locks so a killed worker's run is taken over in a few seconds. */
const LOCK_MS = 3000;

let redis: TestRedis;
let t: TestServer;
const workers = new Map<string, { child: ChildProcess; log: string[] }>();
const socketEvents: { type: string; runId?: string; worker?: string; [k: string]: unknown }[] = [];
let ws: WebSocket | undefined;

function startWorker(name: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [BIN, 'worker', '--queue', redis.url, '--name', name, '--lock-ms', String(LOCK_MS), '--nodes', fileURLToPath(TEST_NODES), '--root', `loras=${t.loras}`, '--root', `output=${t.output}`],
    { cwd: t.dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const log: string[] = [];
  workers.set(name, { child, log });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${name} did not start: ${log.join('')}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      log.push(d.toString());
      if (log.join('').includes('waiting for runs')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`worker ${name} exited (${code}): ${log.join('')}`)));
  });
}

async function stopWorker(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const w = workers.get(name);
  if (!w || w.child.exitCode !== null || w.child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    w.child.once('exit', () => resolve());
    w.child.kill(signal);
  });
}

const run = async (id: string) => (await t.get(`/api/runs/${id}`)).body;
const valueOf = async (rel: string) => (JSON.parse(await readFile(path.join(t.output, rel), 'utf8')) as { value: number }).value;

/** read(3) → add(·scale) → write: the output holds 3·scale. */
const scaled = (out: string, delayMs = 0) =>
  testRecipe(
    {
      read: { type: 'test.read', v: '1.0.0', params: { path: 'three.txt' } },
      add: { type: 'test.add', v: '2.1.0', in: { a: 'read.value' }, params: { scale: 1 } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'add.sum' }, params: { path: out, delayMs } },
    },
    { expose: { k: 'add.params.scale', out: 'save.params.path' } },
  );

describe.skipIf(!HAVE_REDIS)('runs on a BullMQ queue with two loraflow workers', () => {
  beforeAll(async () => {
    redis = await startTestRedis();
    t = await startTestServer({ queue: { url: redis.url } });
    await writeFile(path.join(t.loras, 'three.txt'), '3');
    await Promise.all([startWorker('A'), startWorker('B')]);
    ws = new WebSocket(`ws://127.0.0.1:${t.server.port}/ws`);
    ws.on('message', (d) => socketEvents.push(JSON.parse(String(d)) as (typeof socketEvents)[number]));
    await new Promise((resolve, reject) => ws!.once('open', resolve).once('error', reject));
  }, 90_000);

  afterAll(async () => {
    ws?.close();
    await Promise.all([...workers.keys()].map((n) => stopWorker(n, 'SIGKILL')));
    await t?.close();
    await redis?.stop();
  });

  it('spreads a sweep submitted to the server over both workers; every point has its own correct output', async () => {
    const r = await t.post('/api/sweeps', { recipe: scaled('spread.json', 150), axes: { k: [1, 2, 3, 4, 5, 6] } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.templates).toEqual({ out: 'spread-{k}.json' });
    expect(r.body.runs.map((x: { overrides: unknown }) => x.overrides)).toEqual([1, 2, 3, 4, 5, 6].map((k) => ({ k, out: `spread-${k}.json` })));
    const ids: string[] = r.body.runs.map((x: { runId: string }) => x.runId);
    await waitFor('the sweep to finish', async () => ((await t.get(`/api/sweeps/${r.body.sweepId}`)).body.done === 6 ? true : undefined), { ms: 30_000 });

    const byWorker = new Map<string, number>();
    const byId = new Map<string, string>();
    for (const [i, id] of ids.entries()) {
      const rec = await run(id);
      expect(rec.status).toBe('success');
      expect(rec.sweep).toEqual({ id: r.body.sweepId, index: i + 1, total: 6, label: `k=${i + 1}` });
      expect(['A', 'B']).toContain(rec.worker);
      byWorker.set(rec.worker, (byWorker.get(rec.worker) ?? 0) + 1);
      byId.set(id, rec.worker);
      // The worker's run events came through Redis, each tagged with who ran it.
      const types = rec.events.map((e: { type: string }) => e.type);
      expect(types).toEqual(expect.arrayContaining(['run.queued', 'run.assigned', 'run.start', 'node.done', 'run.success']));
      expect(rec.events.filter((e: { type: string }) => e.type !== 'run.queued').every((e: { worker?: string }) => e.worker === rec.worker)).toBe(true);
      expect(await valueOf(`spread-${i + 1}.json`)).toBe(3 * (i + 1));
      expect(socketEvents.find((e) => e.type === 'run.success' && e.runId === id)).toMatchObject({ worker: rec.worker });
    }
    expect([...byWorker.keys()].sort()).toEqual(['A', 'B']);
    const list = await t.get('/api/runs');
    expect(list.body.queue).toBe('redis');
    const listed = list.body.runs.filter((x: { sweep?: { id: string } }) => x.sweep?.id === r.body.sweepId);
    expect(listed.map((x: { worker: string; status: string }) => `${x.status}@${x.worker}`).sort()).toEqual(ids.map((id) => `success@${byId.get(id)}`).sort());
  }, 90_000);

  it('retries the run of a worker killed mid-run on the other worker; the output is correct and never partial', async () => {
    const r = await t.post('/api/runs', { recipe: scaled('killed.json', 2500), overrides: { k: 7 } });
    expect(r.status).toBe(202);
    const id: string = r.body.runId;
    // The save node has written its staging file and is in its delay: kill the worker there.
    const first = await waitFor('the save node to be writing', async () => {
      const rec = await run(id);
      return rec.events.some((e: { type: string; nodeId?: string }) => e.type === 'node.progress' && e.nodeId === 'save') ? rec : undefined;
    });
    const victim: string = first.worker;
    const survivor = victim === 'A' ? 'B' : 'A';
    await stopWorker(victim, 'SIGKILL');
    const staged = (await readdir(t.output)).filter((f) => f.startsWith('.killed.json.'));
    expect(staged).toHaveLength(1); // the dead worker's staging file, under a staging name only
    expect((await readdir(t.output)).includes('killed.json')).toBe(false);

    const done = await t.waitForRun(id, 60_000);
    expect(done.status).toBe('success');
    expect(done.worker).toBe(survivor);
    expect(done.attempts).toBe(2);
    const stalled = done.events.find((e: { type: string }) => e.type === 'run.stalled');
    expect(stalled).toMatchObject({ worker: victim, message: expect.stringMatching(/stopped responding/) });
    const assigned = done.events.filter((e: { type: string }) => e.type === 'run.assigned').map((e: { worker: string; attempt: number }) => [e.worker, e.attempt]);
    expect(assigned).toEqual([[victim, 1], [survivor, 2]]);
    expect(await valueOf('killed.json')).toBe(21);
    // The final file is the survivor's complete one: its provenance names the run's overrides.
    expect(JSON.parse(await readFile(path.join(t.output, 'killed.json'), 'utf8')).provenance.overrides).toEqual({ k: 7 });
  }, 90_000);

  it('cancels from the server: a run on a worker stops mid-node, a queued one never starts; neither writes anything', async () => {
    const slow = testRecipe({
      read: { type: 'test.read', v: '1.0.0', params: { path: 'three.txt' } },
      slow: { type: 'test.slow', v: '1.0.0', in: { x: 'read.value' }, params: { steps: 1000 } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'slow.y' }, params: { path: 'cancelled.json' } },
    });
    const running = (await t.post('/api/runs', { recipe: slow })).body.runId as string;
    const queued = (await t.post('/api/runs', { recipe: scaled('never.json') })).body.runId as string;
    await waitFor('the slow node to report progress', async () => ((await run(running)).events.some((e: { type: string }) => e.type === 'node.progress') ? true : undefined));
    // One worker is left (concurrency 1), busy with the slow run: the second one waits in the queue.
    expect((await run(queued)).status).toBe('queued');
    const q = await t.post(`/api/runs/${queued}/cancel`);
    expect(q.status).toBe(202);
    expect((await run(queued)).status).toBe('cancelled');

    const asked = Date.now();
    expect((await t.post(`/api/runs/${running}/cancel`)).status).toBe(202);
    const done = await t.waitForRun(running, 15_000);
    expect(done.status).toBe('cancelled');
    expect(Date.now() - asked).toBeLessThan(6000); // 1000 steps take at least 10 s
    expect(done.events.at(-1)).toMatchObject({ type: 'run.cancelled', nodeId: 'slow', worker: done.worker });

    const never = await run(queued);
    expect(never.events.map((e: { type: string }) => e.type)).toEqual(['run.queued', 'run.cancelled']);
    expect((await t.post(`/api/runs/${running}/cancel`)).status).toBe(409);
    const files = await readdir(t.output);
    expect(files.filter((f) => f.includes('cancelled.json') || f.includes('never.json'))).toEqual([]);
  }, 60_000);

  it('the editor lists queued, running and finished runs with their worker, and submits a sweep', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(t.url);
      await page.waitForSelector('body[data-ready="true"]');
      await page.click('.tabs button[data-tab="queue"]');
      expect(await page.isVisible('#tab-queue')).toBe(true);
      expect(await page.isVisible('#tab-run')).toBe(false);
      // Runs of the earlier tests, with who ran them (the killed run: its survivor, on attempt 2).
      await page.waitForSelector('#queue-table tr[data-run]');
      const killedRow = await page.locator('#queue-table tr.success .worker').allTextContents();
      expect(killedRow.some((w) => /^[AB] \(attempt 2\)$/.test(w))).toBe(true);
      expect(await page.locator('#queue-table tr.cancelled').count()).toBeGreaterThanOrEqual(2);

      // The graph on the canvas, swept over k from the Queue tab.
      await page.evaluate((recipe) => (window as unknown as { loraflow: { loadRecipe(r: unknown, label: string): void } }).loraflow.loadRecipe(recipe, 'sweep test'), scaled('ui.json'));
      await page.fill('#sweep-axes', 'k=10,11');
      await page.click('#btn-sweep');
      await page.waitForFunction(() => /2 run\(s\) queued/.test(document.getElementById('sweep-result')?.textContent ?? ''));
      expect(await page.textContent('#sweep-result')).toMatch(/outputs: out = ui-\{k\}\.json/);
      await waitFor('both sweep points', async () => ((await t.get('/api/runs')).body.runs.filter((r: { sweep?: { total: number }; status: string }) => r.sweep?.total === 2 && r.status === 'success').length === 2 ? true : undefined));
      expect([await valueOf('ui-10.json'), await valueOf('ui-11.json')]).toEqual([30, 33]);
      await page.waitForFunction(() => Array.from(document.querySelectorAll('#queue-table tr.success')).filter((tr) => /·\s*\d\/2\s*·\s*k=1[01]/.test(tr.textContent ?? '')).length === 2);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 90_000);
});
