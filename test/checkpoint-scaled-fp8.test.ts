/**
 * ComfyUI scaled fp8 bases: a `scaled_fp8` marker, per-weight `.scale_weight` (W = q · scale), some
 * `.scale_input`. A patched weight is written with a new scale from its largest magnitude (so it
 * never saturates) after its weight; everything else, marker and input scales too, byte for byte.
 * Or decoded to a plain dtype; extracted from; refused when weights and scales do not go together.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyToBase } from '../src/lora/apply.ts';
import { extractLora } from '../src/lora/extract.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32, encodeFromF32 } from '../src/tensor/dtype.ts';
import { encodeFp8 } from '../src/tensor/fp8-round.ts';
import { fluxCheckpointShapes, fluxTensorValues } from '../src/samples/flux-checkpoint.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { dyadicPatch, expectedDeltas, firstDifference, loraSet } from './checkpoint-fixtures.ts';
import { SMALL_FLUX } from './ops-fixtures.ts';
import { expectDeltasClose } from './helpers/lora.ts';

const H = 48;
const MLP = 192;
let dir: string;
let n = 0;
const fresh = (name: string) => join(dir, `${n++}-${name}`);

interface ScaledOptions {
  prefix?: string;
  /** Leave these tensors out (to break the file). */
  drop?: (name: string) => boolean;
  marker?: boolean;
  /** A scale of the wrong size for this weight. */
  badScale?: string;
}

/** A FLUX base as ComfyUI writes scaled fp8: matrices fp8 e4m3fn with scale = amax / 448, 1-D tensors bf16, input scales on the qkv weights. */
async function writeScaled(path: string, opts: ScaledOptions = {}): Promise<void> {
  const prefix = opts.prefix ?? '';
  const entries: TensorEntry[] = [];
  for (const spec of fluxCheckpointShapes({ ...SMALL_FLUX, dtype: 'F32' })) {
    const values = fluxTensorValues(spec);
    const name = prefix + spec.name;
    if (spec.shape.length < 2) {
      entries.push({ name, dtype: 'BF16', shape: spec.shape, data: encodeFromF32(values, 'BF16') });
      continue;
    }
    const amax = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const scale = Math.fround(amax / 448);
    entries.push({ name, dtype: 'F8_E4M3', shape: spec.shape, data: encodeFp8(values.map((v) => v / scale), 'F8_E4M3') });
    const base = name.slice(0, -'.weight'.length);
    const scaleShape = opts.badScale === spec.name ? [3] : [];
    entries.push({ name: `${base}.scale_weight`, dtype: 'F32', shape: scaleShape, data: encodeFromF32(new Float32Array(scaleShape.length ? 3 : 1).fill(scale), 'F32') });
    if (spec.name.endsWith('attn.qkv.weight')) entries.push({ name: `${base}.scale_input`, dtype: 'F32', shape: [], data: encodeFromF32(Float32Array.of(1), 'F32') });
  }
  if (opts.marker !== false) entries.push({ name: `${prefix}scaled_fp8`, dtype: 'F8_E4M3', shape: [0], data: new Uint8Array(0) });
  await writeSafetensors(path, entries.filter((e) => !opts.drop?.(e.name)), { order: 'reference' });
}

beforeAll(async () => {
  await useBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'loraflow-ckpt-scaled-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function loras() {
  return [
    { set: loraSet([
      dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 1),
      dyadicPatch('single_blocks.0.linear1.weight', 3 * H + MLP, H, 2),
      dyadicPatch('final_layer.adaLN_modulation.1.weight', 2 * H, H, 3),
    ]), weight: 1 },
    { set: loraSet([dyadicPatch('double_blocks.1.img_mlp.2.weight', H, MLP, 4), dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 5, [H, H])]), weight: 2 },
  ];
}

/** q · scale as ComfyUI computes it (f32). */
async function decoded(f: { readF32(name: string): Promise<Float32Array>; info(name: string): { dtype: string } }, name: string): Promise<Float32Array> {
  const values = await f.readF32(name);
  if (f.info(name).dtype !== 'F8_E4M3') return values;
  const scale = (await f.readF32(name.replace(/\.weight$/, '.scale_weight')))[0]!;
  return values.map((v) => v * scale);
}

