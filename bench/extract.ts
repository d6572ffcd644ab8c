/**
 * LoRA extraction at rank 32 through the full path (stream both checkpoints, decode, diff,
 * randomized SVD, factors) on a small FLUX-width pair (one double and one single block, bf16), with
 * the time per changed matrix, the 3072×3072 attention projection and the 21504×3072 linear1 among
 * them. Baseline in the same run: the bare randomized SVD of the same difference matrix.
 *
 *   npm run bench:extract [-- --rank 32 --backend wasm]
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { extractLora } from '../src/lora/extract.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { useBackend, type BackendChoice } from '../src/tensor/backend.ts';
import { encodeFromF32 } from '../src/tensor/dtype.ts';
import { matmul, randomizedSvd } from '../src/tensor/linalg.ts';
import { fluxCheckpointShapes, fluxTensorValues, writeFluxCheckpoint, type FluxCheckpointOptions } from '../src/samples/flux-checkpoint.ts';

const { values: args } = parseArgs({ options: { rank: { type: 'string', default: '32' }, backend: { type: 'string', default: 'wasm' } } });
const rank = Number(args.rank);
const DATA = resolve('bench/data');
const OPTS: FluxCheckpointOptions = { scale: 1, doubleBlocks: 1, singleBlocks: 1, dtype: 'BF16' };

/** Fine-tuned weights: a rank-64 change plus small full-rank noise, as training leaves them. */
const CHANGED = ['double_blocks.0.img_attn.proj.weight', 'double_blocks.0.txt_mlp.0.weight', 'single_blocks.0.linear1.weight'];

function noise(n: number, seed: number, amp: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * amp);
}

async function tunedValues(name: string, base: Float32Array, shape: number[]): Promise<Float32Array> {
  if (!CHANGED.includes(name)) return base;
  const [m, n] = shape as [number, number];
  const delta = await matmul(noise(m * 64, 1, 0.05), [m, 64], noise(64 * n, 2, 0.05), [64, n]);
  const jitter = noise(m * n, 3, 2e-4);
  return base.map((v, i) => v + delta[i]! + jitter[i]!);
}

async function main(): Promise<void> {
  const backend = await useBackend(args.backend as BackendChoice);
  await mkdir(DATA, { recursive: true });
  const base = join(DATA, 'extract-base.safetensors');
  const tuned = join(DATA, 'extract-tuned.safetensors');
  try {
    console.log('generating a FLUX-width base/tuned pair (1 double, 1 single block, bf16) …');
    await writeFluxCheckpoint(base, OPTS);
    await writeSafetensors(tuned, fluxCheckpointShapes(OPTS).map((spec) => ({
      name: spec.name, dtype: 'BF16', shape: spec.shape,
      data: async () => encodeFromF32(await tunedValues(spec.name, fluxTensorValues(spec, OPTS), spec.shape), 'BF16'),
    })));

    const started = new Map<string, number>();
    const seconds = new Map<string, number>();
    let current: string | undefined;
    const t0 = performance.now();
    const { report } = await extractLora({
      base, tuned, rank,
      ctx: {
        onProgress: (_done, _total, label) => {
          const now = performance.now();
          if (current) seconds.set(current, (now - started.get(current)!) / 1000);
          current = label;
          if (label) started.set(label, now);
        },
      },
    });
    const total = (performance.now() - t0) / 1000;

    // The bare randomized SVD of the same difference, for the two reference shapes.
    const fb = await SafetensorsFile.open(base);
    const ft = await SafetensorsFile.open(tuned);
    console.log(`\nbackend ${backend}; ${report.modules.length} matrices extracted at rank ${rank}, ${report.unchanged} tensors unchanged, total ${total.toFixed(1)} s for ${fb.tensors.length} tensor pairs`);
    console.log(['matrix', 'shape', 'extract path s', 'bare randomizedSvd s', 'rel. error'].join('\t'));
    try {
      for (const m of report.modules) {
        const d = await ft.readF32(m.key);
        const b = await fb.readF32(m.key);
        for (let i = 0; i < d.length; i++) d[i]! -= b[i]!;
        const s0 = performance.now();
        await randomizedSvd(d, m.shape[0]!, m.shape[1]!, { rank });
        const bare = (performance.now() - s0) / 1000;
        console.log([m.key, m.shape.join('×'), (seconds.get(m.key) ?? NaN).toFixed(2), bare.toFixed(2), m.relError.toExponential(2)].join('\t'));
      }
    } finally {
      await fb.close();
      await ft.close();
    }
  } finally {
    await rm(base, { force: true });
    await rm(tuned, { force: true });
  }
}

await main();
