/**
 * SD1.5 / SD2 / SDXL conversions: every layout loraflow reads (kohya, kohya with diffusers names,
 * diffusers/PEFT, old diffusers attention processors, ComfyUI, LyCORIS standalone), with LoRA,
 * LoCon (3×3 convs, Tucker lora_mid), LoHa, LoKr and DoRA, converts to every writable layout (or is
 * refused by name) with the same ΔW per base weight (dense f64 reference), and onwards through the
 * other writers; the SDXL kohya ⇄ diffusers round trip is bit-exact.
 */
import { describe, expect, it } from 'vitest';
import { convertLora, LoraFormatError, writeLora, WRITE_FORMATS, type WriteFormat } from '../src/formats/index.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { compareSets, expectedDeltas } from '../src/samples/lora-fixtures.ts';
import { writeSdLora, type SdLoraLayout, type SdLoraOptions } from '../src/samples/sd-lora-fixtures.ts';
import type { SdArchitecture } from '../src/formats/sd/unet.ts';
import { expectInexpressible, onwardPairs } from './helpers/convert.ts';
import { exists, sha256 } from './helpers/files.ts';
import { compareFiles, withLora } from './helpers/lora.ts';
import { sameBytes, tensorsOf } from './helpers/tensors.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const p = useTempDir('loraflow-sd-convert-').path;

/**
 * A few blocks of each kind (a ResNet with shortcut, a downsampler, attention with its first
 * transformer block, the middle block, an upsampler) and two text-encoder layers: every code path,
 * small enough to convert in milliseconds.
 */
const SMALL = /^(?:input_blocks\.[1-5]|middle_block|output_blocks\.[2-5])\.(?!\d+\.transformer_blocks\.[1-9])/;

interface Case {
  name: string;
  opts: SdLoraOptions;
  /** What each writer must refuse, and the words its error contains. */
  refused?: Partial<Record<WriteFormat, RegExp>>;
  /** Arithmetic in the conversion (Tucker folded into the down for PEFT): relative error allowed. */
  tolerance?: Partial<Record<WriteFormat, number>>;
}

function cases(arch: SdArchitecture): Case[] {
  const base = { arch, only: SMALL, teLayers: 2, seed: 5 };
  const layouts: SdLoraLayout[] = ['kohya', 'diffusers', 'diffusers-old', 'comfyui', 'lycoris', ...(arch === 'sdxl' ? (['kohya-diffusers'] as const) : [])];
  const out: Case[] = layouts.map((layout) => ({
    name: `${layout} ${layout === 'diffusers-old' ? 'attention' : 'LoCon'}`,
    opts: { ...base, layout, targets: 'locon', alpha: (_, r) => r / 2 },
  }));
  out.push(
    {
      name: 'kohya LoCon with Tucker lora_mid',
      opts: { ...base, layout: 'kohya', targets: 'locon', tucker: true, convRank: 3 },
      tolerance: { diffusers: 1e-6 },
    },
    {
      name: 'comfyui LoCon with Tucker lora_mid',
      opts: { ...base, layout: 'comfyui', targets: 'locon', tucker: true },
      tolerance: { diffusers: 1e-6 },
    },
    { name: 'kohya LoHa', opts: { ...base, layout: 'kohya', targets: 'locon', algo: 'loha' }, refused: { diffusers: /PEFT files hold lora_A\/lora_B only, not LoHa/ } },
    { name: 'lycoris LoKr', opts: { ...base, layout: 'lycoris', targets: 'locon', algo: 'lokr' }, refused: { diffusers: /lycoris_.*not LoKr/ } },
    { name: 'kohya LoHa with Tucker hada_t1/t2', opts: { ...base, layout: 'kohya', targets: 'locon', algo: 'loha', tucker: true }, refused: { diffusers: /not LoHa/ } },
    { name: 'comfyui LoKr with Tucker lokr_t2', opts: { ...base, layout: 'comfyui', targets: 'locon', algo: 'lokr', tucker: true }, refused: { diffusers: /not LoKr/ } },
    { name: 'kohya DoRA (dora_scale per input column; convs [out, 1, 1, 1] / [1, in, 1, 1])', opts: { ...base, layout: 'kohya', targets: 'locon', dora: true }, refused: { diffusers: /DoRA magnitude per input column/ } },
    { name: 'diffusers DoRA (lora_magnitude_vector per output row)', opts: { ...base, layout: 'diffusers', dora: true } },
  );
  return out;
}

