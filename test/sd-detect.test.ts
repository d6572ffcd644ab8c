/**
 * SD1.5 / SD2 / SDXL detection and key mapping: every layout of the SD fixtures is recognised with
 * its family and every key placed; the block maps agree with ComfyUI's `unet_to_diffusers` pairing
 * (worked examples) and with sd-scripts' module counts; families are told apart by layout and shapes at real widths
 * and at fixture widths; checkpoints are recognised by their own keys.
 */
import { describe, expect, it } from 'vitest';
import { detectFormat, formatDetection } from '../src/formats/index.ts';
import { checkpointArchitecture, locateOpenClip } from '../src/formats/sd/checkpoint.ts';
import { sdUnetModules } from '../src/formats/sd/unet.ts';
import { fluxCheckpointShapes } from '../src/samples/flux-checkpoint.ts';
import { sdCheckpointShapes } from '../src/samples/sd-checkpoint.ts';
import { SD_LORA_LAYOUTS, sdLoraKeyShapes, type SdLoraOptions } from '../src/samples/sd-lora-fixtures.ts';

const keysOf = (shapes: Record<string, number[]>) => Object.entries(shapes).map(([name, shape]) => ({ name, shape }));
const detect = (opts: SdLoraOptions, metadata?: Record<string, string>) => detectFormat(keysOf(sdLoraKeyShapes(opts)), metadata);

/**
 * LoRA modules per family (kohya defaults; + ResNet/sampler convs with LoCon), counted from
 * sd-scripts' UNet definitions; for SD1 its log reads 72 text-encoder and 278 U-Net modules (LoCon).
 */
const COUNTS = {
  sd1: { transformer: 192, locon: 278, attention: 128, te: 72 },
  sd2: { transformer: 192, locon: 278, attention: 128, te: 23 * 6 },
  sdxl: { transformer: 722, locon: 788, attention: 560, te: 72 + 192 },
} as const;

const FORMAT: Record<string, string> = { kohya: 'kohya', 'kohya-diffusers': 'kohya', diffusers: 'diffusers', 'diffusers-old': 'diffusers', comfyui: 'comfyui', lycoris: 'lycoris' };

describe('module inventory', () => {
  it('has the block counts of §3.2b', () => {
    for (const arch of ['sd1', 'sdxl'] as const) {
      const mods = sdUnetModules(arch);
      const blocks = mods.filter((m) => m.ldm.endsWith('attn1.to_q')).length;
      const resnets = mods.filter((m) => m.ldm.endsWith('in_layers.2')).length;
      expect({ blocks, resnets }).toEqual(arch === 'sd1' ? { blocks: 16, resnets: 22 } : { blocks: 70, resnets: 17 });
    }
    expect(sdUnetModules('sdxl').find((m) => m.ldm === 'input_blocks.7.1.transformer_blocks.9.attn2.to_k')).toMatchObject({ diffusers: 'down_blocks.2.attentions.0.transformer_blocks.9.attn2.to_k', shape: [1280, 2048] });
    expect(sdUnetModules('sd1').find((m) => m.ldm === 'output_blocks.5.0.skip_connection')).toMatchObject({ diffusers: 'up_blocks.1.resnets.2.conv_shortcut', shape: [1280, 1920, 1, 1] });
    expect(sdUnetModules('sd1').find((m) => m.ldm === 'input_blocks.1.1.proj_in')!.shape).toEqual([320, 320, 1, 1]);
    expect(sdUnetModules('sd2').find((m) => m.ldm === 'input_blocks.1.1.proj_in')!.shape).toEqual([320, 320]);
  });
});

