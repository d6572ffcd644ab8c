/**
 * SVD merge of two full-width rank-32 FLUX LoRAs (every block matrix of FLUX.1, 304 modules) to
 * rank 32, through the exact low-rank path (stacked factors, QR, SVD of the 64×64 core). Baseline
 * in the same run: the dense path most tools take (form ΔW, then a randomized SVD of it), timed on
 * a sample of modules and extrapolated to all of them.
 *
 *   npm run bench:merge [-- --rank 32 --sample 6 --backend wasm]
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { AdapterSet, LoraAdapter, Patch } from '../src/adapter/model.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { useBackend, type BackendChoice } from '../src/tensor/backend.ts';
import { encodeFromF32 } from '../src/tensor/dtype.ts';
import { fileTensor } from '../src/tensor/lazy.ts';
import { matmul, randomizedSvd } from '../src/tensor/linalg.ts';
import { fluxCheckpointShapes } from '../src/samples/flux-checkpoint.ts';

const { values: args } = parseArgs({
  options: {
    rank: { type: 'string', default: '32' },
    sample: { type: 'string', default: '6' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const rank = Number(args.rank);
const DATA = resolve('bench/data');

/** The 304 block matrices of FLUX.1 (19 double, 38 single blocks) with their shapes. */
const targets = fluxCheckpointShapes({ scale: 1 }).filter((t) => t.role === 'weight' && /^(double|single)_blocks\./.test(t.name));

async function writeLora(path: string, seed: number): Promise<void> {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.02;
  await writeSafetensors(path, targets.flatMap((t) => {
    const [out, inp] = t.shape as [number, number];
    return [
      { name: `${t.name}.down`, dtype: 'BF16', shape: [rank, inp], data: async () => encodeFromF32(Float32Array.from({ length: rank * inp }, next), 'BF16') },
      { name: `${t.name}.up`, dtype: 'BF16', shape: [out, rank], data: async () => encodeFromF32(Float32Array.from({ length: out * rank }, next), 'BF16') },
    ];
  }));
}

function loraSet(file: SafetensorsFile): AdapterSet {
  const patches: Patch[] = targets.map((t) => ({
    component: 'transformer', target: t.name,
    adapter: { kind: 'lora', down: fileTensor(file, `${t.name}.down`), up: fileTensor(file, `${t.name}.up`), alpha: rank / 2, scale: 0.5 },
    source: { module: t.name, keys: [] },
  }));
  return { architecture: 'flux', format: 'bench', patches, metadata: {}, unknownKeys: [], notes: [] };
}

/** The dense path for one module: ΔW = Σ wᵢ·scaleᵢ·upᵢ@downᵢ, then a randomized SVD at the rank. */
async function densePath(sets: AdapterSet[], i: number): Promise<number> {
  const t0 = performance.now();
  const [m, n] = targets[i]!.shape as [number, number];
  const dense = new Float32Array(m * n);
  for (const set of sets) {
    const a = set.patches[i]!.adapter as LoraAdapter;
    const d = await matmul(await a.up.f32(), [m, rank], await a.down.f32(), [rank, n]);
    for (let j = 0; j < d.length; j++) dense[j]! += a.scale * d[j]!;
  }
  await randomizedSvd(dense, m, n, { rank });
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const backend = await useBackend(args.backend as BackendChoice);
  await mkdir(DATA, { recursive: true });
  const paths = [join(DATA, 'merge-a.safetensors'), join(DATA, 'merge-b.safetensors')];
  try {
    console.log(`generating two rank-${rank} LoRAs over the ${targets.length} FLUX.1 block matrices …`);
    await writeLora(paths[0]!, 1);
    await writeLora(paths[1]!, 2);
    const files = await Promise.all(paths.map((p) => SafetensorsFile.open(p)));
    const sets = files.map(loraSet);
    try {
      const t0 = performance.now();
      const { report } = await mergeLoras(sets.map((set) => ({ set, weight: 0.8 })), { method: 'svd', rank });
      const seconds = (performance.now() - t0) / 1000;
      // Dense baseline on evenly spread modules (each kind of shape), extrapolated by element count.
      const sample = Number(args.sample);
      const picks = Array.from({ length: sample }, (_, k) => Math.floor((k * targets.length) / sample));
      let sampled = 0;
      let sampledElements = 0;
      for (const i of picks) {
        sampled += await densePath(sets, i);
        sampledElements += targets[i]!.shape[0]! * targets[i]!.shape[1]!;
      }
      const allElements = targets.reduce((s, t) => s + t.shape[0]! * t.shape[1]!, 0);
      const denseEstimate = (sampled * allElements) / sampledElements;
      console.log(`\nbackend ${backend}; ${report.modules.length} modules; 2 × rank ${rank} → rank ${rank}; overall relative error ${report.relError.toExponential(3)}`);
      console.log(['path', 's', 'vs low-rank'].join('\t'));
      console.log(['low-rank SVD merge (all modules, incl. reading)', seconds.toFixed(1), '1×'].join('\t'));
      console.log([`dense ΔW + randomized SVD (${sample} modules, extrapolated)`, denseEstimate.toFixed(1), `${(denseEstimate / seconds).toFixed(1)}×`].join('\t'));
    } finally {
      await Promise.all(files.map((f) => f.close()));
    }
  } finally {
    for (const p of paths) await rm(p, { force: true });
  }
}

await main();
