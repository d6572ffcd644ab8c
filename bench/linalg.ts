/**
 * Rank-32 LoRA extraction by randomized SVD on FLUX-sized matrices, per compute backend, against
 * numpy.linalg.svd (LAPACK gesdd, what kohya/ComfyUI extraction effectively does) of the same
 * matrix measured in the same run, with the optimal rank-32 error from numpy's full spectrum.
 * Then lowRankSvd of two stacked rank-32 LoRAs on single_blocks.*.linear1 (21504×3072), against
 * numpy's float64 dense SVD of their product (time, and the singular values as the reference).
 *
 *   npm run bench:linalg [-- --sizes 3072x3072,21504x3072 --rank 32 --backends wasm,webgpu --reps 2]
 *
 * The test matrices imitate a fine-tune difference: a power-law spectrum on 256 directions plus a
 * full-rank noise floor. numpy is optional (python3 + numpy on PATH); nothing is installed for it.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { activeBackend, setupWebGpu, useBackend, type BackendChoice } from '../src/tensor/backend.ts';
import { frobeniusNorm, lowRankSvd, matmul, randomizedSvd } from '../src/tensor/linalg.ts';
import { gaussian } from '../src/tensor/randomized-svd.ts';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '3072x3072,21504x3072' },
    rank: { type: 'string', default: '32' },
    backends: { type: 'string' },
    reps: { type: 'string', default: '2' },
    numpy: { type: 'boolean', default: true },
    'numpy-threads': { type: 'string', default: '1' },
  },
  allowNegative: true,
});

const DATA = resolve('bench/data');
const RANK = Number(args.rank);
const REPS = Math.max(1, Number(args.reps));

interface NumpyResult {
  seconds: number;
  /** Singular values, descending (float64 from float32 gesdd). */
  s: number[];
  fro: number;
}

async function main(): Promise<void> {
  await mkdir(DATA, { recursive: true });
  const backends = await chooseBackends();
  const numpy = args.numpy ? numpyVersion() : undefined;
  console.log(`linalg bench: rank ${RANK}, best of ${REPS}; backends ${backends.map((b) => b.label).join(', ')}; ` +
    (numpy ? `numpy ${numpy} with ${args['numpy-threads']} BLAS thread(s) (wasm runs on one thread in Node)` :
      'numpy not available (python3 -c "import numpy" failed; nothing installed) — baseline skipped') +
    `; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} on ${cpus().length} CPUs`);

  const rows: string[][] = [['matrix', 'backend', 'rSVD s', 'rel.err', 'optimal', 'err/opt', 'numpy svd s', 'speed-up']];
  for (const size of args.sizes.split(',')) {
    const [m, n] = size.split('x').map(Number);
    const w = await fineTuneDiff(m, n, 1234);
    const fro = frobeniusNorm(w);
    const ref = numpy ? await numpySvd(w, m, n, 'float32') : undefined;
    const optimal = ref ? Math.sqrt(ref.s.slice(RANK).reduce((acc, x) => acc + x * x, 0)) / ref.fro : Number.NaN;
    for (const backend of backends) {
      await useBackend(backend.choice);
      let best = Number.POSITIVE_INFINITY;
      let result: Awaited<ReturnType<typeof randomizedSvd>> | undefined;
      for (let rep = 0; rep < REPS; rep++) {
        const started = performance.now();
        result = await randomizedSvd(w, m, n, { rank: RANK });
        best = Math.min(best, (performance.now() - started) / 1000);
      }
      const error = await residual(w, m, n, result!) / fro;
      rows.push([`${m}×${n}`, backend.label, best.toFixed(2), error.toFixed(5), fmt(optimal, 5),
        fmt(error / optimal, 4), ref ? ref.seconds.toFixed(1) : '—', ref ? `${(ref.seconds / best).toFixed(1)}×` : '—']);
      console.log(rows.at(-1)!.join('  '));
    }
  }
  console.log();
  printTable(rows);

  // Two rank-32 LoRAs on a FLUX single block linear1, strengths folded into up, stacked to R = 64.
  const [m, n, r] = [21504, 3072, 32];
  const up = new Float32Array(m * 2 * r);
  const down = new Float32Array(2 * r * n);
  for (const [i, strength] of [0.8, 0.6].entries()) {
    const u = gaussian(m * r, 50 + i);
    for (let row = 0; row < m; row++) for (let c = 0; c < r; c++) up[row * 2 * r + i * r + c] = strength * 0.01 * u[row * r + c];
    down.set(gaussian(r * n, 60 + i).map((x) => x * 0.01), i * r * n);
  }
  let best = Number.POSITIVE_INFINITY;
  let merged: Awaited<ReturnType<typeof lowRankSvd>> | undefined;
  for (let rep = 0; rep < REPS; rep++) {
    const started = performance.now();
    merged = await lowRankSvd(up, down, m, 2 * r, n, r);
    best = Math.min(best, (performance.now() - started) / 1000);
  }
  let line = `lowRankSvd, 2 stacked rank-32 LoRAs on ${m}×${n} → rank ${r}: ${best.toFixed(2)} s (float64 Grams and pivoted Cholesky, thin products on ${activeBackend()})`;
  if (numpy) {
    await useBackend(backends[0].choice);
    const dense = await matmul(up, [m, 2 * r], down, [2 * r, n]);
    const ref = await numpySvd(dense, m, n, 'float64');
    let worst = 0;
    for (let i = 0; i < r; i++) worst = Math.max(worst, Math.abs(merged!.s[i] - ref.s[i]) / ref.s[0]);
    line += `; numpy float64 dense SVD of the product ${ref.seconds.toFixed(1)} s (${(ref.seconds / best).toFixed(0)}× slower);` +
      ` max |σ − σ_numpy|/σ₁ over the kept ${r} = ${worst.toExponential(1)}`;
  }
  console.log(line);
  await rm(join(DATA, 'linalg-w.f32'), { force: true });
}

