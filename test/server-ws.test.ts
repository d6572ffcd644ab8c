import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { EventHub } from '../server/event-hub.ts';
import { startTestServer, testRecipe, type TestServer } from './helpers/server-harness.ts';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
  await writeFile(path.join(t.loras, 'seven.txt'), '7');
});
afterAll(async () => {
  await t.close();
});

type Msg = { type: string; seq?: number; runId?: string; nodeId?: string; [k: string]: unknown };

/** A socket that records every message and can wait for one matching a predicate. */
async function connect(query = '') {
  const ws = new WebSocket(`ws://127.0.0.1:${t.server.port}/ws${query}`);
  const messages: Msg[] = [];
  const waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as Msg;
    messages.push(m);
    for (const w of [...waiters]) {
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const waitFor = (pred: (m: Msg) => boolean, ms = 20_000) =>
    new Promise<Msg>((resolve, reject) => {
      const hit = messages.find(pred);
      if (hit) return resolve(hit);
      const timer = setTimeout(() => reject(new Error(`no matching message in ${ms} ms; got ${messages.map((m) => m.type).join(', ')}`)), ms);
      waiters.push({ pred, resolve: (m) => (clearTimeout(timer), resolve(m)) });
    });
  return { ws, messages, waitFor, close: () => ws.close() };
}

const chain = (out: string, steps: number) =>
  testRecipe({
    read: { type: 'test.read', v: '1.0.0', params: { path: 'seven.txt' } },
    slow: { type: 'test.slow', v: '1.0.0', in: { x: 'read.value' }, params: { steps } },
    save: { type: 'test.write', v: '1.0.0', in: { value: 'slow.y' }, params: { path: out } },
  });

const ended = (runId: string) => (m: Msg) => m.runId === runId && ['run.success', 'run.error', 'run.cancelled', 'run.invalid'].includes(m.type);

describe('/ws', () => {
  it('streams every run event with run id, node id and a contiguous sequence number', async () => {
    const c = await connect();
    const hello = await c.waitFor((m) => m.type === 'hello');
    expect(hello).toMatchObject({ running: null, queued: 0 });
    const { body } = await t.post('/api/runs', { recipe: chain('ws1.json', 5) });
    await c.waitFor(ended(body.runId));
    const events = c.messages.filter((m) => m.seq !== undefined);
    const seqs = events.map((m) => m.seq!);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    const run = events.filter((m) => m.runId === body.runId);
    // Progress is throttled by the engine (first and last always sent), so collapse repeats.
    const types = run.map((m) => m.type).filter((x) => x !== 'node.log');
    expect(types.filter((x, i) => x !== 'node.progress' || types[i - 1] !== 'node.progress')).toEqual([
      'run.queued',
      'run.start',
      'node.start', 'node.done',
      'node.start', 'node.progress', 'node.done',
      'node.start', 'node.done',
      'run.success',
    ]);
    for (const m of run.filter((x) => x.type.startsWith('node.'))) expect(m.nodeId).toMatch(/^(read|slow|save)$/);
    const progress = run.filter((m) => m.type === 'node.progress');
    expect(progress.every((m) => m.nodeId === 'slow' && m.max === 5)).toBe(true);
    expect(progress.map((m) => m.value)).toEqual([...progress.map((m) => m.value as number)].sort((a, b) => a - b));
    expect([progress[0]!.value, progress.at(-1)!.value]).toEqual([0, 5]);
    const done = run.find((m) => m.type === 'node.done' && m.nodeId === 'save')!;
    expect(done.ms).toEqual(expect.any(Number));
    expect(done.summary).toEqual({ path: 'ws1.json', value: 7 });
    expect(run.at(-1)).toMatchObject({ type: 'run.success', written: [path.join(t.output, 'ws1.json')] });
    // The same events, same numbers, are the run's log over HTTP.
    const log = (await t.get(`/api/runs/${body.runId}`)).body.events;
    expect(log.map((m: Msg) => m.seq)).toEqual(run.map((m) => m.seq));
    // Queue status messages carry the queue length; the one saying the queue is idle may come just after the run's last event.
    const last = run.at(-1)!.seq!;
    expect(await c.waitFor((m) => m.type === 'status' && m.seq! > last)).toMatchObject({ queueRemaining: 0, running: null });
    c.close();
  });

  it('reports cached nodes when the same recipe runs again', async () => {
    const c = await connect();
    const first = await t.post('/api/runs', { recipe: chain('cached.json', 1) });
    await c.waitFor(ended(first.body.runId));
    const second = await t.post('/api/runs', { recipe: chain('cached.json', 1) });
    await c.waitFor(ended(second.body.runId));
    const run = c.messages.filter((m) => m.runId === second.body.runId);
    const start = run.find((m) => m.type === 'run.start') as Msg & { plan: { cached: string[] } };
    expect(start.plan.cached.sort()).toEqual(['read', 'save', 'slow']);
    expect(run.filter((m) => m.type === 'node.cached').map((m) => m.nodeId).sort()).toEqual(['read', 'save', 'slow']);
    expect(run.some((m) => m.type === 'node.start')).toBe(false);
    c.close();
  });

  it('sends run.error naming the node, and run.cancelled on cancel', async () => {
    const c = await connect();
    const bad = testRecipe({
      one: { type: 'test.const', v: '1.0.0' },
      boom: { type: 'test.fail', v: '1.0.0', in: { x: 'one.value' }, params: { message: 'no luck' } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'boom.y' }, params: { path: 'e.json' } },
    });
    const r1 = await t.post('/api/runs', { recipe: bad });
    expect(await c.waitFor(ended(r1.body.runId))).toMatchObject({ type: 'run.error', nodeId: 'boom', nodeType: 'test.fail', message: 'no luck' });

    const r2 = await t.post('/api/runs', { recipe: chain('cancel.json', 1000) });
    await c.waitFor((m) => m.runId === r2.body.runId && m.type === 'node.progress');
    await t.post(`/api/runs/${r2.body.runId}/cancel`);
    expect(await c.waitFor(ended(r2.body.runId))).toMatchObject({ type: 'run.cancelled', nodeId: 'slow' });
    c.close();
  });

  it('replays what a client missed from ?since=N, then continues live without duplicates', async () => {
    const before = (await t.get('/api/health')).body.lastSeq as number;
    const r = await t.post('/api/runs', { recipe: chain('replay.json', 3) });
    const run = await t.waitForRun(r.body.runId);
    // A client that saw everything up to `before` reconnects after the run finished.
    const c = await connect(`?since=${before}`);
    await c.waitFor(ended(r.body.runId));
    const replayed = c.messages.filter((m) => m.runId === r.body.runId);
    expect(replayed.map((m) => m.seq)).toEqual(run.events.map((e: Msg) => e.seq));
    // Live events keep coming after the replay, each once.
    const r2 = await t.post('/api/runs', { recipe: chain('replay-2.json', 1) });
    await c.waitFor(ended(r2.body.runId));
    const seqs = c.messages.filter((m) => m.seq !== undefined).map((m) => m.seq!);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

    // The same through a message on an open socket.
    const d = await connect();
    await d.waitFor((m) => m.type === 'hello');
    d.ws.send(JSON.stringify({ type: 'replay', since: before }));
    await d.waitFor(ended(r.body.runId));
    expect(d.messages.filter((m) => m.runId === r.body.runId).map((m) => m.seq)).toEqual(run.events.map((e: Msg) => e.seq));
    d.ws.send('not json');
    expect((await d.waitFor((m) => m.type === 'error')).message).toBe('message is not JSON');
    c.close();
    d.close();
  });

  it('tells a client when its since is from another server process or too old', async () => {
    const c = await connect('?since=999999999');
    expect(await c.waitFor((m) => m.type === 'replay.reset')).toMatchObject({ since: 999999999 });
    c.close();
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${t.server.port}/ws?since=-1`);
      ws.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => undefined);
    });
    expect(refused).toBe(400);

    const hub = new EventHub(3);
    for (let i = 0; i < 5; i++) hub.publish({ type: 'x', runId: 'r' });
    expect(hub.since(0)).toEqual({ events: [expect.objectContaining({ seq: 3 }), expect.objectContaining({ seq: 4 }), expect.objectContaining({ seq: 5 })], complete: false });
    expect(hub.since(2).complete).toBe(true);
    expect(hub.since(4).events.map((e) => e.seq)).toEqual([5]);
  });
});
