/**
 * applyToBase on the base forms users hold, each against the single-file apply of the same size in
 * the same run and against the disk's direct-write limit (`dd oflag=direct` of as many bytes),
 * with peak RSS. One FLUX-width model (real FLUX.1 widths, fewer blocks: ≥ `--gb` GB in bf16,
 * default 4) in five files:
 *
 *   single bf16     the baseline: one .safetensors, BFL names
 *   diffusers bf16  the same model as a diffusers folder (2 GB shards + index, split q/k/v)
 *   single fp8      plain F8_E4M3 single file: the same-size baseline of the two below
 *   scaled fp8      ComfyUI scaled fp8 (per-weight scale_weight, marker), re-scaled where patched
 *   GGUF Q8_0       city96-style Q8_0 matrices, F32 vectors; patched weights re-quantized
 *
 * A rank-32 LoRA patches every block matrix. Each apply runs in a child process (its peak RSS is
 * its own), `--reps` times; the fastest is shown. Target (issue 13): within 1.2× of the single-file
 * time of the same size, RSS flat. Generated files are deleted afterwards (unless --keep).
 *
 *   npm run bench:apply-forms [-- --gb 0.5 --reps 1 --backend wasm --keep]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { AdapterSet, Patch } from '../src/adapter/model.ts';
import { gv } from '../src/gguf/metadata.ts';
import { writeGguf } from '../src/gguf/writer.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { useBackend, type BackendChoice } from '../src/tensor/backend.ts';
import { encodeFromF32 } from '../src/tensor/dtype.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { fluxCheckpointShapes, fluxTensorValues, writeFluxCheckpoint, type FluxCheckpointOptions } from '../src/samples/flux-checkpoint.ts';

const DATA = resolve('bench/data/apply-forms');

const { values: args } = parseArgs({
  options: {
    gb: { type: 'string', default: '4' },
    rank: { type: 'string', default: '32' },
    backend: { type: 'string', default: 'wasm' },
    reps: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    child: { type: 'string' },
    double: { type: 'string' },
    single: { type: 'string' },
  },
});

/** Block counts for ≥ `gb` GB of bf16 at FLUX.1 widths: a double block is 0.68 GB, a single block 0.28 GB. */
function blocks(gb: number): { doubleBlocks: number; singleBlocks: number } {
  if (args.double !== undefined && args.single !== undefined) return { doubleBlocks: Number(args.double), singleBlocks: Number(args.single) };
  const doubleBlocks = Math.floor((gb * 0.35) / 0.68);
  return { doubleBlocks, singleBlocks: Math.max(1, Math.ceil((gb - doubleBlocks * 0.68 - 0.1) / 0.283)) };
}

const model: FluxCheckpointOptions = { scale: 1, ...blocks(Number(args.gb)) };
const FORMS = {
  'single bf16': { base: join(DATA, 'single-bf16.safetensors'), out: join(DATA, 'out-single-bf16.safetensors') },
  'diffusers bf16': { base: join(DATA, 'diffusers-bf16'), out: join(DATA, 'out-diffusers-bf16') },
  'single fp8': { base: join(DATA, 'single-fp8.safetensors'), out: join(DATA, 'out-single-fp8.safetensors') },
  'scaled fp8': { base: join(DATA, 'scaled-fp8.safetensors'), out: join(DATA, 'out-scaled-fp8.safetensors') },
  'GGUF Q8_0': { base: join(DATA, 'q8_0.gguf'), out: join(DATA, 'out-q8_0.gguf') },
} as const;
type Form = keyof typeof FORMS;
/** The single file each form is measured against: the same model in (about) the same bytes. */
const BASELINE: Record<Form, Form> = { 'single bf16': 'single bf16', 'diffusers bf16': 'single bf16', 'single fp8': 'single fp8', 'scaled fp8': 'single fp8', 'GGUF Q8_0': 'single fp8' };

/** One whole-weight LoRA patch on every block matrix, factors in memory (deterministic). */
function lora(rank: number): AdapterSet {
  const patches: Patch[] = [];
  let seed = 1;
  const values = (n: number) => {
    let s = seed++ * 2654435761;
    return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.02);
  };
  for (const t of fluxCheckpointShapes(model)) {
    if (t.role !== 'weight' || !/^(double|single)_blocks\./.test(t.name)) continue;
    const [out, inp] = t.shape as [number, number];
    patches.push({
      component: 'transformer', target: t.name,
      adapter: { kind: 'lora', down: memoryTensor(values(rank * inp), [rank, inp], 'BF16'), up: memoryTensor(values(out * rank), [out, rank], 'BF16'), alpha: rank, scale: 1 },
      source: { module: t.name, keys: [] },
    });
  }
  return { architecture: 'flux', format: 'bench', patches, metadata: {}, unknownKeys: [], notes: [] };
}

