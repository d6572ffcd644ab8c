import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdapterSet, Patch } from '../src/adapter/model.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { SafetensorsFile, withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32, encodeFromF32, type DType } from '../src/tensor/dtype.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { writeFluxCheckpoint, type FluxCheckpointOptions } from '../src/samples/flux-checkpoint.ts';
import { referenceDeltas, type TargetDelta } from '../src/samples/reference-delta.ts';
import { BACKENDS, SMALL_FLUX, adapterSet, diffusersLike, kohyaLike, loraPatch, randomTensor } from './ops-fixtures.ts';

const PREFIX = 'model.diffusion_model.';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'loraflow-apply-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function base(dtype: DType, prefix = '', opts: FluxCheckpointOptions = SMALL_FLUX): Promise<string> {
  const path = join(dir, `base-${counter++}.safetensors`);
  await writeFluxCheckpoint(path, { ...opts, dtype, prefix, metadata: { note: 'base' } });
  return path;
}
const outPath = () => join(dir, `out-${counter++}.safetensors`);

/** A mix of every linear kind: whole and row-slice LoRAs, a LoKr, a bias diff, a norm replacement. */
function mixedLoras(): { set: AdapterSet; weight: number }[] {
  const extras: Patch[] = [
    { component: 'transformer', target: 'double_blocks.1.img_attn.proj.weight', adapter: { kind: 'lokr', w1: randomTensor([4, 4], 1, 0.3), w2: randomTensor([12, 12], 2, 0.3), scale: 1 }, source: { module: 'lokr_proj', keys: [] } },
    { component: 'transformer', target: 'double_blocks.0.img_attn.qkv.bias', rows: [48, 48], adapter: { kind: 'full', diff: randomTensor([48], 3, 0.1) }, source: { module: 'k_bias', keys: [] } },
    { component: 'transformer', target: 'single_blocks.1.norm.key_norm.scale', adapter: { kind: 'set', value: randomTensor([2], 4) }, source: { module: 'key_norm', keys: [] } },
  ];
  return [
    { set: kohyaLike(4, 2, 1), weight: 0.8 },
    { set: adapterSet([...diffusersLike(3, 2).patches, ...extras]), weight: -0.6 },
  ];
}

/** W + Σ wᵢ·ΔWᵢ in float64 for one base tensor (replacements first), or undefined when nothing patches it. */
function expected(values: Float32Array, target: string, refs: readonly { map: Map<string, TargetDelta>; weight: number }[]): Float64Array | undefined {
  const w = Float64Array.from(values);
  let touched = false;
  for (const { map } of refs) {
    const d = map.get(`transformer:${target}`);
    if (d?.replace) {
      w.set(d.data);
      touched = true;
    }
  }
  for (const { map, weight } of refs) {
    const d = map.get(`transformer:${target}`);
    if (!d || d.replace) continue;
    for (let i = 0; i < d.data.length; i++) w[i]! += weight * d.data[i]!;
    touched = true;
  }
  return touched ? w : undefined;
}

/** Rounds a float64 result once: to f32 (the compute format), then to the output dtype. */
function roundOnce(w: Float64Array, dtype: DType): Float32Array {
  return decodeToF32(encodeFromF32(Float32Array.from(w), dtype), dtype);
}

/** Distance to the next representable value of `dtype` above |x| (one unit in the last place). */
function ulp(x: number, dtype: DType): number {
  const bits = { BF16: 8, F16: 11, F32: 24, F8_E4M3: 4, F8_E5M2: 3 }[dtype as 'BF16'];
  const minExp = { BF16: -126, F16: -14, F32: -126, F8_E4M3: -6, F8_E5M2: -14 }[dtype as 'BF16'];
  const e = Math.max(minExp, Math.floor(Math.log2(Math.abs(x) || 2 ** minExp)));
  return 2 ** (e - bits + 1);
}

