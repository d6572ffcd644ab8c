import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { PublicBindError, startServer } from '../server/app.ts';
import { checkOrigin, isLoopbackHost } from '../server/origin.ts';
import { TEST_NODES, startTestServer, testRecipe, type TestServer } from './helpers/server-harness.ts';

let t: TestServer;
/** A directory outside every root, holding a "secret" the server must never reveal. */
let outside: string;
beforeAll(async () => {
  t = await startTestServer({ maxJsonBytes: 64 * 1024 });
  outside = await mkdtemp(path.join(tmpdir(), 'loraflow-outside-'));
  await writeFile(path.join(outside, 'secret.safetensors'), 'not for you');
  await writeFile(path.join(t.loras, 'ok.txt'), '1');
  await mkdir(path.join(t.loras, 'inner'));
  await writeFile(path.join(t.loras, 'inner', 'deep.txt'), '2');
  // Links inside the root: one escaping to a directory, one to a file, one staying inside.
  await symlink(outside, path.join(t.loras, 'escape-dir'));
  await symlink(path.join(outside, 'secret.safetensors'), path.join(t.loras, 'escape.safetensors'));
  await symlink(path.join(t.loras, 'inner'), path.join(t.loras, 'inner-link'));
});
afterAll(async () => {
  await t.close();
  await rm(outside, { recursive: true, force: true });
});

const port = () => t.server.port;

describe('origin and host checks', () => {
  it('serves same-origin and origin-less requests', async () => {
    expect((await t.raw('GET', '/api/nodes')).status).toBe(200);
    expect((await t.raw('GET', '/api/nodes', { headers: { Origin: `http://127.0.0.1:${port()}` } })).status).toBe(200);
    expect((await t.raw('GET', '/api/nodes', { headers: { Host: `localhost:${port()}`, Origin: `http://localhost:${port()}` } })).status).toBe(200);
  });

  it('refuses cross-origin requests with 403, GETs and state-changing POSTs alike', async () => {
    const recipe = JSON.stringify({ recipe: testRecipe({ c: { type: 'test.const', v: '1.0.0' } }) });
    for (const origin of ['http://evil.example', `http://evil.example:${port()}`, 'null', 'file://', `http://127.0.0.1:${port() + 1}`, `http://localhost:${port()}`]) {
      const get = await t.raw('GET', '/api/files?root=loras', { headers: { Origin: origin } });
      expect(get.status, origin).toBe(403);
      expect(get.body.error.code).toBe('forbidden_origin');
      const post = await t.raw('POST', '/api/runs', { headers: { Origin: origin, 'Content-Type': 'application/json' }, body: recipe });
      expect(post.status, origin).toBe(403);
    }
    expect((await t.get('/api/runs')).body.total).toBe(0);
  });

  it('refuses non-loopback Host names (DNS rebinding)', async () => {
    const r = await t.raw('GET', '/api/nodes', { headers: { Host: `rebind.evil.example:${port()}` } });
    expect(r.status).toBe(403);
    expect(r.body.error.message).toContain('rebind.evil.example');
    expect((await t.raw('GET', '/', { headers: { Host: `attacker.example:${port()}` } })).status).toBe(403);
  });

  it('refuses cross-origin WebSocket upgrades with 403', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port()}/ws`, { headers: { Origin: 'http://evil.example' } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('cross-origin socket was accepted')));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(403);
    const ok = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port()}/ws`, { headers: { Origin: `http://127.0.0.1:${port()}` } });
      ws.on('message', (m) => {
        resolve(JSON.parse(String(m)).type);
        ws.close();
      });
      ws.on('error', reject);
    });
    expect(ok).toBe('hello');
  });

  it('classifies hosts and origins', () => {
    for (const h of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', 'foo.localhost']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '192.168.1.2', 'example.com', 'localhost.example.com', '::']) expect(isLoopbackHost(h), h).toBe(false);
    const req = (host: string, origin?: string) => ({ headers: { host, ...(origin ? { origin } : {}) } });
    expect(checkOrigin(req('192.168.1.2:8188', 'http://192.168.1.2:8188'), { allowPublic: true }).ok).toBe(true);
    expect(checkOrigin(req('192.168.1.2:8188', 'http://evil.example'), { allowPublic: true }).ok).toBe(false);
    expect(checkOrigin(req('192.168.1.2:8188'), { allowPublic: false }).ok).toBe(false);
  });

  it('will not bind a public address without allowPublic', async () => {
    await expect(startServer({ host: '0.0.0.0', port: 0, nodesModule: TEST_NODES })).rejects.toThrow(PublicBindError);
  });
});