const FORMAT_OF: Record<WriteFormat, string> = { kohya: 'kohya', comfyui: 'comfyui', diffusers: 'diffusers' };

for (const arch of ['sd1', 'sd2', 'sdxl'] as const) {
  describe(`${arch}: every layout converts to every writable layout and onwards`, () => {
    for (const c of cases(arch)) {
      it(c.name, async () => {
        const tag = `${arch}-${c.name.replace(/\W+/g, '-')}`;
        const src = p(`${tag}.safetensors`);
        await writeSdLora(src, c.opts);
        const before = await sha256(src);
        await withLora(src, async (original) => {
          expect(original.architecture).toBe(arch);
          expect(original.unknownKeys).toEqual([]);
          const expected = await expectedDeltas(original);
          const written: WriteFormat[] = [];
          for (const to of WRITE_FORMATS) {
            const out = p(`${tag}.${to}.safetensors`);
            const refusal = c.refused?.[to];
            if (refusal) {
              await expectInexpressible(src, out, to, refusal);
              continue;
            }
            const report = await convertLora(src, out, { to });
            expect(report).toMatchObject({ to, architecture: arch, unknownKeys: [] });
            await withLora(out, async (back) => {
              expect(back).toMatchObject({ format: c.opts.algo && c.opts.algo !== 'lora' ? 'lycoris' : FORMAT_OF[to], architecture: arch, unknownKeys: [] });
              expect(back.patches.length).toBe(original.patches.length);
              const { maxRelError } = await compareSets(expected, back);
              if (c.tolerance?.[to] !== undefined) expect(maxRelError).toBeLessThanOrEqual(c.tolerance[to]!);
              else expect(maxRelError).toBe(0);
            });
            written.push(to);
          }
          // onwards through the other writers (kohya → diffusers → comfyui → kohya)
          for (const [from, to] of onwardPairs(written)) {
            const out = p(`${tag}.${from}.${to}.safetensors`);
            await convertLora(p(`${tag}.${from}.safetensors`), out, { to });
            await withLora(out, async (back) => {
              const { maxRelError } = await compareSets(expected, back);
              expect(maxRelError).toBeLessThanOrEqual(Math.max(c.tolerance?.[to] ?? 0, c.tolerance?.[from] ?? 0));
            });
          }
        });
        expect(await sha256(src)).toBe(before);
      });
    }
  });
}

describe('names each writer gives', () => {
  async function namesAfter(opts: SdLoraOptions, to: WriteFormat): Promise<string[]> {
    const src = p(`names-${opts.arch}-${opts.layout}.safetensors`);
    await writeSdLora(src, opts);
    const out = p(`names-${opts.arch}-${opts.layout}.${to}.safetensors`);
    await convertLora(src, out, { to });
    return [...(await tensorsOf(out)).keys()];
  }

  it('SDXL kohya (sgm names) → diffusers: unet./text_encoder./text_encoder_2. with diffusers names, no alpha', async () => {
    const names = await namesAfter({ arch: 'sdxl', layout: 'kohya', only: SMALL, teLayers: 1 }, 'diffusers');
    expect(names).toContain('unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight');
    expect(names).toContain('unet.up_blocks.1.attentions.0.proj_out.lora_B.weight');
    expect(names).toContain('text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_A.weight');
    expect(names).toContain('text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight');
    expect(names.some((n) => n.endsWith('.alpha'))).toBe(false);
  });

  it('SDXL diffusers → kohya: sgm UNet names, lora_te1_ / lora_te2_, alphas', async () => {
    const names = await namesAfter({ arch: 'sdxl', layout: 'diffusers', targets: 'locon', only: SMALL, teLayers: 1 }, 'kohya');
    expect(names).toContain('lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight');
    expect(names).toContain('lora_unet_input_blocks_3_0_op.lora_up.weight');
    expect(names).toContain('lora_unet_output_blocks_2_2_conv.alpha');
    expect(names).toContain('lora_te1_text_model_encoder_layers_0_self_attn_out_proj.alpha');
    expect(names).toContain('lora_te2_text_model_encoder_layers_0_mlp_fc2.lora_down.weight');
  });

  it('SD1 and SD2 kohya keep diffusers UNet names and the single lora_te_ prefix', async () => {
    for (const arch of ['sd1', 'sd2'] as const) {
      const names = await namesAfter({ arch, layout: 'comfyui', targets: 'locon', only: SMALL, teLayers: 1 }, 'kohya');
      expect(names).toContain('lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight');
      expect(names).toContain('lora_unet_down_blocks_1_resnets_0_conv_shortcut.lora_up.weight');
      expect(names).toContain('lora_unet_down_blocks_0_downsamplers_0_conv.alpha');
      expect(names).toContain('lora_unet_mid_block_resnets_1_time_emb_proj.lora_down.weight');
      expect(names).toContain('lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight');
      expect(names.every((n) => /^lora_(unet|te)_/.test(n))).toBe(true);
    }
  });

  it('ComfyUI: diffusion_model. + LDM names, text_encoders.clip_l / clip_g (SDXL) and clip_h (SD2)', async () => {
    const xl = await namesAfter({ arch: 'sdxl', layout: 'kohya-diffusers', only: SMALL, teLayers: 1 }, 'comfyui');
    expect(xl).toContain('diffusion_model.input_blocks.4.1.transformer_blocks.0.ff.net.0.proj.lora_down.weight');
    expect(xl).toContain('text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.k_proj.lora_up.weight');
    expect(xl).toContain('text_encoders.clip_g.transformer.text_model.encoder.layers.0.self_attn.k_proj.lora_up.weight');
    const sd2 = await namesAfter({ arch: 'sd2', layout: 'kohya', only: SMALL, teLayers: 1 }, 'comfyui');
    expect(sd2).toContain('text_encoders.clip_h.transformer.text_model.encoder.layers.0.self_attn.k_proj.lora_up.weight');
  });
});