interface BackendRun {
  choice: BackendChoice;
  label: string;
}

async function chooseBackends(): Promise<BackendRun[]> {
  if (args.backends) return args.backends.split(',').map((b) => ({ choice: b as BackendChoice, label: b }));
  const runs: BackendRun[] = [{ choice: 'wasm', label: 'wasm' }];
  try {
    const adapter = await setupWebGpu();
    runs.push({ choice: 'webgpu', label: adapter.software ? 'webgpu (software adapter)' : `webgpu (${adapter.description})` });
  } catch {
    // No WebGPU adapter on this machine: wasm only.
  }
  return runs;
}

/** Power-law spectrum on 256 random directions (not orthogonalised: realistic) plus a noise floor. */
async function fineTuneDiff(m: number, n: number, seed: number): Promise<Float32Array> {
  const k = 256;
  await useBackend('wasm');
  const left = gaussian(m * k, seed);
  const right = gaussian(k * n, seed + 1);
  for (let t = 0; t < k; t++) {
    const scale = 1 / (t + 1) ** 0.8 / Math.sqrt(m);
    for (let i = 0; i < m; i++) left[i * k + t] *= scale;
  }
  const w = await matmul(left, [m, k], right, [k, n]);
  const noise = gaussian(m * n, seed + 2);
  const floor = 0.02 / Math.sqrt(Math.max(m, n));
  for (let i = 0; i < w.length; i++) w[i] += floor * noise[i];
  return w;
}

async function residual(w: Float32Array, m: number, n: number, svd: { u: Float32Array; s: Float32Array; vt: Float32Array; k: number }): Promise<number> {
  const us = svd.u.slice();
  for (let i = 0; i < m; i++) for (let t = 0; t < svd.k; t++) us[i * svd.k + t] *= svd.s[t];
  const approx = await matmul(us, [m, svd.k], svd.vt, [svd.k, n]);
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += (w[i] - approx[i]) ** 2;
  return Math.sqrt(sum);
}

function numpyVersion(): string | undefined {
  const probe = spawnSync('python3', ['-c', 'import numpy; print(numpy.__version__)'], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim() : undefined;
}

const NUMPY_SVD = `
import sys, time, json, numpy as np
m, n = int(sys.argv[2]), int(sys.argv[3])
w = np.fromfile(sys.argv[1], dtype=np.float32).reshape(m, n).astype(sys.argv[4])
t = time.perf_counter()
s = np.linalg.svd(w, full_matrices=False, compute_uv=True)[1]
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "s": s.astype(np.float64).tolist(), "fro": float(np.linalg.norm(w.astype(np.float64)))}))
`;

async function numpySvd(w: Float32Array, m: number, n: number, dtype: 'float32' | 'float64'): Promise<NumpyResult> {
  const path = join(DATA, 'linalg-w.f32');
  await writeFile(path, new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  const threads = args['numpy-threads'];
  const env = { ...process.env, OPENBLAS_NUM_THREADS: threads, OMP_NUM_THREADS: threads, MKL_NUM_THREADS: threads };
  const run = spawnSync('python3', ['-c', NUMPY_SVD, path, String(m), String(n), dtype], { encoding: 'utf8', maxBuffer: 1 << 28, env });
  if (run.status !== 0) throw new Error(`numpy baseline failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as NumpyResult;
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  '));
}

await main();
