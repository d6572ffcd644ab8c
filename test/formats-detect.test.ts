import { describe, expect, it } from 'vitest';
import { assertFlux, detectFormat, formatDetection, LoraFormatError } from '../src/formats/index.ts';
import { FIXTURE_NAMES, fixtureKeyShapes, type FixtureName, type KeyShapes } from '../src/samples/lora-fixtures.ts';

const keys = (shapes: KeyShapes) => Object.entries(shapes).map(([name, shape]) => ({ name, shape }));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const ALL_EMBEDDERS = ['img_in', 'txt_in', 'time_in.in_layer', 'time_in.out_layer', 'vector_in.in_layer', 'vector_in.out_layer', 'guidance_in.in_layer', 'guidance_in.out_layer'];

interface Expect {
  format: string;
  algorithms: string[];
  modules: number;
  ranks: number[];
  double: number[];
  single: number[];
  embedders?: string[];
  final?: string[];
  te?: Record<string, number[]>;
}

const EXPECTED: Record<FixtureName, Expect> = {
  flux_control_lora_format: {
    format: 'bfl-control', algorithms: ['full', 'lora', 'set'], modules: 304 + 10 + 304 + 10 + 76 + 76, ranks: [64, 128],
    double: range(19), single: range(38), embedders: ALL_EMBEDDERS, final: ['final_layer.linear', 'final_layer.adaLN_modulation.1'],
  },
  flux_dora_onetrainer_format: {
    format: 'onetrainer', algorithms: ['dora', 'lora'], modules: 506, ranks: [4], double: range(19), single: range(38), te: { clip_l: range(12), t5: range(24) },
  },
  flux_lokr_bfl_format: { format: 'lycoris', algorithms: ['lokr'], modules: 6, ranks: [], double: [0], single: [0] },
  flux_lora_aitoolkit_format: { format: 'comfyui', algorithms: ['lora'], modules: 228, ranks: [16], double: range(19), single: range(38) },
  flux_lora_diffusers_base_model_format: { format: 'diffusers', algorithms: ['lora'], modules: 381, ranks: [4], double: range(19), single: range(38), final: ['final_layer.linear'] },
  flux_lora_diffusers_format: { format: 'diffusers', algorithms: ['lora'], modules: 494, ranks: [32], double: range(19), single: range(38) },
  flux_lora_diffusers_no_proj_mlp_format: { format: 'diffusers', algorithms: ['lora'], modules: 342, ranks: [16], double: range(19), single: range(38) },
  flux_lora_kohya_format: { format: 'kohya', algorithms: ['lora'], modules: 304, ranks: [16], double: range(19), single: range(38) },
  flux_lora_kohya_with_te1_format: { format: 'kohya', algorithms: ['lora'], modules: 376, ranks: [4], double: range(19), single: range(38), te: { clip_l: range(12) } },
  flux_lora_xlabs_format: { format: 'xlabs', algorithms: ['lora'], modules: 12, ranks: [16], double: [0, 1, 10], single: [] },
};

