import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  blockDiagonalColumns, convertLora, fuseTargetPatches, LoraFormatError, parseFormatName, readLora, writeLora,
  type AdapterSet, type LoraAdapter,
} from '../src/formats/index.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { encodeFromF32 } from '../src/tensor/dtype.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { compareSets, writeFixture, writeKeyShapes, writeSampleLora, type KeyShapes } from '../src/samples/lora-fixtures.ts';
import { exists } from './helpers/files.ts';
import { compareFiles, withLora } from './helpers/lora.ts';
import { tensorsOf } from './helpers/tensors.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-convert-');
const p = tmp.path;

describe('the seed case: ai-toolkit and kohya FLUX LoRAs both convert to either layout', () => {
  for (const format of ['aitoolkit', 'kohya'] as const) {
    it(`${format} → kohya and diffusers`, async () => {
      const src = p(`seed-${format}.safetensors`);
      await writeSampleLora(src, { format, rank: 4, scale: 1, seed: 7 });
      for (const to of ['kohya', 'diffusers'] as const) {
        const out = p(`seed-${format}-${to}.safetensors`);
        await convertLora(src, out, { to });
        const names = [...(await tensorsOf(out)).keys()];
        if (to === 'kohya') {
          expect(names).toContain('lora_unet_single_blocks_0_linear1.lora_down.weight');
          expect(names).toContain('lora_unet_single_blocks_0_linear1.alpha');
          expect(names.every((n) => n.startsWith('lora_unet_'))).toBe(true);
        } else {
          expect(names).toContain('transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight');
          expect(names.some((n) => n.endsWith('.alpha'))).toBe(false);
        }
        expect((await compareFiles(src, out)).maxRelError).toBe(0);
      }
    });
  }

  it('ai-toolkit → kohya fuses q, k, v, mlp with a block-diagonal up and alpha = total rank; back to diffusers is bit-identical', async () => {
    const src = p('seed-ait.safetensors');
    await writeSampleLora(src, { format: 'aitoolkit', rank: 4, seed: 3, blocks: { double: 2, single: 2 } });
    await convertLora(src, p('seed-ait-kohya.safetensors'), { to: 'kohya' });
    const k = await tensorsOf(p('seed-ait-kohya.safetensors'));
    expect(k.get('lora_unet_single_blocks_1_linear1.lora_down.weight')!.shape).toEqual([16, 48]);
    expect(k.get('lora_unet_single_blocks_1_linear1.lora_up.weight')!.shape).toEqual([336, 16]);
    expect(k.get('lora_unet_double_blocks_0_txt_attn_qkv.lora_up.weight')!.shape).toEqual([144, 12]);
    const alpha = new Float32Array(k.get('lora_unet_single_blocks_1_linear1.alpha')!.bytes.slice().buffer);
    expect(alpha[0]).toBe(16);
    await convertLora(p('seed-ait-kohya.safetensors'), p('seed-ait-back.safetensors'), { to: 'diffusers' });
    const original = await tensorsOf(src);
    const back = await tensorsOf(p('seed-ait-back.safetensors'));
    expect([...back.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [n, t] of original) expect(Buffer.compare(Buffer.from(back.get(n)!.bytes), Buffer.from(t.bytes)), n).toBe(0);
  });
});

describe('fused → split', () => {
  it('a block-diagonal up divides the down between parts; a dense one copies it', async () => {
    const bd = p('bd.safetensors');
    const dense = p('dense.safetensors');
    await writeFixture('flux_lora_kohya_format', bd, { blockDiagonal: true });
    await writeFixture('flux_lora_kohya_format', dense);
    const r1 = await convertLora(bd, p('bd.diffusers.safetensors'), { to: 'diffusers' });
    const r2 = await convertLora(dense, p('dense.diffusers.safetensors'), { to: 'diffusers' });
    expect(r1.notes.join(' ')).toContain('downs were divided');
    expect(r2.notes.join(' ')).toContain('copying the down');
    const a = await tensorsOf(p('bd.diffusers.safetensors'));
    const b = await tensorsOf(p('dense.diffusers.safetensors'));
    // rank 16 over 3 parts: columns 0–5, 6–10, 11–15; over 4 parts: 4 each
    expect(a.get('transformer.transformer_blocks.0.attn.to_q.lora_A.weight')!.shape).toEqual([6, 48]);
    expect(a.get('transformer.transformer_blocks.0.attn.to_v.lora_A.weight')!.shape).toEqual([5, 48]);
    expect(a.get('transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight')!.shape).toEqual([192, 4]);
    expect(b.get('transformer.transformer_blocks.0.attn.to_q.lora_A.weight')!.shape).toEqual([16, 48]);
    expect(b.get('transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight')!.shape).toEqual([192, 16]);
    for (const [src, out] of [[bd, 'bd.diffusers'], [dense, 'dense.diffusers']] as const) {
      expect((await compareFiles(src, p(`${out}.safetensors`))).maxRelError).toBe(0);
    }
  });

  it('one non-zero off-diagonal entry makes the up dense (the down is then copied, never chunked)', () => {
    // 6 rows in 2 parts of 3, rank 2; column 0 in part 0, column 1 in part 1
    const up = Float32Array.from([1, 0, 2, 0, 3, 0, 0, 4, 0, 5, 0, 6]);
    expect(blockDiagonalColumns(up, 6, 2, [[0, 3], [3, 6]])).toEqual([0, 1]);
    up[1] = 1e-30;
    expect(blockDiagonalColumns(up, 6, 2, [[0, 3], [3, 6]])).toBeUndefined();
    // all-zero columns are shared out by position
    expect(blockDiagonalColumns(new Float32Array(24), 6, 4, [[0, 3], [3, 6]])).toEqual([0, 0, 1, 1]);
  });

  it('kohya (alpha = rank) → diffusers → kohya gives back the same tensors (shared downs are recognised)', async () => {
    const src = p('k-scale1.safetensors');
    await writeFixture('flux_lora_kohya_with_te1_format', src, { alpha: (_, r) => r, dtype: 'BF16' });
    await convertLora(src, p('k-scale1.d.safetensors'), { to: 'diffusers' });
    await convertLora(p('k-scale1.d.safetensors'), p('k-scale1.k.safetensors'), { to: 'kohya' });
    const original = await tensorsOf(src);
    const back = await tensorsOf(p('k-scale1.k.safetensors'));
    expect([...back.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [n, t] of original) {
      expect(back.get(n)!.dtype, n).toBe(t.dtype);
      expect(Buffer.compare(Buffer.from(back.get(n)!.bytes), Buffer.from(t.bytes)), n).toBe(0);
    }
  });

  it('the final adaLN swaps the row halves of the up only, both ways', async () => {
    const src = p('final.safetensors');
    const up = Float32Array.from({ length: 96 * 2 }, (_, i) => i + 1);
    const down = Float32Array.from({ length: 2 * 48 }, (_, i) => -(i + 1));
    await writeSafetensors(src, [
      { name: 'lora_unet_final_layer_adaLN_modulation_1.lora_down.weight', dtype: 'F32', shape: [2, 48], data: encodeFromF32(down, 'F32') },
      { name: 'lora_unet_final_layer_adaLN_modulation_1.lora_up.weight', dtype: 'F32', shape: [96, 2], data: encodeFromF32(up, 'F32') },
      { name: 'lora_unet_final_layer_adaLN_modulation_1.alpha', dtype: 'F32', shape: [], data: encodeFromF32(Float32Array.of(2), 'F32') },
      { name: 'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight', dtype: 'F32', shape: [2, 48], data: encodeFromF32(down, 'F32') },
      { name: 'lora_unet_double_blocks_0_img_attn_proj.lora_up.weight', dtype: 'F32', shape: [48, 2], data: encodeFromF32(up.slice(0, 96), 'F32') },
    ]);
    await convertLora(src, p('final.d.safetensors'), { to: 'diffusers' });
    const d = await tensorsOf(p('final.d.safetensors'));
    const B = new Float32Array(d.get('transformer.norm_out.linear.lora_B.weight')!.bytes.slice().buffer);
    expect([...B]).toEqual([...up.slice(96), ...up.slice(0, 96)]);
    const A = new Float32Array(d.get('transformer.norm_out.linear.lora_A.weight')!.bytes.slice().buffer);
    expect([...A]).toEqual([...down]);
    await convertLora(p('final.d.safetensors'), p('final.k.safetensors'), { to: 'kohya' });
    const k = await tensorsOf(p('final.k.safetensors'));
    expect([...new Float32Array(k.get('lora_unet_final_layer_adaLN_modulation_1.lora_up.weight')!.bytes.slice().buffer)]).toEqual([...up]);
    expect((await compareFiles(src, p('final.d.safetensors'))).maxRelError).toBe(0);
  });
});

describe('scales, dtypes and metadata', () => {
  it('a scale that is not a power of two is folded into the factors within f32 rounding; bf16 rounding is reported', async () => {
    await writeFixture('flux_lora_kohya_format', p('s3.safetensors'), { alpha: () => 3 });
    await convertLora(p('s3.safetensors'), p('s3.d.safetensors'), { to: 'diffusers' });
    const { maxRelError } = await compareFiles(p('s3.safetensors'), p('s3.d.safetensors'));
    expect(maxRelError).toBeGreaterThan(0);
    expect(maxRelError).toBeLessThan(1e-6);
    await writeFixture('flux_lora_kohya_format', p('s3b.safetensors'), { alpha: () => 3, dtype: 'BF16' });
    const r = await convertLora(p('s3b.safetensors'), p('s3b.d.safetensors'), { to: 'diffusers' });
    expect(r.notes.join(' ')).toMatch(/494 modules' scales are not powers of two.*BF16/);
    const r32 = await convertLora(p('s3b.safetensors'), p('s3b.d32.safetensors'), { to: 'diffusers', dtype: 'F32' });
    expect(r32.notes.join(' ')).not.toContain('powers of two');
    expect([...(await tensorsOf(p('s3b.d32.safetensors'))).values()].every((t) => t.dtype === 'F32')).toBe(true);
  });

  it('keeps each tensor dtype unless told; --dtype casts everything (alphas exact)', async () => {
    await writeFixture('flux_lora_kohya_format', p('dt.safetensors'), { dtype: 'F16', alphaDtype: 'I64' });
    await convertLora(p('dt.safetensors'), p('dt.c.safetensors'), { to: 'comfyui' });
    const kept = await tensorsOf(p('dt.c.safetensors'));
    expect(new Set([...kept].filter(([n]) => !n.endsWith('.alpha')).map(([, t]) => t.dtype))).toEqual(new Set(['F16']));
    await convertLora(p('dt.safetensors'), p('dt.b.safetensors'), { to: 'kohya', dtype: 'BF16' });
    const cast = await tensorsOf(p('dt.b.safetensors'));
    expect(new Set([...cast.values()].map((t) => t.dtype))).toEqual(new Set(['BF16']));
    await withLora(p('dt.b.safetensors'), async (s) => expect((s.patches[0]!.adapter as LoraAdapter).scale).toBe(0.5));
  });

  it('metadata is carried over and updated, with a loraflow provenance entry', async () => {
    await writeFixture('flux_lora_kohya_format', p('meta.safetensors'), {
      metadata: {
        ss_network_dim: '8', ss_network_alpha: '1', ss_output_name: 'mine', lora_adapter_metadata: '{"transformer.lora_alpha": 3}',
        loraflow: JSON.stringify({ operation: 'merge' }),
      },
    });
    await convertLora(p('meta.safetensors'), p('meta.d.safetensors'), { to: 'diffusers', metadata: { ss_output_name: 'converted' } });
    const f = await SafetensorsFile.open(p('meta.d.safetensors'));
    const m = f.metadata!;
    await f.close();
    expect(m.ss_network_dim).toBe('16');
    expect(m.ss_network_alpha).toBe('16');
    expect(m.ss_output_name).toBe('converted');
    expect(m.lora_adapter_metadata).toBeUndefined();
    expect(m['modelspec.architecture']).toBe('flux-1-dev/lora');
    expect(m.format).toBe('pt');
    const prov = JSON.parse(m.loraflow!);
    expect(prov).toMatchObject({ version: '0.1.0', operation: 'convert', source: { format: 'kohya' }, format: 'diffusers', previous: { operation: 'merge' } });
    await convertLora(p('meta.safetensors'), p('meta.k.safetensors'), { to: 'kohya' });
    const g = await SafetensorsFile.open(p('meta.k.safetensors'));
    expect(g.metadata).toMatchObject({ ss_network_dim: '16', ss_network_alpha: '8', ss_network_module: 'networks.lora_flux' });
    await g.close();
  });
});

describe('refusals and safety', () => {
  it('a LoRA of an unrecognised model is refused by name before anything is written', async () => {
    const shapes: KeyShapes = {
      'lora_unet_mystery_stack_0_proj.lora_down.weight': [4, 24],
      'lora_unet_mystery_stack_0_proj.lora_up.weight': [72, 4],
      'lora_unet_mystery_stack_0_proj.alpha': [],
    };
    await writeKeyShapes(p('mystery.safetensors'), shapes);
    const set = await readLora(p('mystery.safetensors'));
    expect(set.architecture).toBe('unknown');
    expect(set.unknownKeys).toEqual([]);
    await set.close();
    const err = await convertLora(p('mystery.safetensors'), p('mystery.out.safetensors'), { to: 'kohya' }).catch((e: unknown) => e);
    expect((err as LoraFormatError).code).toBe('NOT_FLUX');
    expect((err as Error).message).toMatch(/writing a kohya LoRA works on LoRAs of a model loraflow has a module map for; this is a kohya LoRA for an unrecognised model/);
    expect(await exists(p('mystery.out.safetensors'))).toBe(false);
  });

  it('keys the reader could not place are reported by name, never dropped silently', async () => {
    await writeKeyShapes(p('junk.safetensors'), {
      'lora_unet_img_in.lora_down.weight': [2, 1],
      'lora_unet_img_in.lora_up.weight': [48, 2],
      'lora_unet_img_in.alpha': [],
      'optimizer.state.step': [1],
    });
    const logs: string[] = [];
    const r = await convertLora(p('junk.safetensors'), p('junk.k.safetensors'), { to: 'kohya', ctx: { log: (m) => logs.push(m) } });
    expect(r.unknownKeys).toEqual(['optimizer.state.step']);
    expect(r.notes.join(' ')).toContain('1 input keys could not be placed and are not in the output: optimizer.state.step');
    expect(logs.join(' ')).toContain('optimizer.state.step');
    expect([...(await tensorsOf(p('junk.k.safetensors'))).keys()].sort()).toEqual(['lora_unet_img_in.alpha', 'lora_unet_img_in.lora_down.weight', 'lora_unet_img_in.lora_up.weight']);
  });

  it('refuses to write over its input', async () => {
    await writeFixture('flux_lora_xlabs_format', p('same.safetensors'));
    await expect(convertLora(p('same.safetensors'), p('./same.safetensors'), { to: 'kohya' })).rejects.toMatchObject({ code: 'SAME_PATH' });
  });

  it('a LoRA on a row slice with DoRA per output row survives split and fuse; LoKr in a fused module refuses PEFT', async () => {
    const set: AdapterSet = {
      architecture: 'flux', format: 'test', metadata: {}, unknownKeys: [], notes: [],
      patches: ['to_q', 'to_k', 'to_v'].map((n, j) => ({
        component: 'transformer' as const,
        target: 'double_blocks.0.img_attn.qkv.weight',
        rows: [j * 8, 8] as const,
        adapter: { kind: 'lora' as const, down: memoryTensor(Float32Array.from({ length: 16 }, (_, i) => i + j), [2, 8]), up: memoryTensor(Float32Array.from({ length: 16 }, (_, i) => i - j), [8, 2]), scale: 1 },
        dora: { axis: 'out' as const, magnitude: memoryTensor(Float32Array.from({ length: 8 }, (_, i) => 1 + i + 10 * j), [8]) },
        source: { module: n, keys: [] },
      })),
    };
    await writeLora(p('dora.k.safetensors'), set, { format: 'kohya' });
    const k = await tensorsOf(p('dora.k.safetensors'));
    expect(k.get('lora_unet_double_blocks_0_img_attn_qkv.dora_scale')!.shape).toEqual([24, 1]);
    await convertLora(p('dora.k.safetensors'), p('dora.d.safetensors'), { to: 'diffusers' });
    expect((await tensorsOf(p('dora.d.safetensors'))).get('transformer.transformer_blocks.0.attn.to_k.lora_magnitude_vector')!.shape).toEqual([8]);
    await withLora(p('dora.d.safetensors'), async (b) => expect((await compareSets(set, b)).maxRelError).toBe(0));
    // only two of three parts with DoRA: the fused magnitude would be unknown for the third
    const partial = { ...set, patches: set.patches.map((x, i) => (i === 2 ? { ...x, dora: undefined } : x)) };
    await expect(writeLora(p('dora.bad.safetensors'), partial, { format: 'comfyui' })).rejects.toThrow(/DoRA on part of a fused weight \(to_v\)/);
    expect(await exists(p('dora.bad.safetensors'))).toBe(false);
  });

  it('cancellation stops mid-write and leaves neither output nor temp file; progress counts every tensor', async () => {
    await writeFixture('flux_lora_kohya_format', p('cancel.safetensors'));
    const ac = new AbortController();
    const seen: number[] = [];
    const err = await convertLora(p('cancel.safetensors'), p('cancel.out.safetensors'), {
      to: 'diffusers',
      ctx: { signal: ac.signal, onProgress: (done) => { seen.push(done); if (done === 10) ac.abort(); } },
    }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(Math.max(...seen)).toBe(10);
    expect(await exists(p('cancel.out.safetensors'))).toBe(false);
    expect((await readdir(tmp.dir)).filter((f) => f.includes('cancel.out'))).toEqual([]);
    let last = [0, 0];
    await convertLora(p('cancel.safetensors'), p('cancel.ok.safetensors'), { to: 'diffusers', ctx: { onProgress: (d, t) => (last = [d, t]) } });
    expect(last).toEqual([988, 988]);
  });

  it('fuseTargetPatches (for the operations): row slices → one whole-weight LoRA with the same ΔW', async () => {
    const part = (j: number, rows: number, start: number, scale: number) => ({
      component: 'transformer' as const,
      target: 'single_blocks.0.linear1.weight',
      rows: [start, rows] as const,
      adapter: { kind: 'lora' as const, down: memoryTensor(Float32Array.from({ length: 2 * 8 }, (_, i) => Math.sin(i + j)), [2, 8]), up: memoryTensor(Float32Array.from({ length: rows * 2 }, (_, i) => Math.cos(i * j)), [rows, 2]), scale },
      source: { module: `part${j}`, keys: [`k${j}`] },
    });
    // q, k, v of a hidden-8 single block (mlp width comes from linear2's input in the context)
    const patches = [part(0, 8, 0, 1), part(1, 8, 8, 1), part(2, 8, 16, 0.5)];
    const linear2 = { component: 'transformer' as const, target: 'single_blocks.0.linear2.weight', adapter: { kind: 'lora' as const, down: memoryTensor(new Float32Array(2 * 40), [2, 40]), up: memoryTensor(new Float32Array(16), [8, 2]), scale: 1 }, source: { module: 'l2', keys: [] } };
    const fused = await fuseTargetPatches(patches, { context: [...patches, linear2] });
    expect(fused.rows).toBeUndefined();
    expect((fused.adapter as LoraAdapter).up.shape).toEqual([56, 6]);
    expect(fused.adapter).toMatchObject({ scale: 1, alpha: 6 });
    expect(fused.source.keys).toEqual(['k0', 'k1', 'k2']);
    const { maxRelError } = await compareSets({ patches }, { patches: [fused] });
    expect(maxRelError).toBe(0);
    await expect(fuseTargetPatches(patches)).resolves.toMatchObject({ target: 'single_blocks.0.linear1.weight' });
  });

  it('x-flux single-block qkv (rows 0:3h of linear1) splits into q, k, v and fuses with zero mlp rows', async () => {
    const src = p('xflux-sample.safetensors');
    await writeSampleLora(src, { format: 'xlabs', rank: 4, seed: 5, blocks: { double: 1, single: 1 } });
    await convertLora(src, p('xflux.d.safetensors'), { to: 'diffusers' });
    await convertLora(src, p('xflux.k.safetensors'), { to: 'kohya' });
    const d = await tensorsOf(p('xflux.d.safetensors'));
    expect(d.get('transformer.single_transformer_blocks.0.attn.to_v.lora_B.weight')!.shape).toEqual([48, 4]);
    expect(d.has('transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight')).toBe(false);
    const k = await tensorsOf(p('xflux.k.safetensors'));
    expect(k.get('lora_unet_single_blocks_0_linear1.lora_up.weight')!.shape).toEqual([336, 4]);
    for (const out of ['xflux.d', 'xflux.k']) {
      expect((await compareFiles(src, p(`${out}.safetensors`))).maxRelError).toBe(0);
    }
  });

  it('a LyCORIS adapter on a diffusers part cannot go into a fused module', async () => {
    await writeKeyShapes(p('lokr-part.safetensors'), {
      'lycoris_transformer_blocks_0_attn_to_k.lokr_w1': [2, 2],
      'lycoris_transformer_blocks_0_attn_to_k.lokr_w2': [24, 24],
    });
    for (const to of ['kohya', 'comfyui'] as const) {
      await expect(convertLora(p('lokr-part.safetensors'), p(`lokr-part.${to}.safetensors`), { to })).rejects.toThrow(
        /double_blocks\.0\.img_attn\.qkv\.weight \(lycoris_transformer_blocks_0_attn_to_k\): a lokr adapter on a row slice/,
      );
    }
    await expect(convertLora(p('lokr-part.safetensors'), p('lokr-part.d.safetensors'), { to: 'diffusers' })).rejects.toThrow(/not LoKr/);
  });

  it('format names and aliases', () => {
    expect(parseFormatName('sd-scripts')).toBe('kohya');
    expect(parseFormatName('ai-toolkit')).toBe('diffusers');
    expect(parseFormatName('PEFT')).toBe('diffusers');
    expect(parseFormatName('bfl')).toBe('comfyui');
    expect(() => parseFormatName('safetensors')).toThrow(/unknown LoRA format "safetensors".*kohya.*diffusers.*comfyui/);
  });
});
