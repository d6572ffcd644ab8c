import { describe, expect, it } from 'vitest';
import { LoraFormatError, readLora, type LoraAdapter, type Patch } from '../src/formats/index.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { encodeFromF32, type DType } from '../src/tensor/dtype.ts';
import { FIXTURE_NAMES, writeFixture, writeKeyShapes, type KeyShapes } from '../src/samples/lora-fixtures.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-read-');

type T = { shape: number[]; values?: number[]; dtype?: DType };
/** A file of exactly these tensors; values default to 1, 2, 3, … (so rows can be told apart). */
async function file(name: string, tensors: Record<string, T>, metadata?: Record<string, string>): Promise<string> {
  const path = tmp.path(name);
  await writeSafetensors(
    path,
    Object.entries(tensors).map(([n, t]) => {
      const count = t.shape.reduce((a, b) => a * b, 1);
      const values = Float32Array.from(t.values ?? Array.from({ length: count }, (_, i) => i + 1));
      return { name: n, dtype: t.dtype ?? 'F32', shape: t.shape, data: encodeFromF32(values, t.dtype ?? 'F32') };
    }),
    { metadata, order: 'given' },
  );
  return path;
}

const byModule = (patches: Patch[]) => new Map(patches.map((p) => [p.source.module, p]));
const lora = (p: Patch) => p.adapter as LoraAdapter;

describe('readLora on every real key list (scaled down ×64)', () => {
  for (const name of FIXTURE_NAMES) {
    it(`${name}: every key consumed, tensors lazy in the file`, async () => {
      const path = tmp.path(`${name}.safetensors`);
      const shapes = await writeFixture(name, path);
      const set = await readLora(path);
      try {
        expect(set.architecture).toBe('flux');
        expect(set.unknownKeys).toEqual([]);
        const consumed = new Set(set.patches.flatMap((p) => p.source.keys));
        expect([...consumed].sort()).toEqual(Object.keys(shapes).sort());
        for (const p of set.patches) {
          if (p.adapter.kind === 'lora') expect(p.adapter.down.origin).toContain(path);
          if (p.rows) expect(p.rows[0] + p.rows[1]).toBeLessThanOrEqual(p.component === 'transformer' ? 7 * 48 : Infinity);
        }
      } finally {
        await set.close();
      }
    });
  }

  it('kohya: alpha / rank is the scale (fixture alphas are rank / 2)', async () => {
    const path = tmp.path('kohya-scale.safetensors');
    await writeFixture('flux_lora_kohya_format', path, { alpha: () => 3 });
    const set = await readLora(path);
    const p = byModule(set.patches).get('lora_unet_double_blocks_0_img_attn_qkv')!;
    expect(p.target).toBe('double_blocks.0.img_attn.qkv.weight');
    expect(p.rows).toBeUndefined();
    expect(lora(p).alpha).toBe(3);
    expect(lora(p).scale).toBe(3 / 16);
    expect(lora(p).down.shape).toEqual([16, 48]);
    expect(lora(p).up.shape).toEqual([144, 16]);
    await set.close();
  });

  it('OneTrainer DoRA: lora_te2_ is T5, dora_scale [1, in] is a per-input-column magnitude', async () => {
    const path = tmp.path('ot.safetensors');
    await writeFixture('flux_dora_onetrainer_format', path);
    const set = await readLora(path);
    const m = byModule(set.patches);
    const t5 = m.get('lora_te2_encoder_block_3_layer_1_DenseReluDense_wi_1')!;
    expect(t5).toMatchObject({ component: 't5', target: 'encoder.block.3.layer.1.DenseReluDense.wi_1.weight' });
    expect(t5.dora).toMatchObject({ axis: 'in' });
    expect(t5.dora!.magnitude.shape).toEqual([1, 64]);
    const q = m.get('lora_transformer_transformer_blocks_5_attn_add_q_proj')!;
    expect(q).toMatchObject({ component: 'transformer', target: 'double_blocks.5.txt_attn.qkv.weight', rows: [0, 48] });
    expect(m.get('lora_te1_text_model_encoder_layers_2_self_attn_out_proj')!.component).toBe('clip_l');
    await set.close();
  });

  it('BFL control: lora biases → full bias diffs, norm scales → set, wider img_in → reshape', async () => {
    const path = tmp.path('control.safetensors');
    await writeFixture('flux_control_lora_format', path);
    const set = await readLora(path);
    expect(set.format).toBe('bfl-control');
    const biases = set.patches.filter((p) => p.target.endsWith('.bias'));
    expect(biases).toHaveLength(19 * 10 + 38 * 3 + 8 + 2);
    expect(biases.every((p) => p.adapter.kind === 'full')).toBe(true);
    const sets = set.patches.filter((p) => p.adapter.kind === 'set');
    expect(sets).toHaveLength(19 * 4 + 38 * 2);
    expect(sets[0]!.target).toMatch(/norm\.(query|key)_norm\.scale$/);
    const imgIn = set.patches.find((p) => p.target === 'img_in.weight')!;
    expect(imgIn.reshape).toEqual([48, 2]);
    expect(lora(imgIn).down.shape).toEqual([128, 2]);
    await set.close();
  });
});

