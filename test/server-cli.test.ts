/** `loraflow serve` as a user starts it: flags, the printed URL and roots, the editor's files, shutdown. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTempDir } from './helpers/temp-dir.ts';

const BIN = fileURLToPath(new URL('../bin/loraflow.js', import.meta.url));
const tmp = useTempDir('loraflow-serve-');
beforeAll(async () => {
  await mkdir(tmp.path('models'));
});

function start(args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number> } {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd: tmp.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return { child, stderr: () => err, exit };
}

async function waitFor(get: () => string, re: RegExp, ms = 30_000): Promise<RegExpMatchArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = get().match(re);
    if (m) return m;
    if (Date.now() > end) throw new Error(`no ${re} in: ${get()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('loraflow serve', () => {
  it('refuses a public address without --allow-public (exit 2)', async () => {
    const s = start(['--host', '0.0.0.0', '--port', '0']);
    expect(await s.exit).toBe(2);
    expect(s.stderr()).toContain('--allow-public');
    const bad = start(['--port', 'eighty']);
    expect(await bad.exit).toBe(2);
    expect(bad.stderr()).toContain('--port must be an integer');
  });

  it('prints its URL and roots, serves the editor and litegraph, and stops cleanly on SIGTERM', async () => {
    const s = start(['--port', '0', '--root', 'loras=models', '--recipes', 'saved']);
    const [, url] = await waitFor(s.stderr, /loraflow editor: (http:\/\/127\.0\.0\.1:\d+)\//);
    expect(s.stderr()).toMatch(new RegExp(`root loras\\s+${tmp.path('models').replace(/[/\\]/g, '.')}`));
    const roots = (await (await fetch(`${url}/api/roots`)).json()) as { roots: { name: string; dir: string }[] };
    expect(roots.roots).toContainEqual({ name: 'loras', dir: tmp.path('models') });
    expect(roots.roots).toContainEqual({ name: 'output', dir: tmp.dir });

    const page = await fetch(`${url}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('/vendor/litegraph/litegraph.css');
    const js = await fetch(`${url}/vendor/litegraph/litegraph.es.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toContain('javascript');
    expect((await fetch(`${url}/vendor/litegraph/litegraph.umd.js`)).status).toBe(404);
    for (const f of ['app.js', 'recipe-graph.js', 'node-types.js', 'style.css']) expect((await fetch(`${url}/${f}`)).status, f).toBe(200);

    const saved = await fetch(`${url}/api/recipes/first`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ recipe: { format: 'loraflow.recipe', schemaVersion: 1, nodes: {} } }),
    });
    expect(saved.status).toBe(200);
    expect(((await (await fetch(`${url}/api/recipes`)).json()) as { dir: string }).dir).toBe(tmp.path('saved'));

    s.child.kill('SIGTERM');
    expect(await s.exit).toBe(0);
  });

  it('warns when --allow-public opens it to the network', async () => {
    const s = start(['--host', '0.0.0.0', '--port', '0', '--allow-public']);
    await waitFor(s.stderr, /loraflow editor: http:\/\/0\.0\.0\.0:\d+\//);
    expect(s.stderr()).toContain('WARNING: listening on 0.0.0.0, which is not loopback');
    s.child.kill('SIGTERM');
    expect(await s.exit).toBe(0);
  });
});