describe('paths stay inside their roots', () => {
  it('refuses .., absolute paths and backslashes in the file browser', async () => {
    for (const [p, code] of [
      ['..', 'bad_path'],
      ['../..', 'bad_path'],
      ['inner/../..', 'bad_path'],
      ['%2E%2E%2F%2E%2E', 'bad_path'],
      ['/etc', 'bad_path'],
      ['C:/Windows', 'bad_path'],
      ['..%5C..', 'bad_path'],
      ['inner%00', 'bad_path'],
    ]) {
      const r = await t.raw('GET', `/api/files?root=loras&path=${p}`);
      expect(r.status, p).toBe(400);
      expect(r.body.error.code, p).toBe(code);
    }
  });

  it('refuses symlinks that lead outside the root, and hides them from listings', async () => {
    const dir = await t.get('/api/files?root=loras&path=escape-dir');
    expect(dir.status).toBe(403);
    expect(dir.body.error.code).toBe('path_escapes_root');
    const file = await t.get('/api/inspect?root=loras&path=escape.safetensors');
    expect(file.status).toBe(403);
    expect(JSON.stringify(file.body)).not.toContain(outside);

    const list = await t.get('/api/files?root=loras');
    expect(list.body.entries.map((e: { name: string }) => e.name)).toEqual(['inner', 'inner-link', 'ok.txt']);
    expect(list.body.hidden).toBe(2);
    const rec = await t.get('/api/files?root=loras&recursive=1');
    expect(rec.body.entries.map((e: { path: string }) => e.path).sort()).toEqual(['inner-link/deep.txt', 'inner/deep.txt', 'ok.txt']);
    // A link that stays inside is fine.
    expect((await t.get('/api/files?root=loras&path=inner-link')).body.entries[0].name).toBe('deep.txt');
  });

  it('refuses runs whose file params leave their root, before anything runs', async () => {
    for (const p of ['../../etc/passwd', '/etc/passwd', 'escape.safetensors']) {
      const doc = testRecipe({
        read: { type: 'test.read', v: '1.0.0', params: { path: p } },
        save: { type: 'test.write', v: '1.0.0', in: { value: 'read.value' }, params: { path: 'x.json' } },
      });
      const r = await t.post('/api/runs', { recipe: doc });
      expect(r.status, p).toBe(400);
      expect(r.body.error.details.problems, p).toContainEqual(expect.objectContaining({ code: 'bad_path', nodeId: 'read', param: 'path' }));
    }
    const out = testRecipe({
      c: { type: 'test.const', v: '1.0.0' },
      save: { type: 'test.write', v: '1.0.0', in: { value: 'c.value' }, params: { path: '../../pwned.json' } },
    });
    expect((await t.post('/api/runs', { recipe: out })).body.error.details.problems).toContainEqual(expect.objectContaining({ code: 'bad_path', nodeId: 'save' }));
    expect(await readdir(path.dirname(t.dir))).not.toContain('pwned.json');
  });

  it('keeps recipe names inside the recipes folder, links included', async () => {
    await mkdir(t.recipes, { recursive: true });
    await writeFile(path.join(outside, 'stolen.json'), JSON.stringify(testRecipe({})));
    await symlink(path.join(outside, 'stolen.json'), path.join(t.recipes, 'linked.json'));
    const read = await t.get('/api/recipes/linked');
    expect(read.status).toBe(403);
    expect(read.body.error.code).toBe('path_escapes_root');
    const write = await t.request('PUT', '/api/recipes/linked', { recipe: testRecipe({}) });
    expect(write.status).toBe(403);
    expect(await readFile(path.join(outside, 'stolen.json'), 'utf8')).toBe(JSON.stringify(testRecipe({})));
    for (const name of ['%2E%2E%2Foutside', '..%2F..%2Fetc%2Fpasswd', 'a%00b']) {
      expect((await t.raw('GET', `/api/recipes/${name}`)).status, name).toBe(400);
    }
  });
});

describe('bodies and recipes are data', () => {
  it('answers 413 for an oversized JSON body', async () => {
    const huge = JSON.stringify({ recipe: testRecipe({ c: { type: 'test.const', v: '1.0.0', title: 'x'.repeat(100 * 1024) } }) });
    const r = await t.raw('POST', '/api/runs', { headers: { 'Content-Type': 'application/json' }, body: huge });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('body_too_large');
    const h = await t.raw('POST', '/api/recipe-from-file', { body: Buffer.concat([Buffer.from([0, 0, 0, 0x10, 0, 0, 0, 0])]) });
    expect(h.status).toBe(413);
    expect(h.body.error.code).toBe('header_too_large');
  });

  it('answers 400 for malformed JSON and wrong shapes', async () => {
    const r = await t.raw('POST', '/api/runs', { headers: { 'Content-Type': 'application/json' }, body: '{"recipe": ' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('bad_json');
    const extra = await t.post('/api/runs', { recipe: testRecipe({}), exec: 'rm -rf /' });
    expect(extra.body.error.code).toBe('invalid_body');
    expect(extra.body.error.details).toEqual([expect.objectContaining({ message: expect.stringContaining('exec') })]);
  });

  it('rejects unknown node types and invalid params with the per-node report', async () => {
    const r = await t.post('/api/runs', {
      recipe: testRecipe({
        evil: { type: 'child_process.exec', v: '1.0.0', params: { command: 'touch /tmp/pwned' } },
        c: { type: 'test.const', v: '1.0.0', params: { value: 'ten', __proto__: { polluted: true }, extra: 1 } },
        save: { type: 'test.write', v: '1.0.0', in: { value: 'c.value' }, params: { path: 'y.json' } },
      }),
    });
    expect(r.status).toBe(400);
    const problems = r.body.error.details.problems;
    expect(problems).toContainEqual(expect.objectContaining({ code: 'unknown_node_type', nodeId: 'evil', nodeType: 'child_process.exec' }));
    expect(problems).toContainEqual(expect.objectContaining({ code: 'bad_param', nodeId: 'c', param: 'value' }));
    expect(problems).toContainEqual(expect.objectContaining({ code: 'bad_param', nodeId: 'c', param: 'extra' }));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers unknown routes with a JSON 404', async () => {
    const r = await t.get('/api/nope');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('not_found');
  });
});
