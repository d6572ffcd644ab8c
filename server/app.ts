import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express from 'express';
import type { RootsConfig } from '../src/graph/index.ts';
import { Engine } from './engine.ts';
import { errorHandler, notFoundHandler } from './errors.ts';
import { EventHub } from './event-hub.ts';
import { assertBindable, DEFAULT_HOST, DEFAULT_PORT, PublicBindError } from './bind.ts';
import { originGuard } from './origin.ts';
import { RecipeStore } from './recipe-store.ts';
import { filesRouter } from './routes/files.ts';
import { inspectRouter } from './routes/inspect.ts';
import { modelsRouter } from './routes/models.ts';
import { ensureWriteRoots, rootKinds } from './root-kinds.ts';
import { recipeFromFileRouter } from './routes/recipe-from-file.ts';
import { reportRouter } from './routes/report.ts';
import { recipesRouter } from './routes/recipes.ts';
import { runsRouter } from './routes/runs.ts';
import { RedisRunQueue } from './redis-queue.ts';
import { RunQueue, type Runs } from './run-queue.ts';
import { sweepsRouter } from './routes/sweeps.ts';
import { GRAPHS_DIR, staticRouter } from './static.ts';
import { attachWebSocket } from './ws.ts';

export interface ServerOptions {
  host?: string;
  /** 0 picks a free port (tests). */
  port?: number;
  /** Model roots by kind (`loras`, `checkpoints`, `output`, …), as `loraflow run --root` takes them. */
  roots?: RootsConfig;
  /** Where saved recipes live (default: `<cwd>/recipes`). */
  recipesDir?: string;
  /** Example recipes offered read-only (default: loraflow's `graphs/`). */
  examplesDir?: string;
  /** Required to bind anything but a loopback address. */
  allowPublic?: boolean;
  /** What relative roots, and kinds with no root, resolve against (default: process.cwd()). */
  cwd?: string;
  /** The node package (default: loraflow's `nodes/index.ts`). */
  nodesModule?: string | URL;
  /** Compute backend the run worker uses (auto, wasm, webgpu, tensorflow), as `loraflow run --backend`. */
  backend?: string;
  /** Largest JSON body accepted, in bytes (default 2 MiB: recipes are small). */
  maxJsonBytes?: number;
  /** Largest safetensors header accepted by /api/recipe-from-file (default 16 MiB). */
  maxHeaderBytes?: number;
  /** Enqueue runs on this Redis (BullMQ) for `loraflow worker` processes instead of running them here. */
  queue?: { url: string; name?: string };
}

export interface RunningServer {
  url: string;
  host: string;
  port: number;
  http: Server;
  engine: Engine;
  queue: Runs;
  hub: EventHub;
  close(): Promise<void>;
}

export { DEFAULT_HOST, DEFAULT_PORT, PublicBindError };

/** Starts the HTTP API, the WebSocket event stream and the editor on one port. */
export async function startServer(opts: ServerOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? DEFAULT_HOST;
  const allowPublic = opts.allowPublic ?? false;
  assertBindable(host, allowPublic);
  const cwd = path.resolve(opts.cwd ?? process.cwd());
  const engine = await Engine.load({ nodesModule: opts.nodesModule, roots: opts.roots ?? {}, cwd, backend: opts.backend });
  const browseRoots = engine.browseRoots();
  await ensureWriteRoots(engine.registry, browseRoots);
  const store = new RecipeStore(path.resolve(cwd, opts.recipesDir ?? 'recipes'));
  const examples = new RecipeStore(opts.examplesDir ? path.resolve(cwd, opts.examplesDir) : GRAPHS_DIR, true);
  const hub = new EventHub();
  const queue: Runs = opts.queue ? await RedisRunQueue.open(hub, opts.queue) : new RunQueue(hub, engine.execute);
  const policy = { allowPublic };

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(originGuard(policy));
  app.use((_req, res, next) => {
    // The editor never needs to be framed or to sniff types; say so to the browser.
    res.set({ 'X-Content-Type-Options': 'nosniff', 'X-Frame-Options': 'DENY', 'Referrer-Policy': 'no-referrer' });
    next();
  });
  const api = express.Router();
  api.use(express.json({ limit: opts.maxJsonBytes ?? 2 * 1024 * 1024, strict: true }));
  api.get('/nodes', (_req, res) => res.json(engine.nodeDefinitions()));
  api.get('/health', (_req, res) => res.json({ ok: true, queue: queue.kind, running: queue.runningId ?? null, runningIds: queue.runningIds, queued: queue.queueLength, lastSeq: hub.lastSeq }));
  api.use(filesRouter(browseRoots));
  api.use(inspectRouter(browseRoots));
  api.use(modelsRouter(browseRoots, rootKinds(engine.registry, 'read')));
  api.use(reportRouter(browseRoots));
  api.use(recipesRouter(engine, store, examples));
  api.use(runsRouter(engine, queue, store));
  api.use(sweepsRouter(engine, queue, store));
  api.use(recipeFromFileRouter(opts.maxHeaderBytes));
  api.use(notFoundHandler);
  app.use('/api', api);
  app.use(staticRouter());
  app.use(notFoundHandler);
  app.use(errorHandler);

  const http = createHttpServer(app);
  const wss = attachWebSocket(http, { hub, policy, snapshot: () => ({ queue: queue.kind, running: queue.runningId ?? null, runningIds: queue.runningIds, queued: queue.queueLength }) });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port ?? DEFAULT_PORT, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const addr = http.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  return {
    url: `http://${urlHost}:${addr.port}`,
    host: addr.address,
    port: addr.port,
    http,
    engine,
    queue,
    hub,
    async close() {
      await queue.close();
      await engine.close();
      for (const c of wss.clients) c.terminate();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