async function checkOutput(basePath: string, out: string, loras: { set: AdapterSet; weight: number }[], outDtype: (d: DType, shape: number[]) => DType, prefix: string) {
  const refs = await Promise.all(loras.map(async ({ set, weight }) => ({ map: await referenceDeltas(set), weight })));
  let patched = 0;
  let mismatches = 0;
  let elements = 0;
  await withSafetensors(basePath, async (b) => withSafetensors(out, async (o) => {
    expect(o.tensors.map((t) => t.name)).toEqual(b.tensors.map((t) => t.name));
    expect(o.metadata?.note).toBe('base');
    for (const t of b.tensors) {
      const dtype = outDtype(t.dtype as DType, t.shape);
      expect(o.info(t.name).dtype, t.name).toBe(dtype);
      const want = expected(await b.readF32(t.name), t.name.slice(prefix.length), refs);
      const got = await o.readF32(t.name);
      if (!want) {
        if (dtype === t.dtype) expect(Buffer.from(await o.readBytes(t.name)).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
        else expect(got).toEqual(roundOnce(Float64Array.from(await b.readF32(t.name)), dtype));
        continue;
      }
      patched++;
      const ref = roundOnce(want, dtype);
      if (dtype !== 'F32') elements += ref.length;
      for (let i = 0; i < ref.length; i++) {
        if (got[i] === ref[i]) continue;
        if (dtype !== 'F32') mismatches++;
        // f32 products differ from the f64 reference in the last bits: at a rounding boundary that
        // may pick the other neighbour, never anything further away.
        const tolerance = dtype === 'F32' ? 1e-5 * Math.max(1, Math.abs(ref[i]!)) : ulp(ref[i]!, dtype) * 1.0001;
        expect(Math.abs(got[i]! - ref[i]!), `${t.name}[${i}] ${got[i]} vs ${ref[i]}`).toBeLessThanOrEqual(tolerance);
      }
    }
  }));
  // Rounded once from f32 results: disagreements with the f64 reference are rare boundary cases.
  if (elements) expect(mismatches / elements).toBeLessThan(1e-3);
  return patched;
}

describe.each(BACKENDS)('applyToBase on %s', (backend) => {
  beforeAll(async () => {
    expect(await useBackend(backend)).toBe(backend);
  });

  it.each([
    ['BF16', ''],
    ['F16', PREFIX],
    ['F32', ''],
    ['F8_E4M3', PREFIX],
  ] as const)('a %s base (prefix "%s") gets W + Σ wᵢ·ΔWᵢ rounded once', async (dtype, prefix) => {
    const b = await base(dtype, prefix);
    const out = outPath();
    const loras = mixedLoras();
    const report = await applyToBase({ threads: 0, base: b, out, loras, dtype: 'keep' });
    const patched = await checkOutput(b, out, loras, (d) => d, prefix);
    expect(report.files[0]!.patched).toBe(patched);
    expect(patched).toBe(8);
    expect(report.modules).toBe(loras.reduce((s, l) => s + l.set.patches.length, 0));
    expect(report.files[0]!.copied).toBe(report.files[0]!.tensors - patched);
    expect(report.backend).toBe(backend);
    const meta = await withSafetensors(out, async (f) => JSON.parse(f.metadata!.loraflow!));
    expect(meta).toMatchObject({ operation: 'apply', loras: [{ weight: 0.8 }, { weight: -0.6 }] });
  });

  it('converts a bf16 base to fp16 and to fp8 (matrices only), rounding each value once', async () => {
    const b = await base('BF16');
    const loras = mixedLoras();
    const half = outPath();
    const r1 = await applyToBase({ threads: 0, base: b, out: half, loras, dtype: 'fp16' });
    await checkOutput(b, half, loras, () => 'F16', '');
    expect(r1.files[0]!.converted).toBe(r1.files[0]!.tensors - r1.files[0]!.patched);
    const fp8 = outPath();
    const r2 = await applyToBase({ threads: 0, base: b, out: fp8, loras, dtype: 'F8_E4M3' });
    await checkOutput(b, fp8, loras, (d, shape) => (shape.length < 2 ? d : 'F8_E4M3'), '');
    expect(r2.files[0]!.keptPrecision).toBeGreaterThan(0);
    expect(r2.notes.join()).toMatch(/1-D tensors \(biases, norm scales\) kept at their own precision/);
  });

  it('applies DoRA per output row and per input column, with strength blending', async () => {
    const b = await base('F32');
    const dora = (target: string, axis: 'out' | 'in', seed: number): Patch => {
      const p = loraPatch({ target, rank: 2, alpha: 1 }, seed);
      const magnitude = memoryTensor(Float32Array.from({ length: 48 }, (_, i) => 0.5 + i / 100), axis === 'out' ? [48] : [1, 48]);
      return { ...p, dora: { magnitude, axis }, source: { module: `dora_${axis}`, keys: [] } };
    };
    const pOut = dora('double_blocks.0.img_attn.proj.weight', 'out', 1);
    const pIn = dora('double_blocks.1.txt_attn.proj.weight', 'in', 2);
    const plain = loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2 }, 3);
    const out = outPath();
    const strength = 0.7;
    await applyToBase({ threads: 0, base: b, out, loras: [{ set: adapterSet([plain]), weight: 1 }, { set: adapterSet([pOut, pIn]), weight: strength }] });
    const f = await SafetensorsFile.open(b);
    const o = await SafetensorsFile.open(out);
    try {
      for (const [p, first] of [[pOut, plain], [pIn, undefined]] as const) {
        const w = Float64Array.from(await f.readF32(p.target));
        if (first) {
          const d = (await referenceDeltas(adapterSet([first]))).get(`transformer:${p.target}`)!;
          for (let i = 0; i < w.length; i++) w[i]! += d.data[i]!;
        }
        const d = (await referenceDeltas(adapterSet([p]))).get(`transformer:${p.target}`)!;
        const m = await p.dora!.magnitude.f32();
        const updated = w.map((v, i) => v + d.data[i]!);
        const norm = new Float64Array(48);
        for (let i = 0; i < 48; i++) for (let j = 0; j < 48; j++) norm[p.dora!.axis === 'out' ? i : j]! += updated[i * 48 + j]! ** 2;
        const want = w.map((v, idx) => {
          const k = p.dora!.axis === 'out' ? Math.floor(idx / 48) : idx % 48;
          return v + strength * ((m[k]! * updated[idx]!) / Math.sqrt(norm[k]!) - v);
        });
        const got = await o.readF32(p.target);
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${p.target}[${i}]`).toBeLessThan(1e-5);
        // The renormalised rows (or columns) really have the magnitude at strength 1.
        expect(Math.sqrt(norm[0]!)).not.toBeCloseTo(m[0]!, 2);
      }
    } finally {
      await f.close();
      await o.close();
    }
  });
});

describe('applyToBase numerics and checks', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('writes fp8 saturated, never NaN, and counts what did not fit', async () => {
    const b = await base('F8_E4M3');
    const big = (target: string, v: number): Patch => ({ component: 'transformer', target, adapter: { kind: 'full', diff: memoryTensor(new Float32Array(48 * 48).fill(v), [48, 48]) }, source: { module: target, keys: [] } });
    const out = outPath();
    const report = await applyToBase({ threads: 0, base: b, out, loras: [{ set: adapterSet([big('double_blocks.0.img_attn.proj.weight', 1000), big('double_blocks.0.txt_attn.proj.weight', -1e6)]), weight: 1 }] });
    expect(report.files[0]!.outOfRange).toBe(2 * 48 * 48);
    await withSafetensors(out, async (o) => {
      expect([...new Set(await o.readBytes('double_blocks.0.img_attn.proj.weight'))]).toEqual([0x7e]);
      expect([...new Set(await o.readBytes('double_blocks.0.txt_attn.proj.weight'))]).toEqual([0xfe]);
      for (const t of o.tensors) {
        if (t.dtype !== 'F8_E4M3') continue;
        const bytes = await o.readBytes(t.name);
        expect(bytes.some((x) => (x & 0x7f) === 0x7f), t.name).toBe(false);
      }
    });
  });

  it('rounds fp8 stochastically between the two neighbours, reproducibly', async () => {
    const b = await base('F8_E4M3');
    const loras = [{ set: kohyaLike(4, 1, 5), weight: 0.05 }];
    const [o1, o2, o3] = [outPath(), outPath(), outPath()];
    await applyToBase({ threads: 0, base: b, out: o1, loras, stochasticFp8: true });
    await applyToBase({ threads: 0, base: b, out: o2, loras, stochasticFp8: true });
    await applyToBase({ threads: 0, base: b, out: o3, loras });
    const refs = [{ map: await referenceDeltas(loras[0]!.set), weight: 0.05 }];
    let differFromNearest = 0;
    let total = 0;
    await withSafetensors(b, async (fb) => withSafetensors(o1, async (f1) => withSafetensors(o2, async (f2) => withSafetensors(o3, async (f3) => {
      for (const t of fb.tensors) {
        const a = await f1.readBytes(t.name);
        expect(Buffer.from(a).equals(Buffer.from(await f2.readBytes(t.name))), t.name).toBe(true);
        const want = expected(await fb.readF32(t.name), t.name, refs);
        if (!want) continue;
        const got = decodeToF32(a, 'F8_E4M3');
        const nearest = decodeToF32(await f3.readBytes(t.name), 'F8_E4M3');
        for (let i = 0; i < want.length; i++) {
          const x = Math.fround(want[i]!);
          // Each value is one of the two fp8 numbers around x.
          expect(Math.abs(got[i]! - x), `${t.name}[${i}]`).toBeLessThanOrEqual(ulp(x, 'F8_E4M3') * 1.0001);
          if (got[i] !== nearest[i]) differFromNearest++;
          total++;
        }
      }
    }))));
    expect(differFromNearest / total).toBeGreaterThan(0.05);
    expect(differFromNearest / total).toBeLessThan(0.5);
  });

  it('routes text-encoder patches to their files, or names them when there is none', async () => {
    const b = await base('BF16');
    const clip = join(dir, 'clip.safetensors');
    const clipTarget = 'text_model.encoder.layers.0.self_attn.q_proj.weight';
    await writeSafetensors(clip, [
      { name: clipTarget, dtype: 'F32', shape: [12, 12], data: encodeFromF32(await randomTensor([12, 12], 9).f32(), 'F32') },
      { name: 'text_model.final_layer_norm.weight', dtype: 'F32', shape: [12], data: encodeFromF32(new Float32Array(12).fill(1), 'F32') },
    ]);
    const te = loraPatch({ target: clipTarget, rank: 2, component: 'clip_l', cols: 12, height: 12 }, 10);
    const loras = [{ set: adapterSet([te, ...kohyaLike(2, 2, 11).patches]), weight: 1 }];
    const out = outPath();
    await expect(applyToBase({ threads: 0, base: b, out, loras })).rejects.toThrow(new RegExp(`text-encoder modules have no file.*${te.source.module.replace(/[.[\]]/g, '\\$&')} \\(LoRA 1, clip_l\\)`));
    expect(await readdir(dir)).not.toContain(out.split('/').pop());
    const ignored = await applyToBase({ threads: 0, base: b, out, loras, ignoreTextEncoders: true });
    expect(ignored.ignoredTextEncoders).toEqual([`${te.source.module} (LoRA 1, clip_l)`]);
    expect(ignored.notes.join()).toMatch(/1 text-encoder modules left out/);
    const clipOut = join(dir, 'clip-out.safetensors');
    const out2 = outPath();
    const report = await applyToBase({ threads: 0, base: b, out: out2, loras, clipL: { in: clip, out: clipOut } });
    expect(report.files.map((f) => [f.role, f.patched])).toEqual([['base', 5], ['clip_l', 1]]);
    const d = (await referenceDeltas(adapterSet([te]))).get(`clip_l:${clipTarget}`)!;
    const before = await randomTensor([12, 12], 9).f32();
    const after = await withSafetensors(clipOut, (f) => f.readF32(clipTarget));
    for (let i = 0; i < 144; i++) expect(after[i]).toBeCloseTo(before[i]! + d.data[i]!, 5);
  });

  it('fails before writing anything when a patch does not fit, naming the module', async () => {
    const b = await base('BF16');
    const bad = loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2, cols: 40 }, 12);
    const missing = { ...loraPatch({ target: 'double_blocks.0.img_attn.proj.weight', rank: 2 }, 13), target: 'double_blocks.7.img_attn.proj.weight', source: { module: 'lora_unet_double_blocks_7_img_attn_proj', keys: [] } };
    const slice = loraPatch({ target: 'double_blocks.0.img_attn.qkv.weight', rank: 2, rows: [120, 48] }, 14);
    const out = outPath();
    const before = (await readdir(dir)).sort();
    const error = await applyToBase({ threads: 0, base: b, out, loras: [{ set: kohyaLike(2, 2, 15), weight: 1 }, { set: adapterSet([bad, missing, slice]), weight: 1 }] }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(/3 patches do not fit the base \(nothing was written\)/);
    expect(message).toContain(`${bad.source.module} → double_blocks.0.img_attn.proj.weight [48,48]: the lora ΔW is [48, 40] but the weight are [48, 48] (LoRA 2)`);
    expect(message).toContain(`lora_unet_double_blocks_7_img_attn_proj (LoRA 2): ${b} has no weight double_blocks.7.img_attn.proj.weight`);
    expect(message).toContain(`${slice.source.module} → double_blocks.0.img_attn.qkv.weight [144,48]: rows 120..168 are outside the weight's 144 rows`);
    expect((await readdir(dir)).sort()).toEqual(before);
    await expect(applyToBase({ threads: 0, base: b, out: b, loras: [] })).rejects.toThrow(/is an input file/);
  });

  it('gives the same bytes on the worker pool as inline', async () => {
    const b = await base('BF16');
    const loras = mixedLoras();
    const [inline, pooled] = [outPath(), outPath()];
    await applyToBase({ threads: 0, base: b, out: inline, loras, dtype: 'F8_E5M2', stochasticFp8: true });
    const logs: string[] = [];
    await applyToBase({ threads: 2, base: b, out: pooled, loras, dtype: 'F8_E5M2', stochasticFp8: true, ctx: { log: (m) => logs.push(m) } });
    expect(logs.join()).toMatch(/computing on 2 worker threads/);
    await withSafetensors(inline, async (a) => withSafetensors(pooled, async (p) => {
      for (const t of a.tensors) expect(Buffer.from(await p.readBytes(t.name)).equals(Buffer.from(await a.readBytes(t.name))), t.name).toBe(true);
    }));
  });

  it('leaves no output and no temporary file when cancelled mid-way', async () => {
    const b = await base('BF16');
    const out = outPath();
    const before = (await readdir(dir)).sort();
    const controller = new AbortController();
    let seen = 0;
    const ctx = { signal: controller.signal, onProgress: (done: number) => { seen = done; if (done === 20) controller.abort(); } };
    await expect(applyToBase({ threads: 0, base: b, out, loras: mixedLoras(), ctx })).rejects.toThrow(/abort/i);
    expect(seen).toBe(20);
    expect((await readdir(dir)).sort()).toEqual(before);
  });
});