describe('detectFormat on the real FLUX key lists', () => {
  for (const name of FIXTURE_NAMES) {
    it(`${name}: layout, architecture, coverage, every key placed`, () => {
      const e = EXPECTED[name];
      const d = detectFormat(keys(fixtureKeyShapes(name)));
      expect(d.format).toBe(e.format);
      expect(d.architecture).toBe('flux');
      expect(d.unknownKeys).toEqual([]);
      expect(d.confidence).toBeGreaterThanOrEqual(0.9);
      expect(d.algorithms).toEqual(e.algorithms);
      expect(d.modules).toHaveLength(e.modules);
      expect([...new Set(Object.values(d.ranks))].sort((a, b) => a - b)).toEqual(e.ranks);
      expect(d.coverage.doubleBlocks).toEqual(e.double);
      expect(d.coverage.singleBlocks).toEqual(e.single);
      expect([...d.coverage.embedders].sort()).toEqual([...(e.embedders ?? [])].sort());
      expect(d.coverage.finalLayer.sort()).toEqual((e.final ?? []).sort());
      expect(d.coverage.textEncoders).toEqual(e.te ?? {});
      expect(d.splitQkv).toBe(false);
      expect(d.evidence.length).toBeGreaterThan(0);
    });
  }

  it('places diffusers parts as row slices of the fused BFL weights, with widths from the file', () => {
    const d = detectFormat(keys(fixtureKeyShapes('flux_lora_diffusers_format')));
    const byModule = new Map(d.modules.map((m) => [m.module, m]));
    expect(byModule.get('transformer.transformer_blocks.0.attn.to_k')).toMatchObject({ target: 'double_blocks.0.img_attn.qkv.weight', rows: [3072, 3072] });
    expect(byModule.get('transformer.transformer_blocks.0.attn.add_v_proj')).toMatchObject({ target: 'double_blocks.0.txt_attn.qkv.weight', rows: [6144, 3072] });
    expect(byModule.get('transformer.single_transformer_blocks.7.proj_mlp')).toMatchObject({ target: 'single_blocks.7.linear1.weight', rows: [9216, 12288] });
    expect(byModule.get('transformer.single_transformer_blocks.7.proj_out')).toMatchObject({ target: 'single_blocks.7.linear2.weight' });
    expect(byModule.get('transformer.single_transformer_blocks.7.proj_out')!.rows).toBeUndefined();
    expect(byModule.get('transformer.transformer_blocks.3.norm1_context.linear')!.target).toBe('double_blocks.3.txt_mod.lin.weight');
  });

  it('x-flux single-block qkv covers only the q, k, v rows of linear1; detection reports alphas when given', () => {
    const shapes: KeyShapes = {
      'single_blocks.2.processor.qkv_lora.down.weight': [8, 48],
      'single_blocks.2.processor.qkv_lora.up.weight': [144, 8],
      'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight': [4, 48],
      'lora_unet_double_blocks_0_img_attn_proj.lora_up.weight': [48, 4],
      'lora_unet_double_blocks_0_img_attn_proj.alpha': [],
    };
    const d = detectFormat(keys(shapes), {}, new Map([['lora_unet_double_blocks_0_img_attn_proj.alpha', 2]]));
    expect(d.modules.find((m) => m.module.startsWith('single'))).toMatchObject({ target: 'single_blocks.2.linear1.weight', rows: [0, 144], rank: 8 });
    expect(d.alphas).toEqual({ lora_unet_double_blocks_0_img_attn_proj: 2 });
    expect(d.notes.some((n) => n.startsWith('mixed layouts'))).toBe(true);
  });

  it('lists every key it cannot place, by name', () => {
    const shapes: KeyShapes = {
      ...fixtureKeyShapes('flux_lora_kohya_format'),
      'lora_unet_double_blocks_0_img_attn_qkvx.lora_down.weight': [16, 3072],
      'lora_unet_double_blocks_0_img_attn_qkvx.lora_up.weight': [9216, 16],
      'some.random.tensor': [3],
      'lora_unet_double_blocks_1_img_mod_lin.dora_scale_x': [1, 3072],
    };
    delete shapes['lora_unet_single_blocks_3_linear2.lora_up.weight'];
    const d = detectFormat(keys(shapes));
    expect(d.unknownKeys.sort()).toEqual([
      'lora_unet_double_blocks_0_img_attn_qkvx.lora_down.weight',
      'lora_unet_double_blocks_0_img_attn_qkvx.lora_up.weight',
      'lora_unet_double_blocks_1_img_mod_lin.dora_scale_x',
      'lora_unet_single_blocks_3_linear2.alpha',
      'lora_unet_single_blocks_3_linear2.lora_down.weight',
      'some.random.tensor',
    ]);
    expect(d.confidence).toBeLessThan(1);
    expect(formatDetection(d)).toContain('unplaced keys: 6');
  });

  it('handles metadata whose JSON values were already expanded (as the inspect summary passes it)', () => {
    const shapes = fixtureKeyShapes('flux_lora_kohya_format');
    const d = detectFormat(keys(shapes), { ss_network_args: { split_qkv: 'True' }, ss_network_dim: '16' });
    expect(d.format).toBe('kohya');
  });

  it('Flex (fewer double blocks) and Chroma (no modulation) key sets are FLUX', () => {
    const kohya = fixtureKeyShapes('flux_lora_kohya_format');
    const flexOrChroma = Object.fromEntries(
      Object.entries(kohya).filter(([k]) => !/mod_lin|modulation_lin/.test(k) && !/double_blocks_(8|9|1\d)_/.test(k)),
    );
    const d = detectFormat(keys(flexOrChroma));
    expect(d.architecture).toBe('flux');
    expect(d.coverage.doubleBlocks).toEqual(range(8));
    expect(d.unknownKeys).toEqual([]);
  });
});

describe('split_qkv', () => {
  /** kohya file whose fused modules have 3× / 4× the rank of the others (rank r = 4). */
  function refused(): KeyShapes {
    const s: KeyShapes = {};
    const mod = (name: string, out: number, inp: number, r: number) => {
      s[`lora_unet_${name}.lora_down.weight`] = [r, inp];
      s[`lora_unet_${name}.lora_up.weight`] = [out, r];
      s[`lora_unet_${name}.alpha`] = [];
    };
    mod('double_blocks_0_img_attn_qkv', 144, 48, 12);
    mod('double_blocks_0_img_attn_proj', 48, 48, 4);
    mod('single_blocks_0_linear1', 336, 48, 16);
    mod('single_blocks_0_linear2', 48, 240, 4);
    return s;
  }
  const alphas = (fused: number, other: number) =>
    new Map(Object.keys(refused()).filter((k) => k.endsWith('.alpha')).map((k) => [k, /qkv|linear1/.test(k) ? fused : other]));

  it('is detected from ss_network_args and said in the human output', () => {
    const d = detectFormat(keys(refused()), { ss_network_args: JSON.stringify({ split_qkv: 'True', train_t5xxl: 'False' }) });
    expect(d.splitQkv).toBe(true);
    expect(formatDetection(d)).toContain('split_qkv');
    expect(d.notes.join(' ')).toMatch(/1\/3.*1\/4/);
  });

  it('is detected from an alpha that was not rescaled, and not from one that was', () => {
    expect(detectFormat(keys(refused()), {}, alphas(4, 4)).splitQkv).toBe(true);
    const rescaled = detectFormat(keys(refused()), {}, alphas(12, 4));
    expect(rescaled.splitQkv).toBe(false);
    expect(rescaled.evidence.join(' ')).toContain('rescaled alpha');
    expect(detectFormat(keys(refused())).splitQkv).toBe(false);
  });
});

