/**
 * Qwen-Image (and Qwen-Image-Edit, the same transformer) end to end on shrunk-width fixtures with
 * the real key names and block count (60 blocks, 14 LoRA-able linears each, plus the embedders and
 * the final layer): every trainer layout of docs/model-families.md §2.5 read with no unknown key
 * and ΔW equal to a float64 reference computed here from the stored factors; the constructed key
 * lists detected as Qwen-Image; conversion to every writable layout and back; merge, apply into a
 * Qwen-Image base, extract, resize, block weights and filters by value; a Qwen-Image LoRA on a
 * FLUX base refused naming both; FLUX.1 / SD3 files that share its attention names left alone.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectFormat } from '../src/formats/detect.ts';
import { readLora } from '../src/formats/read.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { keyedRandom } from '../src/samples/lora-fixtures.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { blockIndex, describeTableFamilyOperations } from './helpers/table-family-ops.ts';
import { lohaModule } from './helpers/lycoris.ts';
import { RANK, deltaError, expectedDeltas, f32, factorModules, itReadsEveryLayout, layoutWriter, underscored, writeLayout, type Layout, type ModuleSpec } from './helpers/table-family.ts';
import { readKeyList } from './helpers/key-lists.ts';

const tmp = useTempDir('loraflow-qwen-image-');

// shrunk widths (all distinct): h hidden, f ffn, ctx Qwen2.5-VL, fq timestep frequencies, hd head, in latent×patch², oc out×patch²
const W = { h: 32, f: 72, ctx: 40, fq: 16, hd: 8, in: 24, oc: 20 } as const;
const BLOCKS = 60;

/**
 * Qwen-Image linears as docs/model-families.md §2.2 / §2.5 state them ([out, in]); the original (Qwen
 * release / ComfyUI) name is the diffusers name. Written here, not taken from the code under test.
 */
const BLOCK_MODULES: [string, number, number][] = [
  ['attn.to_q', W.h, W.h],
  ['attn.to_k', W.h, W.h],
  ['attn.to_v', W.h, W.h],
  ['attn.add_q_proj', W.h, W.h],
  ['attn.add_k_proj', W.h, W.h],
  ['attn.add_v_proj', W.h, W.h],
  ['attn.to_out.0', W.h, W.h],
  ['attn.to_add_out', W.h, W.h],
  ['img_mlp.net.0.proj', W.f, W.h],
  ['img_mlp.net.2', W.h, W.f],
  ['txt_mlp.net.0.proj', W.f, W.h],
  ['txt_mlp.net.2', W.h, W.f],
  ['img_mod.1', 6 * W.h, W.h],
  ['txt_mod.1', 6 * W.h, W.h],
];
const OUTER_MODULES: [string, number, number][] = [
  ['img_in', W.h, W.in],
  ['txt_in', W.h, W.ctx],
  ['time_text_embed.timestep_embedder.linear_1', W.h, W.fq],
  ['time_text_embed.timestep_embedder.linear_2', W.h, W.h],
  ['norm_out.linear', 2 * W.h, W.h],
  ['proj_out', W.oc, W.h],
];
const IN_MODULES = ['img_in', 'txt_in', 'time_text_embed.timestep_embedder.linear_1', 'time_text_embed.timestep_embedder.linear_2'];
const OUT_MODULES = ['norm_out.linear', 'proj_out'];

const spec = (m: readonly [string, number, number]): ModuleSpec => [m[0], m[0], m[1], m[2]];
const modules = (seed: number, blocks = BLOCKS) =>
  factorModules({ blockModules: BLOCK_MODULES.map(spec), outerModules: OUTER_MODULES.map(spec), blocks: BLOCKS, blockPrefix: (i) => `transformer_blocks.${i}.` }, seed, blocks);
const expected = expectedDeltas;

const u = underscored;
const ab = (r: 'down' | 'up' | 'alpha') => (r === 'down' ? 'A' : 'B');

