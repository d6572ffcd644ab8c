/**
 * The run history's "Open recipe" and "Re-run": every run keeps the recipe and overrides it was
 * submitted with (GET /api/runs/:id/recipe), and a finished run runs again as a new run tagged
 * with the one it repeats (POST /api/runs/:id/rerun), on the in-process queue and on the Redis one
 * (where a server that only listed a run reads its recipe from the job on Redis).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisServerInstalled, startTestRedis, type TestRedis } from '../server/testing/redis.ts';
import { startTestServer, testRecipe, type TestServer } from './helpers/server-harness.ts';

/** read(three.txt) → write(out, exposed as `out`): the output file holds 3. */
const recipe = (out: string) =>
  testRecipe(
    {
      read: { type: 'test.read', v: '1.0.0', params: { path: 'three.txt' } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'read.value' }, params: { path: out } },
    },
    { expose: { out: 'save.params.path' } },
  );

describe('history on the in-process queue', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
    await writeFile(path.join(t.loras, 'three.txt'), '3');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('gives back the recipe and overrides of a past run, and re-runs it as a new run', async () => {
    const first = await t.post('/api/runs', { recipe: recipe('a.json'), overrides: { out: 'b.json' } });
    expect(first.status).toBe(202);
    const done = await t.waitForRun(first.body.runId);
    expect(done.status).toBe('success');

    const opened = await t.get(`/api/runs/${first.body.runId}/recipe`);
    expect(opened.status).toBe(200);
    // `baked`: the override written into the param it set
    expect(opened.body).toEqual({ runId: first.body.runId, status: 'success', recipe: recipe('a.json'), overrides: { out: 'b.json' }, baked: recipe('b.json') });

    // the file it wrote changes; the re-run writes it again, with the same override
    await writeFile(path.join(t.output, 'b.json'), 'stale');
    const again = await t.post(`/api/runs/${first.body.runId}/rerun`);
    expect(again.status).toBe(202);
    expect(again.body.rerunOf).toBe(first.body.runId);
    expect(again.body.runId).not.toBe(first.body.runId);
    const second = await t.waitForRun(again.body.runId);
    expect(second.status).toBe('success');
    expect(second.rerunOf).toBe(first.body.runId);
    expect(second.overrides).toEqual({ out: 'b.json' });
    expect(JSON.parse(await readFile(path.join(t.output, 'b.json'), 'utf8')).value).toBe(3);
    const list = await t.get('/api/runs');
    expect(list.body.runs.find((r: { id: string }) => r.id === again.body.runId).rerunOf).toBe(first.body.runId);
  });

  it('refuses to re-run a run that has not finished, one that would no longer validate, and unknown ids', async () => {
    const slow = testRecipe({
      read: { type: 'test.read', v: '1.0.0', params: { path: 'three.txt' } },
      slow: { type: 'test.slow', v: '1.0.0', in: { x: 'read.value' }, params: { steps: 40 } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'slow.y' }, params: { path: 'slow.json' } },
    });
    const running = await t.post('/api/runs', { recipe: slow });
    expect(running.status, JSON.stringify(running.body)).toBe(202);
    const early = await t.post(`/api/runs/${running.body.runId}/rerun`);
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('run_not_finished');
    await t.post(`/api/runs/${running.body.runId}/cancel`);
    expect((await t.waitForRun(running.body.runId)).status).toBe('cancelled');

    // a run whose input file is gone since: the re-run is refused with the per-node report
    await writeFile(path.join(t.loras, 'gone.txt'), '1');
    const uses = testRecipe({
      read: { type: 'test.read', v: '1.0.0', params: { path: 'gone.txt' } },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'read.value' }, params: { path: 'gone.json' } },
    });
    const ran = await t.post('/api/runs', { recipe: uses });
    expect(ran.status, JSON.stringify(ran.body)).toBe(202);
    expect((await t.waitForRun(ran.body.runId)).status).toBe('success');
    await rm(path.join(t.loras, 'gone.txt'));
    const refused = await t.post(`/api/runs/${ran.body.runId}/rerun`);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('invalid_recipe');
    expect(refused.body.error.message).toContain('gone.txt');

    expect((await t.get('/api/runs/nope/recipe')).status).toBe(404);
    expect((await t.post('/api/runs/nope/rerun')).status).toBe(404);
  });
});

const HAVE_REDIS = redisServerInstalled();
if (!HAVE_REDIS) console.warn('test/server-history.test.ts: Redis part SKIPPED — redis-server is not installed');

describe.skipIf(!HAVE_REDIS)('history on the Redis queue', () => {
  let redis: TestRedis;
  let a: TestServer;
  let b: TestServer | undefined;
  beforeAll(async () => {
    redis = await startTestRedis();
    a = await startTestServer({ queue: { url: redis.url, name: 'history' } });
    await writeFile(path.join(a.loras, 'three.txt'), '3');
  }, 60_000);
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await redis?.stop();
  });

  it('a server that only listed a run (no worker took it yet) reads its recipe from the job; a cancelled run re-runs as a new job', async () => {
    const sent = await a.post('/api/runs', { recipe: recipe('r.json'), overrides: { out: 'r2.json' } });
    expect(sent.status).toBe(202);
    const id = sent.body.runId;
    expect((await a.get(`/api/runs/${id}/recipe`)).body.recipe).toEqual(recipe('r.json'));
    // a second server on the same queue, started after the submission: it lists the waiting job
    b = await startTestServer({ queue: { url: redis.url, name: 'history' } });
    const other = await b.get(`/api/runs/${id}/recipe`);
    expect(other.status).toBe(200);
    expect(other.body).toMatchObject({ runId: id, status: 'queued', recipe: recipe('r.json'), overrides: { out: 'r2.json' } });
    expect((await a.post(`/api/runs/${id}/rerun`)).status).toBe(409);
    expect((await a.post(`/api/runs/${id}/cancel`)).status).toBe(202);
    expect((await a.get(`/api/runs/${id}`)).body.status).toBe('cancelled');
    const again = await a.post(`/api/runs/${id}/rerun`);
    expect(again.status).toBe(202);
    const rec = (await a.get(`/api/runs/${again.body.runId}`)).body;
    expect(rec).toMatchObject({ status: 'queued', rerunOf: id, overrides: { out: 'r2.json' }, recipe: recipe('r.json') });
    await a.post(`/api/runs/${again.body.runId}/cancel`);
  });
});
