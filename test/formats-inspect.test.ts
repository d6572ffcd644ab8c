import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { readLora } from '../src/formats/index.ts';
import { detectFile } from '../src/formats/inspect.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeFixture, writeKeyShapes } from '../src/samples/lora-fixtures.ts';
import { writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const run = promisify(execFile);
const tmp = useTempDir('loraflow-inspect-');

const cli = (...args: string[]) => run(process.execPath, ['bin/loraflow.js', 'inspect', ...args], { timeout: 60_000 });

describe('loraflow inspect shows the detected format', () => {
  it('--json carries format, architecture, modules, ranks, alphas and unknownKeys', async () => {
    const path = tmp.path('kohya.safetensors');
    await writeFixture('flux_lora_kohya_with_te1_format', path, { alpha: () => 1, alphaDtype: 'BF16' });
    const { stdout } = await cli(path, '--json');
    const d = JSON.parse(stdout).detection;
    expect(d).toMatchObject({ format: 'kohya', architecture: 'flux', unknownKeys: [], splitQkv: false });
    expect(d.modules).toHaveLength(376);
    expect(d.ranks.lora_unet_single_blocks_7_linear1).toBe(4);
    expect(d.alphas.lora_te1_text_model_encoder_layers_3_mlp_fc2).toBe(1);
    expect(d.coverage.textEncoders.clip_l).toHaveLength(12);
  });

  it('human output says split_qkv for a split_qkv file, and lists unplaced keys', async () => {
    const path = tmp.path('split.safetensors');
    await writeKeyShapes(
      path,
      {
        'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight': [12, 48],
        'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight': [144, 12],
        'lora_unet_double_blocks_0_img_attn_qkv.alpha': [],
        'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight': [4, 48],
        'lora_unet_double_blocks_0_img_attn_proj.lora_up.weight': [48, 4],
        'lora_unet_double_blocks_0_img_attn_proj.alpha': [],
        'mystery.tensor': [2],
      },
      { alpha: () => 4, blockDiagonal: true },
    );
    const { stdout } = await cli(path);
    expect(stdout).toMatch(/format: +kohya \(split_qkv\)/);
    expect(stdout).toContain('unplaced keys: 1');
    expect(stdout).toContain('mystery.tensor');
  });

  it('a base checkpoint is a checkpoint, not a LoRA with hundreds of unplaced keys', async () => {
    const path = tmp.path('base.safetensors');
    await writeFluxCheckpoint(path, { scale: 64, doubleBlocks: 2, singleBlocks: 2 });
    const f = await SafetensorsFile.open(path);
    const d = await detectFile(f);
    await f.close();
    expect(d).toMatchObject({ format: 'checkpoint', architecture: 'flux', unknownKeys: [], modules: [] });
    await expect(readLora(path)).rejects.toThrow(/base\.safetensors: a flux model checkpoint \(no adapter tensors\), not a LoRA/);
  });
});