describe('every layout of every family is recognised and fully placed', () => {
  for (const arch of ['sd1', 'sd2', 'sdxl'] as const)
    for (const layout of SD_LORA_LAYOUTS)
      for (const factor of [1, 64]) {
        it(`${arch} ${layout} (widths ÷${factor})`, () => {
          const targets = layout === 'diffusers-old' ? 'attention' : 'locon';
          const d = detect({ arch, layout, targets, tucker: true, factor });
          expect(d.format).toBe(FORMAT[layout]);
          expect(d.architecture).toBe(arch);
          expect(d.confidence).toBeGreaterThanOrEqual(0.95);
          expect(d.unknownKeys).toEqual([]);
          const unet = d.modules.filter((m) => m.component === 'unet').length;
          const te = d.modules.length - unet;
          expect(unet).toBe(COUNTS[arch][targets]);
          expect(te).toBe(layout === 'lycoris' ? 0 : COUNTS[arch].te);
          // every UNet target is an LDM weight name, every text-encoder target a Hugging Face one
          for (const m of d.modules) {
            if (m.component === 'unet') expect(m.target).toMatch(/^(input_blocks|middle_block|output_blocks)\.\d+\..*\.weight$|^middle_block\.\d+\./);
            else expect(m.target).toMatch(/^text_model\.encoder\.layers\.\d+\.(self_attn\.[qkv]_proj|self_attn\.out_proj|mlp\.fc[12])\.weight$/);
          }
          expect(d.coverage.doubleBlocks).toEqual([]);
        });
      }
});

/** One module in every spelling (kohya, diffusers PEFT, old attn-processor, ComfyUI native, LyCORIS). */
const ROSETTA: readonly { arch: 'sd1' | 'sdxl'; target: string; names: string[] }[] = [
  {
    arch: 'sdxl',
    target: 'input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight',
    names: [
      'lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q',
      'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q',
      'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q',
      'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora',
      'diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q',
      'lycoris_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q',
    ],
  },
  { arch: 'sdxl', target: 'input_blocks.5.1.proj_in.weight', names: ['lora_unet_input_blocks_5_1_proj_in', 'unet.down_blocks.1.attentions.1.proj_in'] },
  { arch: 'sdxl', target: 'input_blocks.7.1.transformer_blocks.3.ff.net.0.proj.weight', names: ['lora_unet_input_blocks_7_1_transformer_blocks_3_ff_net_0_proj', 'unet.down_blocks.2.attentions.0.transformer_blocks.3.ff.net.0.proj'] },
  { arch: 'sdxl', target: 'input_blocks.3.0.op.weight', names: ['lora_unet_input_blocks_3_0_op', 'lora_unet_down_blocks_0_downsamplers_0_conv'] },
  { arch: 'sdxl', target: 'output_blocks.0.1.transformer_blocks.9.attn2.to_out.0.weight', names: ['lora_unet_output_blocks_0_1_transformer_blocks_9_attn2_to_out_0', 'unet.up_blocks.0.attentions.0.transformer_blocks.9.attn2.processor.to_out_lora'] },
  { arch: 'sdxl', target: 'output_blocks.2.2.conv.weight', names: ['lora_unet_output_blocks_2_2_conv', 'unet.up_blocks.0.upsamplers.0.conv'] },
  { arch: 'sdxl', target: 'input_blocks.1.0.in_layers.2.weight', names: ['lora_unet_input_blocks_1_0_in_layers_2', 'lora_unet_down_blocks_0_resnets_0_conv1'] },
  { arch: 'sdxl', target: 'input_blocks.4.0.emb_layers.1.weight', names: ['lora_unet_input_blocks_4_0_emb_layers_1', 'unet.down_blocks.1.resnets.0.time_emb_proj'] },
  { arch: 'sdxl', target: 'input_blocks.4.0.skip_connection.weight', names: ['lora_unet_input_blocks_4_0_skip_connection', 'lora_unet_down_blocks_1_resnets_0_conv_shortcut'] },
  { arch: 'sdxl', target: 'middle_block.1.proj_out.weight', names: ['lora_unet_middle_block_1_proj_out', 'unet.mid_block.attentions.0.proj_out'] },
  { arch: 'sd1', target: 'input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight', names: ['lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k', 'diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k'] },
  { arch: 'sd1', target: 'output_blocks.11.1.proj_out.weight', names: ['lora_unet_up_blocks_3_attentions_2_proj_out', 'diffusion_model.output_blocks.11.1.proj_out'] },
  { arch: 'sd1', target: 'output_blocks.2.1.conv.weight', names: ['lora_unet_up_blocks_0_upsamplers_0_conv', 'diffusion_model.output_blocks.2.1.conv'] },
  { arch: 'sd1', target: 'middle_block.2.out_layers.3.weight', names: ['lora_unet_mid_block_resnets_1_conv2', 'diffusion_model.middle_block.2.out_layers.3'] },
];

