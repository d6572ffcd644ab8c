/**
 * GGUF bases (city96's layout: checkpoint names, quantized matrices, 1-D tensors in F32):
 * dequantized row by row, patched, written again in the same quant types (patched weights equal
 * dequantize → add → ggml's reference quantizer; the rest byte for byte, metadata and reshaped
 * dims kept), or as safetensors in a chosen dtype; extracted from; refused when broken.
 */
import { mkdtemp, readdir, rm, truncate, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dequantize, quantize } from '../src/gguf/codec.ts';
import { gv, type GgufValue } from '../src/gguf/metadata.ts';
import { GgufFile, origShapeKey, withGguf } from '../src/gguf/reader.ts';
import type { GgmlType } from '../src/gguf/types.ts';
import { writeGguf, type GgufTensorEntry } from '../src/gguf/writer.ts';
import type { Patch } from '../src/adapter/model.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { extractLora } from '../src/lora/extract.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32, encodeFromF32 } from '../src/tensor/dtype.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { fluxCheckpointShapes, fluxTensorValues, type FluxCheckpointOptions } from '../src/samples/flux-checkpoint.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { dyadicPatch, expectedDeltas, firstDifference, loraSet } from './checkpoint-fixtures.ts';
import { expectDeltasClose } from './helpers/lora.ts';

/** Widths / 16 (hidden 192, mlp 768): rows of 192 are whole Q8_0 blocks, rows of 256 and 768 whole K blocks. */
const FLUX16: FluxCheckpointOptions = { scale: 16, doubleBlocks: 2, singleBlocks: 2 };
const H = 192;
const MLP = 768;
/** Stored reshaped, ComfyUI-GGUF style: [4, 192] as 3 rows of 256 with its real shape in the metadata. */
const RESHAPED = 'final_layer.linear.weight';

let dir: string;
let gguf: string;
let types: Map<string, string>;
let n = 0;
const fresh = (name: string) => join(dir, `${n++}-${name}`);

/** city96's choices, roughly: 1-D in F32, matrices in a block type their rows fit (cycling through the types), the rest F16. */
function typeFor(name: string, shape: readonly number[], i: number): GgmlType {
  if (shape.length < 2) return 'F32';
  if (name === RESHAPED) return 'Q8_0';
  const cols = shape[1]!;
  if (cols % 256 === 0) return (['Q6_K', 'Q5_K', 'Q4_K'] as const)[i % 3]!;
  if (cols % 32 === 0) return (['Q8_0', 'Q5_0', 'Q4_0', 'Q8_0'] as const)[i % 4]!;
  return 'F16';
}

beforeAll(async () => {
  await useBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'loraflow-ckpt-gguf-'));
  gguf = join(dir, 'flux-Q8_0.gguf');
  types = new Map();
  const entries: GgufTensorEntry[] = fluxCheckpointShapes({ ...FLUX16, dtype: 'F32' }).map((spec, i) => {
    const type = typeFor(spec.name, spec.shape, i);
    types.set(spec.name, type);
    const values = fluxTensorValues(spec);
    return spec.name === RESHAPED ? { name: spec.name, type, shape: [3, 256], data: values } : { name: spec.name, type, shape: spec.shape, data: values };
  });
  const metadata: Record<string, GgufValue> = {
    'general.architecture': gv.str('flux'),
    'general.quantization_version': gv.u32(2),
    'general.file_type': gv.u32(7),
    [origShapeKey(RESHAPED)]: gv.array('INT32', [4, 192]),
  };
  await writeGguf(gguf, entries, { metadata });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function loras() {
  const extras: Patch[] = [
    { component: 'transformer', target: 'single_blocks.1.linear1.bias', adapter: { kind: 'full', diff: memoryTensor(Float32Array.from({ length: 3 * H + MLP }, (_, i) => ((i % 9) - 4) / 64), [3 * H + MLP]) }, source: { module: 'bias', keys: [] } },
  ];
  return [
    { set: loraSet([
      dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 1),
      dyadicPatch('double_blocks.0.img_mlp.2.weight', H, MLP, 2),
      dyadicPatch('txt_in.weight', H, 256, 3),
      dyadicPatch('img_in.weight', H, 4, 4),
      dyadicPatch(RESHAPED, 4, H, 5),
    ]), weight: 1 },
    { set: loraSet([dyadicPatch('single_blocks.0.linear1.weight', 3 * H + MLP, H, 6, [H, H]), ...extras]), weight: 0.5 },
  ];
}