describe('other architectures are recognised, and FLUX operations refuse them', () => {
  /** LoRA keys with the module's real [out, in] (conv 1×1 when `conv`), rank 4. */
  const lora = (prefix: string, mods: [name: string, out: number, inp: number, conv?: boolean][]): KeyShapes =>
    Object.fromEntries(
      mods.flatMap(([n, out, inp, conv]) => [
        [`${prefix}${n}.lora_down.weight`, conv ? [4, inp, 1, 1] : [4, inp]],
        [`${prefix}${n}.lora_up.weight`, conv ? [out, 4, 1, 1] : [out, 4]],
        [`${prefix}${n}.alpha`, []],
      ]),
    );

  const CASES: [string, KeyShapes, string][] = [
    [
      'kohya SDXL (sgm names + CLIP-G)',
      {
        ...lora('lora_unet_', [['input_blocks_4_1_transformer_blocks_1_attn1_to_q', 640, 640], ['middle_block_1_transformer_blocks_9_ff_net_2', 1280, 5120]]),
        ...lora('lora_te2_', [['text_model_encoder_layers_0_self_attn_q_proj', 1280, 1280]]),
      },
      'sdxl',
    ],
    ['diffusers SDXL', lora('unet.', [['down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q', 640, 640], ['down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k', 640, 2048]]), 'sdxl'],
    [
      'kohya SD1.5',
      {
        ...lora('lora_unet_', [['down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k', 320, 768], ['up_blocks_3_attentions_2_proj_out', 320, 320, true]]),
        ...lora('lora_te_', [['text_model_encoder_layers_11_mlp_fc1', 3072, 768]]),
      },
      'sd1',
    ],
    [
      'kohya SD2 (OpenCLIP-H text encoder depth)',
      {
        ...lora('lora_unet_', [['down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k', 320, 1024]]),
        ...lora('lora_te_', [['text_model_encoder_layers_22_mlp_fc1', 4096, 1024]]),
      },
      'sd2',
    ],
    ['kohya SD3', lora('lora_unet_', [['joint_blocks_0_x_block_attn_qkv', 4608, 1536], ['joint_blocks_0_context_block_mlp_fc1', 6144, 1536]]), 'sd3'],
    ['diffusers SD3 (split attention, 24 blocks, no single blocks)', lora('transformer.', [['transformer_blocks.0.attn.to_q', 1536, 1536], ['transformer_blocks.23.attn.add_k_proj', 1536, 1536]]), 'sd3'],
  ];
  for (const [what, shapes, arch] of CASES) {
    it(`${what} → ${arch}, which FLUX operations refuse`, () => {
      const d = detectFormat(keys(shapes));
      expect(d.architecture).toBe(arch);
      expect(d.unknownKeys).toEqual([]);
      expect(() => assertFlux({ architecture: d.architecture, format: d.format, path: 'x.safetensors' }, 'merging')).toThrow(
        new RegExp(`x\\.safetensors: merging works on FLUX\\.1 LoRAs only; this is a ${d.format} LoRA for ${arch.toUpperCase()}`),
      );
    });
  }

  it('assertFlux throws a LoraFormatError with code NOT_FLUX and passes FLUX sets', () => {
    expect(() => assertFlux({ architecture: 'flux', format: 'kohya' }, 'x')).not.toThrow();
    try {
      assertFlux({ architecture: 'unknown', format: 'kohya' }, 'converting');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(LoraFormatError);
      expect((e as LoraFormatError).code).toBe('NOT_FLUX');
      expect((e as Error).message).toContain('an unrecognised model');
    }
  });

  it('metadata decides only when the keys do not', () => {
    const clipOnly = lora('lora_te1_', [['text_model_encoder_layers_0_mlp_fc1', 3072, 768]]);
    expect(detectFormat(keys(clipOnly)).architecture).toBe('unknown');
    expect(detectFormat(keys(clipOnly), { ss_base_model_version: 'flux1' }).architecture).toBe('flux');
    expect(detectFormat(keys(fixtureKeyShapes('flux_lora_kohya_format')), { ss_base_model_version: 'sdxl_base_v1-0' }).architecture).toBe('flux');
  });
});
