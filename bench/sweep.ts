/**
 * A 16-point sweep of one merge recipe (two FLUX LoRAs, SVD-merged to a lower rank, swept over 16
 * weight pairs), run twice: in this process (`loraflow run --sweep`'s path: one cache, the loads
 * computed once) and through `loraflow serve --queue` on a private redis-server with two
 * `loraflow worker` processes (each point a job; workers are started, and warm, before the clock
 * starts). Prints both wall times and how the points were spread.
 *
 *   npm run bench:sweep [-- --factor 16 --rank 16 --backend wasm]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { registry, setup } from '../nodes/index.ts';
import { readRecipeFile } from '../src/graph/recipe.ts';
import { planSweep } from '../src/graph/sweep-plan.ts';
import { runSweep } from '../src/graph/sweep-run.ts';
import { writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { startServer } from '../server/app.ts';
import { redisServerInstalled, startTestRedis } from '../server/testing/redis.ts';

const { values: args } = parseArgs({
  options: {
    factor: { type: 'string', default: '16' },
    rank: { type: 'string', default: '16' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const BIN = fileURLToPath(new URL('../bin/loraflow.js', import.meta.url));
const GRAPH = fileURLToPath(new URL('../graphs/merge-aitoolkit-kohya.json', import.meta.url));
const POINTS = 16;
const weights = Array.from({ length: POINTS }, (_, i) => `[${((i + 1) / POINTS).toFixed(4)},${(1 - i / POINTS).toFixed(4)}]`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const dir = await mkdtemp(join(tmpdir(), 'loraflow-bench-sweep-'));
const children: ChildProcess[] = [];
try {
  await mkdir(join(dir, 'samples'));
  const factor = Number(args.factor);
  await writeSampleLora(join(dir, 'samples/flux-aitoolkit-lora.safetensors'), { format: 'aitoolkit', factor, rank: Number(args.rank), seed: 1 });
  await writeSampleLora(join(dir, 'samples/flux-kohya-lora.safetensors'), { format: 'kohya', factor, rank: Number(args.rank), seed: 2 });
  await copyFile(GRAPH, join(dir, 'merge.json'));
  const recipe = await readRecipeFile(join(dir, 'merge.json'));
  const base = { method: 'svd', rank: String(Math.max(1, Number(args.rank) / 2)) };
  console.log(`sweep: ${POINTS} points (weights), SVD merge of two FLUX LoRAs (width /${factor}, rank ${args.rank} + ${args.rank} → ${base.rank}), backend ${args.backend}`);

  // In-process.
  await setup({ backend: args.backend });
  const plan = await planSweep(recipe, { base, axes: [{ name: 'weights', values: weights }], templates: { output: 'out/inproc-{index}.safetensors' } }, { registry, cwd: dir, name: 'merge' });
  const t0 = performance.now();
  const local = await runSweep(recipe, plan.points, { registry, cwd: dir });
  const localMs = performance.now() - t0;
  console.log(`in-process:        ${seconds(localMs)}  (${local.points.length - local.failed}/${POINTS} ok; loads computed once, ${local.points.filter((p) => p.cached.length > 0).length} points reused them)`);

  // Two workers on a Redis queue.
  if (!redisServerInstalled()) {
    console.log('two workers:       skipped: redis-server is not installed (apt-get install redis-server)');
  } else {
    const redis = await startTestRedis();
    const server = await startServer({ host: '127.0.0.1', port: 0, cwd: dir, recipesDir: 'recipes', queue: { url: redis.url }, backend: args.backend });
    try {
      await Promise.all(['w1', 'w2'].map((name) => new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [BIN, 'worker', '--queue', redis.url, '--name', name, '--backend', args.backend], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
        children.push(child);
        let log = '';
        child.stderr!.on('data', (d: Buffer) => {
          log += d.toString();
          if (log.includes('waiting for runs')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`worker ${name} exited (${code}): ${log}`)));
      })));
      const t1 = performance.now();
      const res = await fetch(`${server.url}/api/sweeps`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ recipe, overrides: base, axes: { weights }, templates: { output: 'out/queue-{index}.safetensors' } }),
      });
      const body = (await res.json()) as { sweepId: string; error?: { message: string } };
      if (res.status !== 202) throw new Error(`POST /api/sweeps: ${res.status} ${body.error?.message}`);
      type Status = { done: number; failed: number; runs: { worker?: string }[] };
      let status: Status;
      for (;;) {
        status = (await (await fetch(`${server.url}/api/sweeps/${body.sweepId}`)).json()) as Status;
        if (status.done === POINTS) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const queueMs = performance.now() - t1;
      const spread = ['w1', 'w2'].map((w) => `${w}: ${status.runs.filter((r) => r.worker === w).length}`).join(', ');
      console.log(`two workers:       ${seconds(queueMs)}  (${POINTS - status.failed}/${POINTS} ok; ${spread}; each worker loads the inputs once)`);
      console.log(`speed-up:          ${(localMs / queueMs).toFixed(2)}× (bounded by the cores this machine has free)`);
    } finally {
      for (const c of children) c.kill('SIGKILL');
      await server.close();
      await redis.stop();
    }
  }
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
}