describe('one module in every spelling lands on one LDM target', () => {
  for (const row of ROSETTA) {
    it(`${row.arch} ${row.target}`, () => {
      const m = sdUnetModules(row.arch).find((x) => `${x.ldm}.weight` === row.target)!;
      const [out, inp, ...k] = m.shape;
      for (const name of row.names) {
        const legacy = name.includes('_lora');
        const keys = [
          { name: `${name}.${legacy ? 'down.weight' : 'lora_down.weight'}`, shape: [2, inp!, ...k] },
          { name: `${name}.${legacy ? 'up.weight' : 'lora_up.weight'}`, shape: k.length ? [out!, 2, 1, 1] : [out!, 2] },
        ];
        const d = detectFormat(keys, { ss_base_model_version: row.arch === 'sdxl' ? 'sdxl_base_v1-0' : 'sd_v1' });
        expect(d.unknownKeys, name).toEqual([]);
        expect(d.modules.map((x) => [x.component, x.target]), name).toEqual([['unet', row.target]]);
        expect(d.architecture, name).toBe(row.arch);
      }
    });
  }

  it('text encoders: kohya lora_te_/te1_/te2_, diffusers text_encoder(_2)., ComfyUI clip_l/clip_g/clip_h, old diffusers names', () => {
    const cases: [string, string, string][] = [
      ['lora_te_text_model_encoder_layers_3_self_attn_q_proj', 'clip_l', 'text_model.encoder.layers.3.self_attn.q_proj.weight'],
      ['lora_te1_text_model_encoder_layers_3_mlp_fc1', 'clip_l', 'text_model.encoder.layers.3.mlp.fc1.weight'],
      ['lora_te2_text_model_encoder_layers_30_self_attn_out_proj', 'clip_g', 'text_model.encoder.layers.30.self_attn.out_proj.weight'],
      ['text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj', 'clip_g', 'text_model.encoder.layers.0.self_attn.k_proj.weight'],
      ['text_encoders.clip_g.transformer.text_model.encoder.layers.1.mlp.fc2', 'clip_g', 'text_model.encoder.layers.1.mlp.fc2.weight'],
      ['text_encoders.clip_h.transformer.text_model.encoder.layers.1.mlp.fc2', 'clip_l', 'text_model.encoder.layers.1.mlp.fc2.weight'],
      ['text_encoder.text_model.encoder.layers.2.self_attn.to_v_lora', 'clip_l', 'text_model.encoder.layers.2.self_attn.v_proj.weight'],
      ['text_encoder.text_model.encoder.layers.2.self_attn.to_out_lora', 'clip_l', 'text_model.encoder.layers.2.self_attn.out_proj.weight'],
      ['text_encoder.text_model.encoder.layers.2.mlp.fc1.lora_linear_layer', 'clip_l', 'text_model.encoder.layers.2.mlp.fc1.weight'],
    ];
    const unet = [
      { name: 'lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q.lora_down.weight', shape: [2, 640] },
      { name: 'lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q.lora_up.weight', shape: [640, 2] },
    ];
    for (const [name, component, target] of cases) {
      const legacy = /_lora$|lora_linear_layer$/.test(name);
      const d = detectFormat([...unet, { name: `${name}.${legacy ? 'down.weight' : 'lora_down.weight'}`, shape: [2, 768] }, { name: `${name}.${legacy ? 'up.weight' : 'lora_up.weight'}`, shape: [768, 2] }]);
      expect(d.unknownKeys, name).toEqual([]);
      expect(d.modules.find((m) => m.component !== 'unet'), name).toMatchObject({ component, target });
    }
  });
});