describe('layout details', () => {
  it('diffusers norm_out.linear is the final adaLN with the up row halves swapped (DoRA magnitude too)', async () => {
    const path = await file('normout.safetensors', {
      'transformer.norm_out.linear.lora_A.weight': { shape: [2, 3] },
      'transformer.norm_out.linear.lora_B.weight': { shape: [4, 2], values: [1, 2, 3, 4, 5, 6, 7, 8] },
      'transformer.norm_out.linear.lora_magnitude_vector': { shape: [4], values: [10, 20, 30, 40] },
    });
    const set = await readLora(path);
    const p = set.patches[0]!;
    expect(p.target).toBe('final_layer.adaLN_modulation.1.weight');
    expect([...(await lora(p).up.f32())]).toEqual([5, 6, 7, 8, 1, 2, 3, 4]);
    expect([...(await lora(p).down.f32())]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(p.dora!.axis).toBe('out');
    expect([...(await p.dora!.magnitude.f32())]).toEqual([30, 40, 10, 20]);
    await set.close();
  });

  it('PEFT spellings: transformer.base_model.model., raw base_model.model., .default/.default_0 infixes, magnitude with .weight, .alpha as int', async () => {
    const path = await file('peft.safetensors', {
      'transformer.base_model.model.transformer_blocks.0.attn.to_q.lora_A.default.weight': { shape: [2, 4] },
      'transformer.base_model.model.transformer_blocks.0.attn.to_q.lora_B.default.weight': { shape: [4, 2] },
      'transformer.base_model.model.transformer_blocks.0.attn.to_q.lora_magnitude_vector.default.weight': { shape: [4] },
      'base_model.model.single_transformer_blocks.1.proj_mlp.lora_A.default_0.weight': { shape: [2, 4] },
      'base_model.model.single_transformer_blocks.1.proj_mlp.lora_B.default_0.weight': { shape: [16, 2] },
      'base_model.model.single_transformer_blocks.1.proj_mlp.alpha': { shape: [], values: [1], dtype: 'I64' },
      'transformer.context_embedder.lora_A.weight': { shape: [2, 8] },
      'transformer.context_embedder.lora_B.weight': { shape: [4, 2] },
      'transformer.context_embedder.alpha': { shape: [], values: [0.5], dtype: 'BF16' },
    });
    const set = await readLora(path);
    expect(set.format).toBe('diffusers');
    expect(set.unknownKeys).toEqual([]);
    const m = byModule(set.patches);
    const q = m.get('transformer.base_model.model.transformer_blocks.0.attn.to_q')!;
    expect(q).toMatchObject({ target: 'double_blocks.0.img_attn.qkv.weight', rows: [0, 4] });
    expect(q.dora!.axis).toBe('out');
    expect(lora(q).scale).toBe(1);
    const mlp = m.get('base_model.model.single_transformer_blocks.1.proj_mlp')!;
    expect(mlp).toMatchObject({ target: 'single_blocks.1.linear1.weight', rows: [12, 16] });
    expect(lora(mlp).scale).toBe(0.5);
    expect(lora(m.get('transformer.context_embedder')!)).toMatchObject({ alpha: 0.5, scale: 0.25 });
    expect(m.get('transformer.context_embedder')!.target).toBe('txt_in.weight');
    await set.close();
  });

  it('alphas in any dtype and shape [] or [1]; missing alpha means scale 1', async () => {
    const mk = (name: string) => ({ [`lora_unet_${name}.lora_down.weight`]: { shape: [4, 8] }, [`lora_unet_${name}.lora_up.weight`]: { shape: [8, 4] } });
    const path = await file('alphas.safetensors', {
      ...mk('img_in'), 'lora_unet_img_in.alpha': { shape: [], values: [2], dtype: 'F16' },
      ...mk('txt_in'), 'lora_unet_txt_in.alpha': { shape: [1], values: [8], dtype: 'I64' },
      ...mk('time_in_in_layer'), 'lora_unet_time_in_in_layer.alpha': { shape: [], values: [1], dtype: 'F64' },
      ...mk('vector_in_in_layer'),
    });
    const set = await readLora(path);
    const s = Object.fromEntries(set.patches.map((p) => [p.target, lora(p).scale]));
    expect(s).toEqual({ 'img_in.weight': 0.5, 'txt_in.weight': 2, 'time_in.in_layer.weight': 0.25, 'vector_in.in_layer.weight': 1 });
    expect(lora(set.patches.find((p) => p.target === 'vector_in.in_layer.weight')!).alpha).toBeUndefined();
    await set.close();
  });

  it('kohya module names ending in "_", lora_te_ / lora_te1_ CLIP, lora_te3_ T5, embedders and final layer', async () => {
    const pair = (n: string, out: number, inp: number) => ({ [`${n}.lora_down.weight`]: { shape: [2, inp] }, [`${n}.lora_up.weight`]: { shape: [out, 2] } });
    const path = await file('kohya-te.safetensors', {
      ...pair('lora_unet_double_blocks_0_img_attn_qkv_', 12, 4),
      'lora_unet_double_blocks_0_img_attn_qkv_.alpha': { shape: [], values: [1] },
      ...pair('lora_te_text_model_encoder_layers_0_self_attn_q_proj', 6, 6),
      ...pair('lora_te1_text_model_encoder_layers_1_mlp_fc2', 6, 24),
      ...pair('lora_te3_encoder_block_2_layer_0_SelfAttention_o', 8, 8),
      ...pair('lora_unet_guidance_in_out_layer', 4, 4),
      ...pair('lora_unet_final_layer_adaLN_modulation_1', 8, 4),
    });
    const set = await readLora(path);
    expect(set.unknownKeys).toEqual([]);
    const t = Object.fromEntries(set.patches.map((p) => [p.source.module, `${p.component}:${p.target}`]));
    expect(t).toEqual({
      lora_unet_double_blocks_0_img_attn_qkv_: 'transformer:double_blocks.0.img_attn.qkv.weight',
      lora_te_text_model_encoder_layers_0_self_attn_q_proj: 'clip_l:text_model.encoder.layers.0.self_attn.q_proj.weight',
      lora_te1_text_model_encoder_layers_1_mlp_fc2: 'clip_l:text_model.encoder.layers.1.mlp.fc2.weight',
      lora_te3_encoder_block_2_layer_0_SelfAttention_o: 't5:encoder.block.2.layer.0.SelfAttention.o.weight',
      lora_unet_guidance_in_out_layer: 'transformer:guidance_in.out_layer.weight',
      lora_unet_final_layer_adaLN_modulation_1: 'transformer:final_layer.adaLN_modulation.1.weight',
    });
    // kohya final layer is already in BFL order: no swap
    const fin = set.patches.find((p) => p.source.module.endsWith('adaLN_modulation_1'))!;
    expect([...(await lora(fin).up.f32())].slice(0, 2)).toEqual([1, 2]);
    await set.close();
  });

  it('ComfyUI native: diffusion_model. with lora_up/down or lora_A/B, .diff, .diff_b, .set_weight, text_encoders.*', async () => {
    const path = await file('comfy.safetensors', {
      'diffusion_model.double_blocks.1.img_mlp.0.lora_up.weight': { shape: [16, 2] },
      'diffusion_model.double_blocks.1.img_mlp.0.lora_down.weight': { shape: [2, 4] },
      'diffusion_model.single_blocks.0.linear2.lora_B.weight': { shape: [4, 2] },
      'diffusion_model.single_blocks.0.linear2.lora_A.weight': { shape: [2, 20] },
      'diffusion_model.single_blocks.0.linear2.alpha': { shape: [], values: [4] },
      'diffusion_model.img_in.diff': { shape: [4, 1] },
      'diffusion_model.img_in.diff_b': { shape: [4] },
      'diffusion_model.single_blocks.0.norm.key_norm.scale.set_weight': { shape: [2] },
      'diffusion_model.double_blocks.0.txt_attn.norm.query_norm.scale.diff': { shape: [2] },
      'text_encoders.clip_l.transformer.text_model.encoder.layers.3.self_attn.k_proj.lora_up.weight': { shape: [6, 2] },
      'text_encoders.clip_l.transformer.text_model.encoder.layers.3.self_attn.k_proj.lora_down.weight': { shape: [2, 6] },
      'text_encoders.clip_l.transformer.text_model.embeddings.position_embedding.diff': { shape: [7, 6] },
      'text_encoders.t5xxl.transformer.encoder.block.0.layer.1.DenseReluDense.wo.lora_up.weight': { shape: [8, 2] },
      'text_encoders.t5xxl.transformer.encoder.block.0.layer.1.DenseReluDense.wo.lora_down.weight': { shape: [2, 20] },
    });
    const set = await readLora(path);
    expect(set.format).toBe('comfyui');
    expect(set.unknownKeys).toEqual([]);
    const got = set.patches.map((p) => `${p.component}:${p.target}:${p.adapter.kind}`).sort();
    expect(got).toEqual([
      'clip_l:text_model.embeddings.position_embedding.weight:full',
      'clip_l:text_model.encoder.layers.3.self_attn.k_proj.weight:lora',
      't5:encoder.block.0.layer.1.DenseReluDense.wo.weight:lora',
      'transformer:double_blocks.0.txt_attn.norm.query_norm.scale:full',
      'transformer:double_blocks.1.img_mlp.0.weight:lora',
      'transformer:img_in.bias:full',
      'transformer:img_in.weight:full',
      'transformer:single_blocks.0.linear2.weight:lora',
      'transformer:single_blocks.0.norm.key_norm.scale:set',
    ]);
    expect(lora(set.patches.find((p) => p.target === 'single_blocks.0.linear2.weight')!).scale).toBe(2);
    await set.close();
  });

  it('x-flux with the diffusion_model. prefix; a lora_A bias becomes a bias diff through the up', async () => {
    const path = await file('xflux.safetensors', {
      'diffusion_model.double_blocks.4.processor.qkv_lora2.down.weight': { shape: [2, 4] },
      'diffusion_model.double_blocks.4.processor.qkv_lora2.up.weight': { shape: [12, 2] },
      'single_blocks.1.linear2.lora_A.weight': { shape: [2, 20], values: Array(40).fill(1) },
      'single_blocks.1.linear2.lora_B.weight': { shape: [3, 2], values: [1, 2, 3, 4, 5, 6] },
      'single_blocks.1.linear2.lora_A.bias': { shape: [2], values: [10, 100] },
    });
    const set = await readLora(path);
    expect(set.unknownKeys).toEqual([]);
    expect(set.patches.find((p) => p.source.module.includes('qkv_lora2'))!.target).toBe('double_blocks.4.txt_attn.qkv.weight');
    const bias = set.patches.find((p) => p.target === 'single_blocks.1.linear2.bias')!;
    expect(bias.adapter.kind).toBe('full');
    expect([...(await (bias.adapter as { diff: { f32(): Promise<Float32Array> } }).diff.f32())]).toEqual([210, 430, 650]);
    await set.close();
  });

  it('LyCORIS LoHa with kohya prefix and LoKr with lycoris_ prefix on a diffusers part', async () => {
    const path = await file('lyco.safetensors', {
      'lora_unet_single_blocks_0_linear2.hada_w1_a': { shape: [4, 2] },
      'lora_unet_single_blocks_0_linear2.hada_w1_b': { shape: [2, 20] },
      'lora_unet_single_blocks_0_linear2.hada_w2_a': { shape: [4, 2] },
      'lora_unet_single_blocks_0_linear2.hada_w2_b': { shape: [2, 20] },
      'lora_unet_single_blocks_0_linear2.alpha': { shape: [], values: [1] },
      'lora_unet_single_blocks_0_linear2.dora_scale': { shape: [4, 1] },
      'lycoris_transformer_blocks_1_attn_to_v.lokr_w1': { shape: [2, 2] },
      'lycoris_transformer_blocks_1_attn_to_v.lokr_w2_a': { shape: [2, 1] },
      'lycoris_transformer_blocks_1_attn_to_v.lokr_w2_b': { shape: [1, 2] },
      'lycoris_transformer_blocks_1_attn_to_v.alpha': { shape: [], values: [0.5] },
    });
    const set = await readLora(path);
    expect(set.format).toBe('lycoris');
    const loha = set.patches.find((p) => p.adapter.kind === 'loha')!;
    expect(loha).toMatchObject({ target: 'single_blocks.0.linear2.weight' });
    expect(loha.adapter).toMatchObject({ scale: 0.5, alpha: 1 });
    expect(loha.dora!.axis).toBe('out');
    const lokr = set.patches.find((p) => p.adapter.kind === 'lokr')!;
    expect(lokr).toMatchObject({ target: 'double_blocks.1.img_attn.qkv.weight', rows: [8, 4] });
    expect(lokr.adapter).toMatchObject({ scale: 0.5 });
    await set.close();
  });

  it('scale from diffusers lora_adapter_metadata (lora_alpha, alpha_pattern) when there is no .alpha key', async () => {
    const path = await file(
      'peftmeta.safetensors',
      {
        'transformer.transformer_blocks.0.attn.to_out.0.lora_A.weight': { shape: [4, 4] },
        'transformer.transformer_blocks.0.attn.to_out.0.lora_B.weight': { shape: [4, 4] },
        'transformer.proj_out.lora_A.weight': { shape: [4, 4] },
        'transformer.proj_out.lora_B.weight': { shape: [1, 4] },
      },
      { lora_adapter_metadata: JSON.stringify({ 'transformer.r': 4, 'transformer.lora_alpha': 2, 'transformer.alpha_pattern': { proj_out: 8 } }) },
    );
    const set = await readLora(path);
    const s = Object.fromEntries(set.patches.map((p) => [p.target, lora(p).scale]));
    expect(s).toEqual({ 'double_blocks.0.img_attn.proj.weight': 0.5, 'final_layer.linear.weight': 2 });
    expect(set.notes.join(' ')).toContain('lora_adapter_metadata');
    await set.close();
  });

  it('a module whose tensors do not fit together is an error naming the file and module', async () => {
    const path = await file('bad.safetensors', {
      'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight': { shape: [4, 8] },
      'lora_unet_double_blocks_0_img_attn_proj.lora_up.weight': { shape: [8, 3] },
    });
    await expect(readLora(path)).rejects.toThrow(new RegExp(`${path.replace(/[.]/g, '\\.')}: lora_unet_double_blocks_0_img_attn_proj: down \\[4,8\\] and up \\[8,3\\]`));
    await expect(readLora(path)).rejects.toBeInstanceOf(LoraFormatError);
    const part = await file('badpart.safetensors', {
      'transformer.transformer_blocks.0.attn.to_k.lora_A.weight': { shape: [2, 8] },
      'transformer.transformer_blocks.0.attn.to_k.lora_B.weight': { shape: [6, 2] },
    });
    await expect(readLora(part)).rejects.toThrow(/to_k: 6 output rows, but this part of double_blocks\.0\.img_attn\.qkv has 1×8/);
    await expect(readLora(tmp.path('missing.safetensors'))).rejects.toThrow(/no such file/);
  });

  it('a split_qkv file is read exactly as stored (alpha over the fused rank), with a note', async () => {
    const pair = (n: string, out: number, inp: number, r: number) => ({
      [`lora_unet_${n}.lora_down.weight`]: { shape: [r, inp] },
      [`lora_unet_${n}.lora_up.weight`]: { shape: [out, r] },
      [`lora_unet_${n}.alpha`]: { shape: [], values: [2], dtype: 'BF16' as const },
    });
    const path = await file(
      'splitqkv.safetensors',
      { ...pair('double_blocks_0_img_attn_qkv', 24, 8, 6), ...pair('double_blocks_0_img_attn_proj', 8, 8, 2), ...pair('single_blocks_0_linear1', 56, 8, 8), ...pair('single_blocks_0_linear2', 8, 40, 2) },
      { ss_network_args: JSON.stringify({ split_qkv: 'True' }) },
    );
    const set = await readLora(path);
    const s = Object.fromEntries(set.patches.map((p) => [p.source.module, lora(p).scale]));
    expect(s).toEqual({ lora_unet_double_blocks_0_img_attn_qkv: 2 / 6, lora_unet_double_blocks_0_img_attn_proj: 1, lora_unet_single_blocks_0_linear1: 2 / 8, lora_unet_single_blocks_0_linear2: 1 });
    expect(set.notes.join(' ')).toMatch(/split_qkv file.*1\/3 \(qkv\) and 1\/4 \(linear1\)/);
    await set.close();
  });

  it('a mixed file is read key by key', async () => {
    const shapes: KeyShapes = {
      'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight': [4, 48],
      'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight': [144, 4],
      'lora_unet_double_blocks_0_img_attn_qkv.alpha': [],
      'transformer.transformer_blocks.0.attn.to_k.lora_A.weight': [4, 48],
      'transformer.transformer_blocks.0.attn.to_k.lora_B.weight': [48, 4],
      'diffusion_model.single_blocks.0.linear2.lora_down.weight': [4, 240],
      'diffusion_model.single_blocks.0.linear2.lora_up.weight': [48, 4],
    };
    const path = tmp.path('mixed.safetensors');
    await writeKeyShapes(path, shapes);
    const set = await readLora(path);
    expect(set.unknownKeys).toEqual([]);
    expect(set.patches.map((p) => `${p.target}${p.rows ? `[${p.rows}]` : ''}`).sort()).toEqual([
      'double_blocks.0.img_attn.qkv.weight',
      'double_blocks.0.img_attn.qkv.weight[48,48]',
      'single_blocks.0.linear2.weight',
    ]);
    expect(set.notes.join(' ')).toContain('mixed layouts');
    await set.close();
  });
});
