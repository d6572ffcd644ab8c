/**
 * The real FLUX widths (3072 hidden, 21504-row linear1) once: a full-width rank-16 kohya LoRA in bf16
 * (~150 MB) through diffusers and back, checked per module on the stored factors (dense ΔW at this
 * size would need tens of GB), and the full-width diffusers key list through kohya.
 */
import { describe, expect, it } from 'vitest';
import { convertLora, readLora } from '../src/formats/index.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { fixtureKeyShapes, writeFixture, writeKeyShapes, type KeyShapes } from '../src/samples/lora-fixtures.ts';
import { sameBytes } from './helpers/tensors.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-fullwidth-');

/** Rows `start…start+len` of a [rows, rank] bf16 matrix. */
const rowBytes = (t: Uint8Array, rank: number, start: number, len: number) => t.subarray(start * rank * 2, (start + len) * rank * 2);

describe('full-width FLUX LoRAs', () => {
  it('kohya rank 16 (bf16) → diffusers → kohya: parts carry the original factors, and come back as the same file content', async () => {
    const src = tmp.path('kohya-full.safetensors');
    await writeFixture('flux_lora_kohya_format', src, { factor: 1, dtype: 'BF16', alpha: (_, r) => r });
    const report = await convertLora(src, tmp.path('full.diffusers.safetensors'), { to: 'diffusers' });
    expect(report.tensorsWritten).toBe(988);
    const k = await SafetensorsFile.open(src);
    const d = await SafetensorsFile.open(tmp.path('full.diffusers.safetensors'));
    try {
      const checks: [kohya: string, diffusers: string, rowStart: number, rows: number][] = [];
      for (let i = 0; i < 19; i++) {
        ['to_q', 'to_k', 'to_v'].forEach((n, j) => checks.push([`double_blocks_${i}_img_attn_qkv`, `transformer_blocks.${i}.attn.${n}`, j * 3072, 3072]));
        ['add_q_proj', 'add_k_proj', 'add_v_proj'].forEach((n, j) => checks.push([`double_blocks_${i}_txt_attn_qkv`, `transformer_blocks.${i}.attn.${n}`, j * 3072, 3072]));
        checks.push([`double_blocks_${i}_img_mlp_2`, `transformer_blocks.${i}.ff.net.2`, 0, 3072]);
        checks.push([`double_blocks_${i}_txt_mod_lin`, `transformer_blocks.${i}.norm1_context.linear`, 0, 18432]);
      }
      for (let i = 0; i < 38; i++) {
        ['attn.to_q', 'attn.to_k', 'attn.to_v'].forEach((n, j) => checks.push([`single_blocks_${i}_linear1`, `single_transformer_blocks.${i}.${n}`, j * 3072, 3072]));
        checks.push([`single_blocks_${i}_linear1`, `single_transformer_blocks.${i}.proj_mlp`, 9216, 12288]);
        checks.push([`single_blocks_${i}_linear2`, `single_transformer_blocks.${i}.proj_out`, 0, 3072]);
      }
      for (const [kn, dn, start, rows] of checks) {
        const kd = await k.readBytes(`lora_unet_${kn}.lora_down.weight`);
        const ku = await k.readBytes(`lora_unet_${kn}.lora_up.weight`);
        expect(d.info(`transformer.${dn}.lora_A.weight`).shape, dn).toEqual([16, kn.includes('mlp_2') ? 12288 : kn.includes('linear2') ? 15360 : 3072]);
        expect(sameBytes(await d.readBytes(`transformer.${dn}.lora_A.weight`), kd), `${dn} down`).toBe(true);
        expect(sameBytes(await d.readBytes(`transformer.${dn}.lora_B.weight`), rowBytes(ku, 16, start, rows)), `${dn} up`).toBe(true);
      }
    } finally {
      await k.close();
      await d.close();
    }
    await convertLora(tmp.path('full.diffusers.safetensors'), tmp.path('full.kohya.safetensors'), { to: 'kohya' });
    const a = await SafetensorsFile.open(src);
    const b = await SafetensorsFile.open(tmp.path('full.kohya.safetensors'));
    try {
      expect(b.tensors.map((t) => t.name).sort()).toEqual(a.tensors.map((t) => t.name).sort());
      for (const t of a.tensors) {
        expect(b.info(t.name).shape).toEqual(t.shape);
        expect(sameBytes(await b.readBytes(t.name), await a.readBytes(t.name)), t.name).toBe(true);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('the full-width diffusers key list (rank 32, two blocks of each kind with data) fuses into kohya at the real widths', async () => {
    const all = fixtureKeyShapes('flux_lora_diffusers_format');
    // every key name and width, but only blocks 0 and 18 / 0 and 37 filled, to keep the file at ~20 MB
    const some: KeyShapes = Object.fromEntries(Object.entries(all).filter(([k]) => /(?:^transformer\.transformer_blocks\.(?:0|18)\.|single_transformer_blocks\.(?:0|37)\.)/.test(k)));
    const src = tmp.path('diffusers-full.safetensors');
    await writeKeyShapes(src, some, { dtype: 'BF16' });
    await convertLora(src, tmp.path('diffusers-full.kohya.safetensors'), { to: 'kohya' });
    const set = await readLora(tmp.path('diffusers-full.kohya.safetensors'));
    try {
      const byTarget = new Map(set.patches.map((p) => [p.target, p]));
      const linear1 = byTarget.get('single_blocks.37.linear1.weight')!.adapter as { down: { shape: readonly number[] }; up: { shape: readonly number[] }; scale: number };
      expect(linear1.down.shape).toEqual([128, 3072]);
      expect(linear1.up.shape).toEqual([21504, 128]);
      expect(linear1.scale).toBe(1);
      expect((byTarget.get('double_blocks.18.txt_attn.qkv.weight')!.adapter as { up: { shape: readonly number[] } }).up.shape).toEqual([9216, 96]);
      expect(set.patches).toHaveLength(2 * 10 + 2 * 3);
    } finally {
      await set.close();
    }
    const detection = (await import('../src/formats/index.ts')).detectFormat(Object.entries(all).map(([name, shape]) => ({ name, shape })));
    expect(detection.modules.find((m) => m.module === 'transformer.single_transformer_blocks.37.proj_mlp')).toMatchObject({ rows: [9216, 12288], rank: 32 });
  });
});