describe('a scaled fp8 base', () => {
  it.each(['', 'model.diffusion_model.'])('(prefix "%s") keeps its marker, input scales and layout; patched weights get a new scale and never saturate', async (prefix) => {
    const base = fresh('scaled.safetensors');
    await writeScaled(base, { prefix });
    const ls = loras();
    const out = fresh('out.safetensors');
    const report = await applyToBase({ threads: 0, base, out, loras: ls });
    expect(report.files[0]!.patched).toBe(4);
    expect(report.files[0]!.outOfRange).toBe(0);
    const expected = await expectedDeltas(ls);
    let rescaled = 0;
    await withSafetensors(base, async (b) => withSafetensors(out, async (o) => {
      expect(o.tensors.map((t) => t.name).sort()).toEqual(b.tensors.map((t) => t.name).sort());
      const order = o.tensors.map((t) => t.name);
      for (const t of b.tensors) {
        expect(o.info(t.name).dtype, t.name).toBe(t.dtype);
        if (t.name.endsWith('.scale_weight') || t.name.endsWith('.scale_input') || t.name.endsWith('scaled_fp8')) continue;
        const w = await decoded(b, t.name);
        const want = expected(w, t.name.slice(prefix.length));
        if (!want) {
          expect(Buffer.from(await o.readBytes(t.name)).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
          if (t.dtype === 'F8_E4M3') {
            const s = t.name.replace(/\.weight$/, '.scale_weight');
            expect(Buffer.from(await o.readBytes(s)).equals(Buffer.from(await b.readBytes(s))), s).toBe(true);
          }
          continue;
        }
        // rounded once: W' in f32, its new scale amax / 448, W' / scale to fp8
        const w32 = Float32Array.from(want);
        const amax = w32.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const scale = Math.fround(amax / 448);
        const scaleName = t.name.replace(/\.weight$/, '.scale_weight');
        expect(Buffer.from(await o.readBytes(t.name)).equals(Buffer.from(encodeFp8(Float32Array.from(w32, (v) => v / scale), 'F8_E4M3'))), t.name).toBe(true);
        expect(await o.readF32(scaleName)).toEqual(Float32Array.of(scale));
        // the new scale is written right after its weight (it is known once the weight is encoded)
        expect(order.indexOf(scaleName), scaleName).toBe(order.indexOf(t.name) + 1);
        const oldScale = (await b.readF32(scaleName))[0]!;
        if (amax / oldScale > 448) rescaled++;
        const q = await o.readF32(t.name);
        expect(q.reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBe(448);
      }
      for (const keep of [`${prefix}scaled_fp8`, `${prefix}double_blocks.0.img_attn.qkv.scale_input`]) {
        expect(Buffer.from(await o.readBytes(keep)).equals(Buffer.from(await b.readBytes(keep))), keep).toBe(true);
      }
    }));
    // the old scales would have saturated some patched weights
    expect(rescaled).toBeGreaterThan(0);
  });

  it('is decoded to a plain dtype when one is asked for: W = q · scale, + ΔW, rounded once; scales and marker left out', async () => {
    const base = fresh('scaled.safetensors');
    await writeScaled(base);
    const ls = loras();
    const out = fresh('bf16.safetensors');
    const report = await applyToBase({ threads: 0, base, out, loras: ls, dtype: 'bf16' });
    expect(report.notes.join()).toMatch(/scaled fp8 weights decoded .* marker and \d+ scale tensors left out/);
    const expected = await expectedDeltas(ls);
    await withSafetensors(base, async (b) => withSafetensors(out, async (o) => {
      expect(o.tensors.some((t) => /scale_weight|scale_input|scaled_fp8/.test(t.name))).toBe(false);
      for (const t of o.tensors) {
        const w = await decoded(b, t.name);
        const want = expected(w, t.name) ?? Float64Array.from(w);
        expect(firstDifference(await o.readF32(t.name), decodeToF32(encodeFromF32(Float32Array.from(want), 'BF16'), 'BF16')), t.name).toBeUndefined();
      }
    }));
  });

  it('is one side of an extraction (scaled fp8 base, fp32 tuned): ΔW recovered, the rest unchanged', async () => {
    const base = fresh('scaled.safetensors');
    await writeScaled(base);
    const ls = loras().slice(0, 1);
    const tuned = fresh('tuned.safetensors');
    await applyToBase({ threads: 0, base, out: tuned, loras: ls, dtype: 'fp32' });
    const { set, report } = await extractLora({ base, tuned, rank: 4 });
    expect(report.modules.map((m) => m.key).sort()).toEqual(ls[0]!.set.patches.map((p) => p.target).sort());
    expect(report.skipped).toEqual([]);
    expectDeltasClose(await referenceDeltas(ls[0]!.set), await referenceDeltas(set), 1e-4);
  });

  it('refuses ComfyUI\'s newer per-layer quant layout (weight_scale / comfy_quant), whose fp8 values would read wrong as plain fp8', async () => {
    const base = fresh('newer.safetensors');
    await writeSafetensors(base, [
      { name: 'img_in.weight', dtype: 'F8_E4M3', shape: [2, 2], data: new Uint8Array(4) },
      { name: 'img_in.weight_scale', dtype: 'F32', shape: [], data: encodeFromF32(Float32Array.of(0.5), 'F32') },
    ]);
    await expect(applyToBase({ threads: 0, base, out: fresh('never.safetensors'), loras: loras() })).rejects.toMatchObject({ code: 'UNSUPPORTED_FORM', message: expect.stringMatching(/tensor "img_in\.weight_scale": a ComfyUI quantized layer/) });
  });

  describe('refuses, naming the file and the tensor, and writes nothing:', () => {
    it.each([
      ['an fp8 weight without its scale', { drop: (x: string) => x === 'double_blocks.1.img_mlp.0.scale_weight' }, /tensor "double_blocks\.1\.img_mlp\.0\.weight": an fp8 weight of a scaled_fp8 checkpoint without its \.scale_weight/],
      ['a marker without any scales', { drop: (x: string) => x.endsWith('.scale_weight') || x.endsWith('.scale_input') }, /tensor "scaled_fp8": the file is marked scaled_fp8 but has no \.scale_weight tensors/],
      ['a scale of the wrong size', { badScale: 'single_blocks.1.linear2.weight' }, /tensor "single_blocks\.1\.linear2\.scale_weight": holds 3 values; a scale has one value, or one per row/],
      ['a scale without its weight', { drop: (x: string) => x === 'txt_in.weight' }, /tensor "txt_in\.scale_weight": a scale without its weight/],
    ] as const)('%s', async (_what, opts, pattern) => {
      const base = fresh('broken.safetensors');
      await writeScaled(base, opts);
      const before = await readdir(dir);
      const err = await applyToBase({ threads: 0, base, out: fresh('never.safetensors'), loras: loras() }).catch((e: Error) => e);
      expect((err as { code?: string }).code).toBe('BAD_SCALES');
      expect((err as Error).message).toContain(base);
      expect((err as Error).message).toMatch(pattern);
      expect(await readdir(dir)).toEqual(before);
    });
  });
});