async function generate(): Promise<void> {
  const single = FORMS['single bf16'].base;
  await writeFluxCheckpoint(single, { ...model, dtype: 'BF16', order: 'given' });
  await applyToBase({ base: single, out: FORMS['diffusers bf16'].base, loras: [], format: 'diffusers', shardBytes: 2e9 });
  await applyToBase({ base: single, out: FORMS['single fp8'].base, loras: [], dtype: 'F8_E4M3' });
  const specs = fluxCheckpointShapes({ ...model, dtype: 'F32' });
  // scaled fp8 as ComfyUI writes it: scale = amax / 448 per weight, 1-D tensors bf16, the marker
  const scaled: TensorEntry[] = [];
  for (const spec of specs) {
    if (spec.shape.length < 2) {
      scaled.push({ name: spec.name, dtype: 'BF16', shape: spec.shape, data: async () => encodeFromF32(fluxTensorValues(spec), 'BF16') });
      continue;
    }
    let scale = 1;
    scaled.push({
      name: spec.name, dtype: 'F8_E4M3', shape: spec.shape,
      data: async () => {
        const v = fluxTensorValues(spec);
        scale = Math.fround(v.reduce((m, x) => Math.max(m, Math.abs(x)), 0) / 448);
        for (let i = 0; i < v.length; i++) v[i] = v[i]! / scale;
        return encodeFromF32(v, 'F8_E4M3');
      },
    });
    scaled.push({ name: spec.name.replace(/\.weight$/, '.scale_weight'), dtype: 'F32', shape: [], data: async () => encodeFromF32(Float32Array.of(scale), 'F32') });
  }
  scaled.push({ name: 'scaled_fp8', dtype: 'F8_E4M3', shape: [0], data: new Uint8Array(0) });
  await writeSafetensors(FORMS['scaled fp8'].base, scaled, { order: 'given' });
  await writeGguf(
    FORMS['GGUF Q8_0'].base,
    specs.map((spec) => ({ name: spec.name, type: spec.shape.length < 2 ? 'F32' : 'Q8_0', shape: spec.shape, data: async () => fluxTensorValues(spec) })),
    { metadata: { 'general.architecture': gv.str('flux'), 'general.quantization_version': gv.u32(2), 'general.file_type': gv.u32(7) } },
  );
}

async function sizeOf(path: string): Promise<number> {
  const st = await stat(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of await readdir(path)) total += (await stat(join(path, name))).size;
  return total;
}

interface ChildResult { form: Form; seconds: number; threads: number; peakRssMB: number; outBytes: number; patched: number }

/** One apply in this (child) process. */
async function child(form: Form): Promise<void> {
  await useBackend(args.backend as BackendChoice);
  const set = lora(Number(args.rank));
  const { base, out } = FORMS[form];
  await rm(out, { recursive: true, force: true });
  const t0 = performance.now();
  const report = await applyToBase({ base, out, loras: [{ set, weight: 1 }] });
  const seconds = (performance.now() - t0) / 1000;
  const result: ChildResult = { form, seconds, threads: report.threads, peakRssMB: process.resourceUsage().maxRSS / 1024, outBytes: await sizeOf(out), patched: report.files[0]!.patched };
  await rm(out, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runChild(form: Form): ChildResult {
  const argv = ['--import', 'tsx', 'bench/apply-forms.ts', '--child', form, '--backend', args.backend!, '--rank', args.rank!, '--double', String(model.doubleBlocks), '--single', String(model.singleBlocks)];
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`apply child for ${form} failed (${r.status})`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ChildResult;
}

/** Seconds to write `bytes` with dd to the data folder, direct to the device (the disk's write limit for a program that syncs). */
function ddWrite(bytes: number): { seconds: number; how: string } {
  const target = join(DATA, 'dd.bin');
  const count = Math.max(1, Math.ceil(bytes / (16 << 20)));
  for (const [flag, how] of [['oflag=direct', 'dd oflag=direct'], ['conv=fsync', 'dd conv=fsync']] as const) {
    const t0 = performance.now();
    const r = spawnSync('dd', ['if=/dev/zero', `of=${target}`, 'bs=16M', `count=${count}`, flag], { stdio: 'ignore' });
    const seconds = (performance.now() - t0) / 1000;
    spawnSync('rm', ['-f', target]);
    if (r.status === 0) return { seconds: (seconds * bytes) / (count * (16 << 20)), how };
  }
  throw new Error('dd failed');
}

async function main(): Promise<void> {
  await mkdir(DATA, { recursive: true });
  try {
    console.log(`generating a FLUX-width model (${model.doubleBlocks} double, ${model.singleBlocks} single blocks) in five forms …`);
    await generate();
    const results = new Map<Form, ChildResult>();
    for (let rep = 0; rep < Math.max(1, Number(args.reps)); rep++) {
      for (const form of Object.keys(FORMS) as Form[]) {
        const r = runChild(form);
        const best = results.get(form);
        if (!best || r.seconds < best.seconds) results.set(form, r);
      }
    }
    console.log(`\nrank-${args.rank} LoRA on every block matrix; backend ${args.backend}; ${availableParallelism()} cores; load average ${loadavg()[0]!.toFixed(1)}; fastest of ${args.reps}`);
    console.log(['form', 'base GB', 'patched', 's', 'vs same-size single file', 'write MB/s', '% of disk write limit', 'peak RSS MB'].join('\t'));
    for (const [form, r] of results) {
      const base = await sizeOf(FORMS[form].base);
      const dd = ddWrite(r.outBytes);
      const ref = results.get(BASELINE[form])!;
      console.log([
        form, (base / 1e9).toFixed(2), r.patched, r.seconds.toFixed(2), form === BASELINE[form] ? '(baseline)' : `${(r.seconds / ref.seconds).toFixed(2)}× of ${BASELINE[form]}`,
        (r.outBytes / 1e6 / r.seconds).toFixed(0), `${((100 * dd.seconds) / r.seconds).toFixed(0)}% (${dd.how} ${(r.outBytes / 1e6 / dd.seconds).toFixed(0)} MB/s)`, r.peakRssMB.toFixed(0),
      ].join('\t'));
    }
    console.log('\ntarget: within 1.2× of the same-size single-file apply, peak RSS flat across forms');
  } finally {
    if (!args.keep) await rm(DATA, { recursive: true, force: true });
  }
}

await (args.child ? child(args.child as Form) : main());