describe('telling SD1.5, SD2 and SDXL apart', () => {
  it('by cross-attention context width at real widths: 768 (SD1), 1024 (SD2), 2048 (SDXL)', () => {
    const only = /^(input_blocks\.4\.1\.transformer_blocks\.0\.attn2\.to_[kv]|input_blocks\.4\.1\.transformer_blocks\.0\.attn1\.to_q)$/;
    for (const arch of ['sd1', 'sd2', 'sdxl'] as const) {
      // kohya-diffusers names are the same for all three families at this block
      const d = detect({ arch, layout: 'kohya-diffusers', targets: 'transformer', only, textEncoders: false, factor: 1 });
      expect(d.architecture).toBe(arch);
      expect(d.evidence.join('\n')).toContain(`${{ sd1: 768, sd2: 1024, sdxl: 2048 }[arch]}-wide context`);
    }
  });

  it('by the same shapes at fixture widths (÷64), where absolute widths say nothing', () => {
    const only = /^input_blocks\.4\.1\.transformer_blocks\.0\.attn2\.to_k$/;
    for (const arch of ['sd1', 'sd2', 'sdxl'] as const) expect(detect({ arch, layout: 'diffusers', only, textEncoders: false, factor: 64 }).architecture).toBe(arch);
  });

  it('by proj_in: a 1×1 conv in SD1, a Linear in SD2', () => {
    const only = /^input_blocks\.1\.1\.proj_in$/;
    expect(detect({ arch: 'sd1', layout: 'kohya', only, textEncoders: false }).architecture).toBe('sd1');
    expect(detect({ arch: 'sd2', layout: 'kohya', only, textEncoders: false }).architecture).toBe('sd2');
  });

  it('by block layout: attention at level 0 is SD1/SD2, deep transformer stacks are SDXL', () => {
    const d = detect({ arch: 'sdxl', layout: 'kohya', only: /^input_blocks\.7\.1\.transformer_blocks\.5\./, textEncoders: false });
    expect(d.architecture).toBe('sdxl');
    expect(d.evidence.join('\n')).toMatch(/UNet block layout is SDXL's \(SD1\.5 has no lora_unet_input_blocks_7_1_transformer_blocks_5/);
  });

  it('text encoders alone: CLIP-G means SDXL, 23 layers mean SD2', () => {
    expect(detect({ arch: 'sdxl', layout: 'diffusers', only: /^$/ }).architecture).toBe('sdxl');
    expect(detect({ arch: 'sd2', layout: 'kohya', only: /^$/ }).architecture).toBe('sd2');
    expect(detect({ arch: 'sd1', layout: 'kohya', only: /^$/ }).architecture).toBe('sd1');
  });

  it('FLUX and SD3 files are not taken for SD', () => {
    const flux = detectFormat([{ name: 'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight', shape: [4, 3072] }, { name: 'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight', shape: [9216, 4] }]);
    expect(flux.architecture).toBe('flux');
    const sd35 = detectFormat([{ name: 'transformer.transformer_blocks.0.attn2.to_q.lora_A.weight', shape: [4, 1536] }, { name: 'transformer.transformer_blocks.0.attn2.to_q.lora_B.weight', shape: [1536, 4] }]);
    expect(sd35.architecture).toBe('sd3');
  });
});

describe('keys that have no place are reported by name', () => {
  it('a UNet block the family does not have, and FLUX/T5 names inside an SD file', () => {
    const shapes = sdLoraKeyShapes({ arch: 'sdxl', layout: 'kohya', only: /^input_blocks\.4\.1\.transformer_blocks\.0\.attn1\.to_q$/ });
    const keys = [
      ...keysOf(shapes),
      { name: 'lora_unet_input_blocks_12_1_transformer_blocks_0_attn1_to_q.lora_down.weight', shape: [4, 10] },
      { name: 'lora_unet_input_blocks_12_1_transformer_blocks_0_attn1_to_q.lora_up.weight', shape: [10, 4] },
      { name: 'lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight', shape: [4, 64] },
      { name: 'lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight', shape: [64, 4] },
    ];
    const d = detectFormat(keys);
    expect(d.architecture).toBe('sdxl');
    expect(d.unknownKeys.sort()).toEqual([
      'lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight',
      'lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight',
      'lora_unet_input_blocks_12_1_transformer_blocks_0_attn1_to_q.lora_down.weight',
      'lora_unet_input_blocks_12_1_transformer_blocks_0_attn1_to_q.lora_up.weight',
    ]);
    expect(formatDetection(d)).toContain('unplaced keys: 4');
  });

  it('the inspect summary shows UNet blocks and text encoders for SD', () => {
    const d = detect({ arch: 'sdxl', layout: 'kohya', targets: 'transformer' });
    expect(d.coverage.unetBlocks).toEqual(['IN04', 'IN05', 'IN07', 'IN08', 'MID', 'OUT00', 'OUT01', 'OUT02', 'OUT03', 'OUT04', 'OUT05']);
    const text = formatDetection(d);
    expect(text).toContain('coverage:     UNet blocks IN04, IN05, IN07, IN08, MID, OUT00');
    expect(text).toContain('text encoder clip_g: 32 (0–31)');
  });
});

describe('checkpoints', () => {
  it('are recognised by their own keys (SD1 CLIP-L, SD2 OpenCLIP-H, SDXL conditioner, FLUX blocks), with or without text encoders', () => {
    for (const arch of ['sd1', 'sd2', 'sdxl'] as const) {
      for (const textEncoders of [true, false]) {
        const keys = sdCheckpointShapes({ arch, textEncoders, vae: false });
        expect(checkpointArchitecture(keys).architecture, `${arch} te=${textEncoders}`).toBe(arch);
        const d = detectFormat(keys);
        expect(d).toMatchObject({ format: 'checkpoint', architecture: arch, unknownKeys: [] });
      }
    }
    expect(checkpointArchitecture(fluxCheckpointShapes({ scale: 64, prefix: 'model.diffusion_model.' })).architecture).toBe('flux');
    expect(checkpointArchitecture([{ name: 'text_model.encoder.layers.0.mlp.fc1.weight', shape: [4, 4] }]).architecture).toBe('unknown');
  });

  it('find an OpenCLIP q/k/v as a row third of the fused in_proj_weight', () => {
    const keys = new Map(sdCheckpointShapes({ arch: 'sdxl' }).map((k) => [k.name, k.shape]));
    const file = { has: (k: string) => keys.has(k), shapeOf: (k: string) => keys.get(k)! };
    const key = 'conditioner.embedders.1.model.transformer.resblocks.7.attn.in_proj_weight';
    expect(keys.get(key)).toEqual([60, 20]);
    expect(locateOpenClip(file, 'clip_g', 'text_model.encoder.layers.7.self_attn.q_proj.weight')).toEqual({ key, rows: [0, 20] });
    expect(locateOpenClip(file, 'clip_g', 'text_model.encoder.layers.7.self_attn.v_proj.weight')).toEqual({ key, rows: [40, 20] });
    expect(locateOpenClip(file, 'clip_g', 'text_model.encoder.layers.7.self_attn.k_proj.bias')).toEqual({ key: 'conditioner.embedders.1.model.transformer.resblocks.7.attn.in_proj_bias', rows: [20, 20] });
    expect(locateOpenClip(file, 'clip_g', 'text_model.encoder.layers.7.mlp.fc2.weight')).toEqual({ key: 'conditioner.embedders.1.model.transformer.resblocks.7.mlp.c_proj.weight' });
    // CLIP-L of SDXL is stored under Hugging Face names: no OpenCLIP location
    expect(locateOpenClip(file, 'clip_l', 'text_model.encoder.layers.7.self_attn.q_proj.weight')).toBeUndefined();
  });
});