describe('a GGUF base', () => {
  it('is written back as GGUF in its own types: patched weights = dequantize → add → the reference quantizer, the rest byte for byte', async () => {
    const ls = loras();
    const out = fresh('out.gguf');
    const report = await applyToBase({ threads: 0, base: gguf, out, loras: ls });
    expect(report.files[0]!.patched).toBe(7);
    const expected = await expectedDeltas(ls);
    await withGguf(gguf, async (b) => withGguf(out, async (o) => {
      expect(o.tensors.map((t) => [t.name, t.type, t.dims.join()])).toEqual(b.tensors.map((t) => [t.name, t.type, t.dims.join()]));
      // every key of the input, in order (the reshaped tensor's orig_shape among them), and the apply's provenance
      expect([...o.metadata.keys()].slice(0, b.metadata.size)).toEqual([...b.metadata.keys()]);
      expect(o.torchShape(RESHAPED)).toEqual([4, 192]);
      expect(JSON.parse(String(o.metadata.get('loraflow')?.value))).toMatchObject({ operation: 'apply' });
      let patched = 0;
      for (const t of b.tensors) {
        const want = expected(await b.readF32(t.name), t.name);
        const got = await o.readBytes(t.name);
        if (!want) {
          expect(Buffer.from(got).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
          continue;
        }
        patched++;
        expect(Buffer.from(got).equals(Buffer.from(quantize(t.type as GgmlType, Float32Array.from(want)))), `${t.name} (${t.type})`).toBe(true);
      }
      expect(patched).toBe(7);
    }));
  });

  it('is written as safetensors in the dtype asked for (W dequantized, + ΔW, rounded once), and refuses to keep block types there', async () => {
    const ls = loras();
    const out = fresh('out.safetensors');
    await applyToBase({ threads: 0, base: gguf, out, loras: ls, format: 'safetensors', dtype: 'bf16' });
    const expected = await expectedDeltas(ls);
    await withGguf(gguf, async (b) => withSafetensors(out, async (o) => {
      expect(o.tensors.map((t) => t.name)).toEqual(b.tensors.map((t) => t.name));
      for (const t of b.tensors) {
        const base = await b.readF32(t.name);
        expect(o.info(t.name).shape, t.name).toEqual(b.torchShape(t.name));
        const want = expected(base, t.name) ?? Float64Array.from(base);
        expect(firstDifference(await o.readF32(t.name), decodeToF32(encodeFromF32(Float32Array.from(want), 'BF16'), 'BF16')), t.name).toBeUndefined();
      }
    }));
    const before = await readdir(dir);
    await expect(applyToBase({ threads: 0, base: gguf, out: fresh('never.safetensors'), loras: ls, format: 'safetensors' })).rejects.toThrow(/\d+ tensors are stored in GGUF block types, which safetensors cannot hold \(txt_in\.weight \(Q4_K\).*give a dtype \(bf16, fp16, fp32\)/);
    await expect(applyToBase({ threads: 0, base: gguf, out: fresh('never.gguf'), loras: ls, dtype: 'bf16' })).rejects.toThrow(/GGUF output keeps every tensor's type/);
    expect(await readdir(dir)).toEqual(before);
  });

  it('dequantizes exactly as the codec does when read through the forms layer', async () => {
    const { CanonicalView } = await import('../src/checkpoint/canonical.ts');
    const view = await CanonicalView.open(gguf);
    try {
      expect(view.reader.container).toBe('gguf');
      const f = await GgufFile.open(gguf);
      try {
        for (const t of f.tensors) {
          const got = await view.readF32(t.name);
          expect(firstDifference(got, t.type === 'F32' || t.type === 'F16' ? await f.readF32(t.name) : dequantize(t.type as GgmlType, await f.readBytes(t.name))), t.name).toBeUndefined();
        }
      } finally {
        await f.close();
      }
    } finally {
      await view.close();
    }
  });

  it('is one side of an extraction: GGUF base, safetensors tuned, ΔW recovered and every other tensor unchanged', async () => {
    const ls = loras().slice(0, 1);
    const tuned = fresh('tuned.safetensors');
    await applyToBase({ threads: 0, base: gguf, out: tuned, loras: ls, format: 'safetensors', dtype: 'fp32' });
    const { set, report } = await extractLora({ base: gguf, tuned, rank: 4 });
    expect(report.architecture).toBe('flux');
    expect(report.modules.map((m) => m.key).sort()).toEqual(ls[0]!.set.patches.map((p) => p.target).sort());
    expect(report.unchanged).toBe(types.size - ls[0]!.set.patches.length);
    // ΔW is small next to W: f32 rounding of W + ΔW is what is left
    expectDeltasClose(await referenceDeltas(ls[0]!.set), await referenceDeltas(set), 1e-4);
  });

  it('refuses a truncated file, naming it, and writes nothing', async () => {
    const bad = fresh('truncated.gguf');
    await copyFile(gguf, bad);
    const f = await GgufFile.open(bad);
    const size = f.fileSize;
    await f.close();
    await truncate(bad, size - 1000);
    const before = await readdir(dir);
    const err = await applyToBase({ threads: 0, base: bad, out: fresh('never.gguf'), loras: loras() }).catch((e: Error) => e);
    expect((err as Error).message).toContain(bad);
    expect((err as { code?: string }).code).toMatch(/OUT_OF_BOUNDS|TRUNCATED/);
    expect(await readdir(dir)).toEqual(before);
  });
});