describe('SDXL kohya ⇄ diffusers', () => {
  it('the whole SDXL LoRA (722 UNet + 264 text-encoder modules, alpha = rank) goes to diffusers and back bit-exactly', async () => {
    const src = p('xl-full.safetensors');
    await writeSdLora(src, { arch: 'sdxl', layout: 'kohya', rank: 8, alpha: (_, r) => r, dtype: 'F16', seed: 21 });
    await convertLora(src, p('xl-full.d.safetensors'), { to: 'diffusers' });
    await convertLora(p('xl-full.d.safetensors'), p('xl-full.k.safetensors'), { to: 'kohya' });
    const original = await tensorsOf(src);
    const back = await tensorsOf(p('xl-full.k.safetensors'));
    expect(original.size).toBe(986 * 3);
    expect([...back.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [n, t] of original) {
      const b = back.get(n)!;
      expect(b.dtype, n).toBe(t.dtype);
      expect(b.shape, n).toEqual(t.shape);
      expect(sameBytes(b.bytes, t.bytes), n).toBe(true);
    }
  });

  it('any power-of-two scale (alpha = rank / 2, rank / 8): ΔW bit-exact both ways', async () => {
    for (const [i, alpha] of [(_: string, r: number) => r / 2, (_: string, r: number) => r / 8].entries()) {
      const src = p(`xl-scale-${i}.safetensors`);
      await writeSdLora(src, { arch: 'sdxl', layout: 'kohya', targets: 'locon', only: SMALL, teLayers: 2, alpha, dtype: 'BF16' });
      await convertLora(src, p(`xl-scale-${i}.d.safetensors`), { to: 'diffusers' });
      await convertLora(p(`xl-scale-${i}.d.safetensors`), p(`xl-scale-${i}.k.safetensors`), { to: 'kohya' });
      expect((await compareFiles(src, p(`xl-scale-${i}.k.safetensors`))).maxRelError).toBe(0);
    }
  });

  it('Tucker convs: kohya and ComfyUI keep lora_mid byte for byte, diffusers folds it into a [r, in, 3, 3] lora_A', async () => {
    const src = p('xl-tucker.safetensors');
    await writeSdLora(src, { arch: 'sdxl', layout: 'kohya', targets: 'locon', tucker: true, only: /^input_blocks\.1\.0\./, textEncoders: false, rank: 4 });
    await convertLora(src, p('xl-tucker.c.safetensors'), { to: 'comfyui' });
    await convertLora(src, p('xl-tucker.d.safetensors'), { to: 'diffusers' });
    const original = await tensorsOf(src);
    const comfy = await tensorsOf(p('xl-tucker.c.safetensors'));
    const peft = await tensorsOf(p('xl-tucker.d.safetensors'));
    const mid = original.get('lora_unet_input_blocks_1_0_in_layers_2.lora_mid.weight')!;
    expect(mid.shape).toEqual([4, 4, 3, 3]);
    expect(sameBytes(comfy.get('diffusion_model.input_blocks.1.0.in_layers.2.lora_mid.weight')!.bytes, mid.bytes)).toBe(true);
    expect(peft.get('unet.down_blocks.0.resnets.0.conv1.lora_A.weight')!.shape).toEqual([4, 5, 3, 3]);
    expect(peft.get('unet.down_blocks.0.resnets.0.conv1.lora_B.weight')!.shape).toEqual([5, 4, 1, 1]);
    expect([...peft.keys()].some((n) => n.includes('mid'))).toBe(false);
  });
});

describe('conv DoRA magnitudes', () => {
  it('keep LyCORIS\'s 4-D shapes through kohya and ComfyUI, byte for byte', async () => {
    const src = p('dora-conv.safetensors');
    await writeSdLora(src, { arch: 'sdxl', layout: 'kohya', targets: 'locon', dora: true, only: /^input_blocks\.4\.0\.(?:in_layers\.2|skip_connection)$/, textEncoders: false });
    await convertLora(src, p('dora-conv.c.safetensors'), { to: 'comfyui' });
    const original = await tensorsOf(src);
    const comfy = await tensorsOf(p('dora-conv.c.safetensors'));
    for (const [k, c] of [['lora_unet_input_blocks_4_0_in_layers_2', 'diffusion_model.input_blocks.4.0.in_layers.2'], ['lora_unet_input_blocks_4_0_skip_connection', 'diffusion_model.input_blocks.4.0.skip_connection']]) {
      const a = original.get(`${k}.dora_scale`)!;
      const b = comfy.get(`${c}.dora_scale`)!;
      expect(b.shape).toEqual(a.shape);
      expect(sameBytes(b.bytes, a.bytes)).toBe(true);
    }
    expect(original.get('lora_unet_input_blocks_4_0_in_layers_2.dora_scale')!.shape).toEqual([10, 1, 1, 1]);
    expect(original.get('lora_unet_input_blocks_4_0_skip_connection.dora_scale')!.shape).toEqual([1, 5, 1, 1]);
  });
});

describe('metadata and refusals', () => {
  it('a kohya SD file is labelled with its own model (modelspec, ss_network_module)', async () => {
    const src = p('meta-sd1.safetensors');
    await writeSdLora(src, { arch: 'sd1', layout: 'diffusers', only: SMALL, teLayers: 1 });
    await convertLora(src, p('meta-sd1.k.safetensors'), { to: 'kohya' });
    const f = await SafetensorsFile.open(p('meta-sd1.k.safetensors'));
    try {
      expect(f.metadata).toMatchObject({ 'modelspec.architecture': 'stable-diffusion-v1/lora', ss_network_module: 'networks.lora' });
    } finally {
      await f.close();
    }
    const xl = p('meta-xl.safetensors');
    await writeSdLora(xl, { arch: 'sdxl', layout: 'comfyui', only: SMALL, teLayers: 1 });
    await convertLora(xl, p('meta-xl.d.safetensors'), { to: 'diffusers' });
    const g = await SafetensorsFile.open(p('meta-xl.d.safetensors'));
    try {
      expect(g.metadata?.['modelspec.architecture']).toBe('stable-diffusion-xl-v1-base/lora');
    } finally {
      await g.close();
    }
  });

  it('a patch an SD layout has no name for is refused by name, and nothing is written', async () => {
    const src = p('refuse.safetensors');
    await writeSdLora(src, { arch: 'sd1', layout: 'kohya', only: /^input_blocks\.1\.1\.proj_in$/, textEncoders: false });
    await withLora(src, async (set) => {
      const g = { ...set, patches: set.patches.map((x) => ({ ...x, component: 'clip_g' as const })) };
      const err = await writeLora(p('refuse.out.safetensors'), g, { format: 'kohya' }).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(/kohya files for SD1 have no place for the clip_g component/);
      const bad = { ...set, patches: set.patches.map((x) => ({ ...x, target: 'input_blocks.12.1.proj_in.weight' })) };
      const err2 = await writeLora(p('refuse.out.safetensors'), bad, { format: 'diffusers' }).catch((e: unknown) => e);
      expect((err2 as LoraFormatError).code).toBe('INEXPRESSIBLE');
      expect((err2 as Error).message).toMatch(/input_blocks\.12\.1\.proj_in: not a module of the SD1 UNet/);
    });
    expect(await exists(p('refuse.out.safetensors'))).toBe(false);
  });
});
