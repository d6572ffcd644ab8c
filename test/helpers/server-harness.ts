import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, type RunningServer, type ServerOptions } from '../../server/app.ts';

/**
 * A real server on an ephemeral loopback port over a scratch directory (roots `loras` and
 * `output`, a recipes folder, an examples folder), for the server tests. `nodes: 'test'` uses the
 * engine's test-only node package (numbers instead of LoRAs: fast and deterministic).
 */

export const TEST_NODES = new URL('../graph-test-nodes.ts', import.meta.url);

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface TestServer {
  server: RunningServer;
  url: string;
  dir: string;
  loras: string;
  output: string;
  recipes: string;
  examples: string;
  request<T = any>(method: string, route: string, body?: unknown, headers?: Record<string, string>): Promise<Reply<T>>;
  get<T = any>(route: string, headers?: Record<string, string>): Promise<Reply<T>>;
  post<T = any>(route: string, body?: unknown, headers?: Record<string, string>): Promise<Reply<T>>;
  /**
   * A request exactly as given, through node:http: the path is not normalised (`/api/recipes/%2E%2E`
   * reaches the server as is) and any header, Host included, can be set.
   */
  raw(method: string, route: string, opts?: { headers?: Record<string, string>; body?: string | Uint8Array }): Promise<{ status: number; body: any; text: string }>;
  /** Polls GET /api/runs/:id until the run has ended. */
  waitForRun(id: string, timeoutMs?: number): Promise<any>;
  close(): Promise<void>;
}

export async function startTestServer(opts: Partial<ServerOptions> & { nodes?: 'test' | 'real' } = {}): Promise<TestServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'loraflow-server-'));
  const loras = path.join(dir, 'loras');
  const output = path.join(dir, 'out');
  const recipes = path.join(dir, 'recipes');
  const examples = path.join(dir, 'examples');
  await Promise.all([loras, output, examples].map((d) => mkdir(d, { recursive: true })));
  const { nodes = 'test', ...rest } = opts;
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    cwd: dir,
    roots: { loras: 'loras', output: 'out' },
    recipesDir: 'recipes',
    examplesDir: 'examples',
    ...(nodes === 'test' ? { nodesModule: TEST_NODES } : {}),
    ...rest,
  });
  const url = server.url;

  const request = async (method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      if (body instanceof Uint8Array) {
        init.body = new Blob([new Uint8Array(body)]);
        (init.headers as Record<string, string>)['Content-Type'] ??= 'application/octet-stream';
      } else if (typeof body === 'string') {
        init.body = body;
        (init.headers as Record<string, string>)['Content-Type'] ??= 'application/json';
      } else {
        init.body = JSON.stringify(body);
        (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
      }
    }
    const res = await fetch(`${url}${route}`, init);
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };

  const raw = (method: string, route: string, opts: { headers?: Record<string, string>; body?: string | Uint8Array } = {}) =>
    new Promise<{ status: number; body: any; text: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: server.port, method, path: route, headers: opts.headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body, text });
        });
      });
      req.on('error', reject);
      req.end(opts.body);
    });

  return {
    server,
    url,
    raw,
    dir,
    loras,
    output,
    recipes,
    examples,
    request,
    get: (route, headers) => request('GET', route, undefined, headers),
    post: (route, body, headers) => request('POST', route, body, headers),
    async waitForRun(id, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const r = await request('GET', `/api/runs/${id}`);
        if (r.status !== 200) throw new Error(`GET /api/runs/${id}: ${r.status} ${JSON.stringify(r.body)}`);
        if (!['queued', 'running'].includes(r.body.status)) return r.body;
        if (Date.now() > end) throw new Error(`run ${id} still ${r.body.status} after ${timeoutMs} ms`);
        await new Promise((res) => setTimeout(res, 25));
      }
    },
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A recipe document from test-node entries. */
export function testRecipe(nodes: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { format: 'loraflow.recipe', schemaVersion: 1, nodes, ...extra };
}