/** Every layout of docs/model-families.md §2.5 (plus ComfyUI's bare-name alias), as key names of one module. */
const LAYOUTS: Layout[] = [
  { name: 'Q1 musubi-tuner (kohya lora_unet_)', alpha: true, key: (m, r) => `lora_unet_${u(m.name)}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
  { name: 'Q2 diffusion-pipe / ai-toolkit (diffusion_model. lora_A)', alpha: false, key: (m, r) => `diffusion_model.${m.name}.lora_${ab(r)}.weight` },
  { name: 'ComfyUI-saved (diffusion_model. lora_down + alpha)', alpha: true, key: (m, r) => `diffusion_model.${m.name}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
  { name: 'Q3 diffusers / PEFT (transformer.)', alpha: false, key: (m, r) => `transformer.${m.name}.lora_${ab(r)}.weight` },
  { name: 'PEFT raw save (base_model.model. + adapter name)', alpha: false, key: (m, r) => `base_model.model.${m.name}.lora_${ab(r)}.default.weight` },
  { name: 'diffusers transformer. + PEFT .default infix', alpha: false, key: (m, r) => `transformer.${m.name}.lora_${ab(r)}.default.weight` },
  { name: 'ComfyUI bare names', alpha: false, key: (m, r) => `${m.name}.lora_${ab(r)}.weight` },
  { name: 'Q4 LyCORIS prefix (lycoris_, LoRA factors)', alpha: true, key: (m, r) => `lycoris_${u(m.name)}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
];

const QWEN_META = { ss_base_model_version: 'qwen_image' };

const MODS = modules(1);
const WANT = expected(MODS, 1);

describe('Qwen-Image LoRAs: every layout read, by value', () => {
  itReadsEveryLayout({
    id: 'qwen-image',
    layouts: LAYOUTS,
    metadata: [QWEN_META, {}],
    file: (name) => tmp.path(name),
    write: async (path, layout, metadata) => {
      await writeLayout(path, layout, MODS, { metadata });
      return { count: MODS.length, want: WANT };
    },
  });

  it('alpha scales: a musubi file at alpha 2 (rank 4) reads at scale ½', async () => {
    const path = join(tmp.dir, 'alpha.safetensors');
    await writeLayout(path, LAYOUTS[0]!, MODS, { alpha: 2, metadata: QWEN_META });
    const set = await readLora(path);
    expect(await deltaError(set, WANT, 0.5)).toBeLessThan(1e-6);
    await set.close();
  });

  it('LyCORIS LoHa under lycoris_ names: ΔW = (w1a·w1b) ⊙ (w2a·w2b) · alpha/r', async () => {
    const path = join(tmp.dir, 'loha.safetensors');
    const picked = MODS.filter((m) => /^transformer_blocks\.(?:0|59)\.(?:attn\.to_add_out|img_mod\.1|txt_mlp\.net\.2)$/.test(m.name) || m.name === 'proj_out');
    expect(picked).toHaveLength(7);
    const entries: TensorEntry[] = [];
    const want = new Map<string, Float64Array>();
    for (const m of picked) {
      const loha = lohaModule(`lycoris_${u(m.name)}`, keyedRandom(`loha ${m.name}`, 5), { rank: RANK, out: m.out, inp: m.in, alpha: 2 });
      entries.push(...loha.entries);
      want.set(`${m.name}.weight`, loha.delta);
    }
    await writeSafetensors(path, entries, { metadata: { ss_base_model_version: 'qwen_image' } });
    const set = await readLora(path);
    expect(set.architecture).toBe('qwen-image');
    expect(set.unknownKeys).toEqual([]);
    expect(await deltaError(set, want)).toBeLessThan(1e-6);
    await set.close();
  });

  it('ComfyUI-extracted files: LoRA + diff_b biases + RMSNorm diffs (attn norms, txt_norm) all placed', async () => {
    const path = join(tmp.dir, 'extracted.safetensors');
    // (a file of norm diffs alone is ambiguous: FLUX.1's detection counts norm_added_q/k as FLUX-only; real extractions carry every linear)
    const lora = MODS.filter((x) => x.name === 'transformer_blocks.3.attn.add_k_proj' || x.name === 'transformer_blocks.3.img_mod.1');
    const bias = Float32Array.from({ length: W.h }, (_, i) => i / 10);
    const entries: TensorEntry[] = [
      ...lora.flatMap((m) => [f32(`diffusion_model.${m.name}.lora_down.weight`, [RANK, m.in], m.down), f32(`diffusion_model.${m.name}.lora_up.weight`, [m.out, RANK], m.up)]),
      f32('diffusion_model.transformer_blocks.3.attn.add_k_proj.diff_b', [W.h], bias),
      f32('diffusion_model.transformer_blocks.3.attn.norm_added_k.diff', [W.hd], bias.slice(0, W.hd)),
      f32('diffusion_model.transformer_blocks.3.attn.norm_q.diff', [W.hd], bias.slice(0, W.hd)),
      f32('diffusion_model.txt_norm.diff', [W.ctx], new Float32Array(W.ctx).fill(0.5)),
    ];
    await writeSafetensors(path, entries);
    const set = await readLora(path);
    expect(set.architecture).toBe('qwen-image');
    expect(set.unknownKeys).toEqual([]);
    expect(set.patches.map((p) => `${p.adapter.kind} ${p.target}`).sort()).toEqual([
      'full transformer_blocks.3.attn.add_k_proj.bias', 'full transformer_blocks.3.attn.norm_added_k.weight', 'full transformer_blocks.3.attn.norm_q.weight', 'full txt_norm.weight', 'lora transformer_blocks.3.attn.add_k_proj.weight', 'lora transformer_blocks.3.img_mod.1.weight',
    ]);
    await set.close();
  });

  it('constructed full-width key lists (test/fixtures/families/qwen-image): family qwen-image, every module placed', () => {
    const dir = join(import.meta.dirname, 'fixtures', 'families', 'qwen-image');
    // per doc §7: musubi and diffusion-pipe 14 modules per block, diffusers-peft 12 (no img_mod / txt_mod)
    const perBlock: Record<string, number> = { 'musubi.txt': 14, 'diffusion-pipe.txt': 14, 'diffusers-peft.txt': 12 };
    const files = readdirSync(dir).sort();
    expect(files).toEqual(Object.keys(perBlock).sort());
    for (const file of files) {
      const tensors = readKeyList(join(dir, file));
      for (const metadata of [undefined, { ss_base_model_version: 'qwen_image' }]) {
        const d = detectFormat(tensors, metadata);
        expect(d.architecture, file).toBe('qwen-image');
        expect(d.unknownKeys, file).toEqual([]);
        expect(d.modules.length, file).toBe(BLOCKS * perBlock[file]!);
      }
    }
  });

  it('attention-only Qwen-Image files (names shared with FLUX.1 / SD3 diffusers) are Qwen-Image by depth or metadata; FLUX.1 and SD3 stay theirs', async () => {
    const attn = MODS.filter((m) => /\.attn\.(?:to_q|to_k|to_v|to_out\.0)$/.test(m.name));
    const deep = join(tmp.dir, 'attn-only.safetensors');
    await writeLayout(deep, LAYOUTS[3]!, attn, { metadata: {} });
    const a = await readLora(deep);
    expect(a.architecture).toBe('qwen-image');
    expect(a.unknownKeys).toEqual([]);
    await a.close();

    // 10 blocks: too shallow to tell by depth; FLUX.1 without metadata, Qwen-Image with it
    const shallow = attn.filter((m) => /^transformer_blocks\.\d\./.test(m.name));
    const s = join(tmp.dir, 'attn-shallow.safetensors');
    await writeLayout(s, LAYOUTS[3]!, shallow, { metadata: {} });
    const noMeta = await readLora(s);
    expect(noMeta.architecture).toBe('flux');
    await noMeta.close();
    await writeLayout(s, LAYOUTS[3]!, shallow, { metadata: { 'modelspec.architecture': 'Qwen-Image-Edit/lora' } });
    const withMeta = await readLora(s);
    expect(withMeta.architecture).toBe('qwen-image');
    expect(withMeta.unknownKeys).toEqual([]);
    await withMeta.close();

    const tensor = (name: string, shape: number[]) => ({ name, shape });
    const fluxBfl = ['img_mlp.0', 'img_mlp.2', 'txt_mlp.0', 'img_mod.lin', 'txt_mod.lin', 'img_attn.qkv'].flatMap((n) => [tensor(`lora_unet_double_blocks_3_${u(n)}.lora_down.weight`, [4, 64]), tensor(`lora_unet_double_blocks_3_${u(n)}.lora_up.weight`, [64, 4])]);
    expect(detectFormat(fluxBfl).architecture).toBe('flux');
    const fluxDiffusers = ['transformer_blocks.0.attn.to_q', 'transformer_blocks.0.ff.net.0.proj', 'transformer_blocks.0.norm1.linear', 'single_transformer_blocks.37.proj_mlp', 'single_transformer_blocks.37.attn.to_q']
      .flatMap((n) => [tensor(`transformer.${n}.lora_A.weight`, [4, 64]), tensor(`transformer.${n}.lora_B.weight`, [64, 4])]);
    expect(detectFormat(fluxDiffusers).architecture).toBe('flux');
    const sd3 = ['transformer_blocks.0.attn.to_q', 'transformer_blocks.37.attn.add_k_proj'].flatMap((n) => [tensor(`transformer.${n}.lora_A.weight`, [4, 64]), tensor(`transformer.${n}.lora_B.weight`, [64, 4])]);
    expect(detectFormat(sd3).architecture).toBe('sd3');
  });
});

const qwenWriter = (layout: Layout) => layoutWriter(layout, modules, QWEN_META);

describeTableFamilyOperations({
  id: 'qwen-image',
  label: 'Qwen-Image',
  convert: {
    sources: [qwenWriter(LAYOUTS[0]!)],
    names: [
      { to: 'kohya', contains: ['lora_unet_transformer_blocks_7_img_mlp_net_0_proj.lora_down.weight', 'lora_unet_transformer_blocks_7_attn_to_out_0.lora_up.weight', 'lora_unet_time_text_embed_timestep_embedder_linear_1.alpha'] },
      { to: 'comfyui', some: /^diffusion_model\.transformer_blocks\.7\.img_mlp\.net\.0\.proj\./, all: /^diffusion_model\./ },
      { to: 'diffusers', contains: ['transformer.transformer_blocks.7.img_mlp.net.0.proj.lora_A.weight', 'transformer.norm_out.linear.lora_B.weight'], all: /^transformer\./ },
    ],
    kohyaMetadata: { source: qwenWriter(LAYOUTS[3]!), count: 14, want: { ss_network_module: 'networks.lora_qwen_image', 'modelspec.architecture': 'Qwen-Image/lora' } },
  },
  merge: { a: qwenWriter(LAYOUTS[0]!), b: qwenWriter(LAYOUTS[1]!), rank: 2 * RANK },
  resize: { source: qwenWriter(LAYOUTS[1]!) },
  blocks: {
    source: qwenWriter(LAYOUTS[1]!),
    groups: [{ prefix: 'transformer_blocks.', id: 'B', count: BLOCKS }],
    in: IN_MODULES,
    out: OUT_MODULES,
    weighted: [
      { spec: 'B00-B09=0,B10=0.5,B59=3,IN=0.25,OUT=2', weight: (b) => ({ IN: 0.25, OUT: 2, B10: 0.5, B59: 3 })[b] ?? (blockIndex(b) < 10 ? 0 : 1), dropped: 10 * BLOCK_MODULES.length },
      { spec: Array.from({ length: 62 }, () => 1), dropped: 0 },
      // a 62-value vector is IN, B00…B59, OUT in that order
      { spec: [0, ...Array.from({ length: 60 }, (_, i) => (i === 59 ? 0 : 1)), 0], dropped: BLOCK_MODULES.length + IN_MODULES.length + OUT_MODULES.length },
    ],
    refused: [
      ['D00=0', /unknown block id "D00"/],
      ['B00-B60=0', /past the last Qwen-Image block/],
      [Array.from({ length: 42 }, () => 1), /62 values/],
    ],
    filters: [['B00', 'in'], ['OUT', 'B59']],
  },
  base: {
    linears: MODS.map((m) => [m.name, m.out, m.in] as const),
    biases: true,
    others: [['txt_norm.weight', [W.ctx]], ...['norm_q', 'norm_k', 'norm_added_q', 'norm_added_k'].map((n) => [`transformer_blocks.0.attn.${n}.weight`, [W.hd]] as const)],
    prefixes: ['model.diffusion_model.', ''],
  },
  apply: { a: qwenWriter(LAYOUTS[0]!), b: qwenWriter(LAYOUTS[3]!) },
  extract: { deltas: WANT, targets: /^transformer_blocks\.(0|59)\.|^proj_out\.|^img_in\./, format: 'kohya', names: ['lora_unet_transformer_blocks_59_txt_mod_1.lora_down.weight'] },
  refusal: { source: qwenWriter(LAYOUTS[0]!), count: 14, error: /is a FLUX\.1 checkpoint.*LoRA 1 is a kohya LoRA for Qwen-Image/ },
});
