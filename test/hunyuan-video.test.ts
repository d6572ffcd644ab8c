/**
 * HunyuanVideo (v1, 13B) end to end on shrunk-width fixtures with the real key names and block
 * counts (20 double, 40 single, 2 token-refiner blocks): every trainer layout of
 * docs/model-families.md §6.3 read with no unknown key and ΔW equal to a float64 reference computed
 * here from a name table written here (Tencent's and ComfyUI's spellings landing on one weight,
 * diffusers' to_q / to_k / to_v / proj_mlp as row slices of the fused qkv and linear1,
 * norm_out.linear's halves swapped onto final_layer.adaLN_modulation.1); the constructed key lists
 * detected as HunyuanVideo; the FLUX.1 collision both ways (FLUX.1 files stay FLUX.1, ComfyUI-named
 * HunyuanVideo files are HunyuanVideo by depth or metadata); every operation through the shared
 * table-family suite; apply into Tencent-named and ComfyUI-saved bases and extraction from a
 * Tencent-named pair.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkpointArchitecture } from '../src/formats/checkpoint-family.ts';
import { detectFormat, formatDetection } from '../src/formats/detect.ts';
import { readLora } from '../src/formats/read.ts';
import { writeLora } from '../src/formats/write/index.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { extractLora } from '../src/lora/extract.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { keyedRandom, writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { basePlusDeltaErrors } from './helpers/base-plus-delta.ts';
import { blockIndex, describeTableFamilyOperations, writeTableBase, type BaseSpec } from './helpers/table-family-ops.ts';
import { lohaModule, lokrModule } from './helpers/lycoris.ts';
import { RANK, deltaError, f32, itReadsEveryRowLayout, rowDeltas, rowUnits, rowWriter, underscored as us, writeRowLayout, type RowLayout, type RowUnit, type TableRow } from './helpers/table-family.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { expectFluxFilesStayFlux } from './helpers/key-lists.ts';

const tmp = useTempDir('loraflow-hunyuan-video-');

// shrunk widths (all distinct): h hidden, mlp = 4h (HunyuanVideo's ratio, which its shapes share with FLUX.1), in latent
// channels, time timestep embedding, vec CLIP pooled, txt LLM width, head attention head, out final-layer rows
const H = 16;
const W = { h: H, mlp: 4 * H, in: 6, time: 12, vec: 20, txt: 36, head: 4, out: 24 } as const;
const DOUBLE_BLOCKS = 20;
const SINGLE_BLOCKS = 40;
const REFINER_BLOCKS = 2;

/**
 * HunyuanVideo linears as docs/model-families.md §6.2 states them: ComfyUI name, Tencent name
 * (musubi-tuner, diffusion-pipe), diffusers name (an array = the diffusers parts of a fused weight,
 * h rows each, the last one taking the rest), [out, in], and whether the (shift, scale) halves
 * swap. Written here, not taken from the code under test.
 */
type Row = [comfy: string, tencent: string, diffusers: string | string[], out: number, inp: number, swap?: boolean];
const DOUBLE: Row[] = [
  ['img_mod.lin', 'img_mod.linear', 'norm1.linear', 6 * H, H],
  ['img_attn.qkv', 'img_attn_qkv', ['attn.to_q', 'attn.to_k', 'attn.to_v'], 3 * H, H],
  ['img_attn.proj', 'img_attn_proj', 'attn.to_out.0', H, H],
  ['img_mlp.0', 'img_mlp.fc1', 'ff.net.0.proj', W.mlp, H],
  ['img_mlp.2', 'img_mlp.fc2', 'ff.net.2', H, W.mlp],
  ['txt_mod.lin', 'txt_mod.linear', 'norm1_context.linear', 6 * H, H],
  ['txt_attn.qkv', 'txt_attn_qkv', ['attn.add_q_proj', 'attn.add_k_proj', 'attn.add_v_proj'], 3 * H, H],
  ['txt_attn.proj', 'txt_attn_proj', 'attn.to_add_out', H, H],
  ['txt_mlp.0', 'txt_mlp.fc1', 'ff_context.net.0.proj', W.mlp, H],
  ['txt_mlp.2', 'txt_mlp.fc2', 'ff_context.net.2', H, W.mlp],
];
const SINGLE: Row[] = [
  ['linear1', 'linear1', ['attn.to_q', 'attn.to_k', 'attn.to_v', 'proj_mlp'], 3 * H + W.mlp, H],
  ['linear2', 'linear2', 'proj_out', H, H + W.mlp],
  ['modulation.lin', 'modulation.linear', 'norm.linear', 3 * H, H],
];
const REFINER: Row[] = [
  ['self_attn.qkv', 'self_attn_qkv', ['attn.to_q', 'attn.to_k', 'attn.to_v'], 3 * H, H],
  ['self_attn.proj', 'self_attn_proj', 'attn.to_out.0', H, H],
  ['mlp.0', 'mlp.fc1', 'ff.net.0.proj', W.mlp, H],
  ['mlp.2', 'mlp.fc2', 'ff.net.2', H, W.mlp],
  ['adaLN_modulation.1', 'adaLN_modulation.1', 'norm_out.linear', 2 * H, H],
];
const EMBEDDERS: Row[] = [
  ['txt_in.input_embedder', 'txt_in.input_embedder', 'context_embedder.proj_in', H, W.txt],
  ['txt_in.t_embedder.in_layer', 'txt_in.t_embedder.mlp.0', 'context_embedder.time_text_embed.timestep_embedder.linear_1', H, W.time],
  ['txt_in.t_embedder.out_layer', 'txt_in.t_embedder.mlp.2', 'context_embedder.time_text_embed.timestep_embedder.linear_2', H, H],
  ['txt_in.c_embedder.in_layer', 'txt_in.c_embedder.linear_1', 'context_embedder.time_text_embed.text_embedder.linear_1', H, W.txt],
  ['txt_in.c_embedder.out_layer', 'txt_in.c_embedder.linear_2', 'context_embedder.time_text_embed.text_embedder.linear_2', H, H],
  ['time_in.in_layer', 'time_in.mlp.0', 'time_text_embed.timestep_embedder.linear_1', H, W.time],
  ['time_in.out_layer', 'time_in.mlp.2', 'time_text_embed.timestep_embedder.linear_2', H, H],
  ['vector_in.in_layer', 'vector_in.in_layer', 'time_text_embed.text_embedder.linear_1', H, W.vec],
  ['vector_in.out_layer', 'vector_in.out_layer', 'time_text_embed.text_embedder.linear_2', H, H],
  ['guidance_in.in_layer', 'guidance_in.mlp.0', 'time_text_embed.guidance_embedder.linear_1', H, W.time],
  ['guidance_in.out_layer', 'guidance_in.mlp.2', 'time_text_embed.guidance_embedder.linear_2', H, H],
];
const FINAL: Row[] = [
  ['final_layer.linear', 'final_layer.linear', 'proj_out', W.out, H],
  ['final_layer.adaLN_modulation.1', 'final_layer.adaLN_modulation.1', 'norm_out.linear', 2 * H, H, true],
];

/** Every linear of the model: each block kind's rows under its three prefixes, then the embedders and the final layer. */
function rows(blocks = { double: DOUBLE_BLOCKS, single: SINGLE_BLOCKS }): Row[] {
  const out: Row[] = [];
  const at = (r: Row, comfy: string, dif: string): Row => [`${comfy}.${r[0]}`, `${comfy}.${r[1]}`, typeof r[2] === 'string' ? `${dif}.${r[2]}` : r[2].map((p) => `${dif}.${p}`), r[3], r[4], r[5]];
  for (let i = 0; i < blocks.double; i++) for (const r of DOUBLE) out.push(at(r, `double_blocks.${i}`, `transformer_blocks.${i}`));
  for (let i = 0; i < blocks.single; i++) for (const r of SINGLE) out.push(at(r, `single_blocks.${i}`, `single_transformer_blocks.${i}`));
  for (let i = 0; i < REFINER_BLOCKS; i++) for (const r of REFINER) out.push(at(r, `txt_in.individual_token_refiner.blocks.${i}`, `context_embedder.token_refiner.refiner_blocks.${i}`));
  return [...out, ...EMBEDDERS, ...FINAL];
}
const ROWS = rows();
const IN_NAMES = ROWS.filter((r) => /^(?:txt_in|time_in|vector_in|guidance_in)\./.test(r[0])).map((r) => r[0]);
const OUT_NAMES = FINAL.map((r) => r[0]);

type Naming = 'comfy' | 'tencent' | 'diffusers';
/** The table in ComfyUI's names (the canonical ones) and diffusers', and each ComfyUI name's Tencent spelling. */
const TABLE: TableRow[] = ROWS.map(([comfy, , dif, out, inp, swap]) => [comfy, dif, out, inp, swap]);
const TENCENT_OF = new Map(ROWS.map((r) => [r[0], r[1]]));

/**
 * The LoRA modules of a file in one naming, landing on the canonical (ComfyUI) weights; factors keyed
 * by the canonical target and part, so the three namings of one model carry the same ΔW.
 */
function units(naming: Naming, seed: number): RowUnit[] {
  const all = rowUnits(TABLE, naming === 'diffusers' ? 'diffusers' : 'original', seed, H, 'target');
  return naming === 'tencent' ? all.map((u) => ({ ...u, name: TENCENT_OF.get(u.target)! })) : all;
}
const expected = rowDeltas;

type Layout = RowLayout<Naming>;
const ab = (r: 'down' | 'up' | 'alpha') => (r === 'down' ? 'A' : 'B');
const kohyaKey = (prefix: string) => (n: string, r: 'down' | 'up' | 'alpha') => `${prefix}${us(n)}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}`;

/** The layouts of docs/model-families.md §6.3, and ComfyUI's own spellings of the same modules. */
const LAYOUTS: Layout[] = [
  { name: 'H1 musubi-tuner (lora_unet_ + Tencent names)', naming: 'tencent', alpha: true, key: kohyaKey('lora_unet_') },
  { name: 'H2 diffusion-pipe (transformer. + Tencent names, lora_A)', naming: 'tencent', alpha: false, key: (n, r) => `transformer.${n}.lora_${ab(r)}.weight` },
  { name: "H2' old diffusion-pipe (diffusion_model. + Tencent names)", naming: 'tencent', alpha: false, key: (n, r) => `diffusion_model.${n}.lora_${ab(r)}.weight` },
  { name: 'H3 diffusers / PEFT (transformer. + diffusers names)', naming: 'diffusers', alpha: false, key: (n, r) => `transformer.${n}.lora_${ab(r)}.weight` },
  { name: 'ComfyUI names (diffusion_model. lora_down + alpha)', naming: 'comfy', alpha: true, key: (n, r) => `diffusion_model.${n}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
  { name: 'ComfyUI names in kohya spelling (lora_unet_)', naming: 'comfy', alpha: true, key: kohyaKey('lora_unet_') },
  { name: 'Tencent names without prefix (lora_A)', naming: 'tencent', alpha: false, key: (n, r) => `${n}.lora_${ab(r)}.weight` },
];
const [MUSUBI, DIFFUSION_PIPE, , DIFFUSERS, COMFY] = LAYOUTS as [Layout, Layout, Layout, Layout, Layout];
const HV_META = { ss_base_model_version: 'hunyuan_video' };

const writeLayout = (path: string, layout: Layout, mods: readonly RowUnit[], alpha = RANK, metadata: Record<string, string> = HV_META) => writeRowLayout(path, layout, mods, { alpha, metadata });

const UNITS: Record<Naming, RowUnit[]> = { comfy: units('comfy', 1), tencent: units('tencent', 1), diffusers: units('diffusers', 1) };
const WANT: Record<Naming, Map<string, Float64Array>> = { comfy: expected(UNITS.comfy), tencent: expected(UNITS.tencent), diffusers: expected(UNITS.diffusers) };

const tensorsOf = (file: string) =>
  readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).map((l) => {
    const [name, shape] = l.trim().split(/\s+/) as [string, string];
    return { name, shape: JSON.parse(shape) as number[] };
  });

describe('HunyuanVideo LoRAs: every layout read, by value', () => {
  itReadsEveryRowLayout({ id: 'hunyuan-video', layouts: LAYOUTS, metadata: HV_META, file: (name) => tmp.path(name), units: (layout) => UNITS[layout.naming], want: (layout) => WANT[layout.naming] });

  it("the three namings of one module land on one canonical weight; the key prefix, not Tencent's spelling, says the layout", async () => {
    const cases: [Layout, string, string][] = [
      [MUSUBI, 'double_blocks.3.img_mlp.fc1', 'kohya'],
      [DIFFUSION_PIPE, 'double_blocks.3.img_mlp.fc1', 'diffusers'],
      [LAYOUTS[2]!, 'double_blocks.3.img_mlp.fc1', 'comfyui'],
      [COMFY, 'double_blocks.3.img_mlp.0', 'comfyui'],
      [DIFFUSERS, 'transformer_blocks.3.ff.net.0.proj', 'diffusers'],
    ];
    for (const [i, [layout, name, format]] of cases.entries()) {
      const path = join(tmp.dir, `one-${i}.safetensors`);
      const u = UNITS[layout.naming].filter((x) => x.target === 'double_blocks.3.img_mlp.0' || /^double_blocks\.0\./.test(x.target));
      await writeLayout(path, layout, u);
      const set = await readLora(path);
      expect(set.architecture, layout.name).toBe('hunyuan-video');
      expect(set.format, layout.name).toBe(format);
      const p = set.patches.find((x) => x.target === 'double_blocks.3.img_mlp.0.weight')!;
      expect(p.source.module, layout.name).toBe(layout.key(name, 'down').replace(/\.lora_(?:down|A)\.weight$/, ''));
      await set.close();
    }
  });

  it('diffusers parts land as rows of the fused weights: to_q / to_k / to_v at 0, h, 2h of qkv and linear1, proj_mlp the rest of linear1; norm_out.linear swaps its halves, the refiner\'s does not', async () => {
    const path = join(tmp.dir, 'parts.safetensors');
    await writeLayout(path, DIFFUSERS, UNITS.diffusers, RANK, {});
    const set = await readLora(path);
    const by = (module: string) => set.patches.find((p) => p.source.module === `transformer.${module}`)!;
    expect(by('transformer_blocks.19.attn.to_q')).toMatchObject({ target: 'double_blocks.19.img_attn.qkv.weight', rows: [0, H] });
    expect(by('transformer_blocks.19.attn.add_v_proj')).toMatchObject({ target: 'double_blocks.19.txt_attn.qkv.weight', rows: [2 * H, H] });
    expect(by('single_transformer_blocks.39.attn.to_k')).toMatchObject({ target: 'single_blocks.39.linear1.weight', rows: [H, H] });
    expect(by('single_transformer_blocks.39.proj_mlp')).toMatchObject({ target: 'single_blocks.39.linear1.weight', rows: [3 * H, W.mlp] });
    expect(by('single_transformer_blocks.39.proj_out').target).toBe('single_blocks.39.linear2.weight');
    expect(by('context_embedder.token_refiner.refiner_blocks.1.attn.to_v')).toMatchObject({ target: 'txt_in.individual_token_refiner.blocks.1.self_attn.qkv.weight', rows: [2 * H, H] });
    expect(by('proj_out').target).toBe('final_layer.linear.weight');
    expect(by('norm_out.linear').target).toBe('final_layer.adaLN_modulation.1.weight');
    // the swap is what the reference applies (WANT.diffusers swaps only FINAL's adaLN), checked by value above; here the refiner's adaLN keeps its rows
    const refinerAda = by('context_embedder.token_refiner.refiner_blocks.0.norm_out.linear');
    expect(refinerAda.target).toBe('txt_in.individual_token_refiner.blocks.0.adaLN_modulation.1.weight');
    const d = (await referenceDeltas({ patches: [refinerAda] })).get('transformer:txt_in.individual_token_refiner.blocks.0.adaLN_modulation.1.weight')!.data;
    expect([...d]).toEqual([...WANT.diffusers.get('txt_in.individual_token_refiner.blocks.0.adaLN_modulation.1.weight')!]);
    await set.close();
  });

  it('alpha scales: a musubi file at alpha 2 (rank 4) reads at scale ½', async () => {
    const path = join(tmp.dir, 'alpha.safetensors');
    await writeLayout(path, MUSUBI, UNITS.tencent, 2);
    const set = await readLora(path);
    expect(await deltaError(set, WANT.tencent, 0.5)).toBeLessThan(1e-6);
    await set.close();
  });

  it('LyCORIS: LoKr under musubi names and LoHa under lycoris_ + ComfyUI names, ΔW = w1 ⊗ (w2a·w2b) · α/r and (w1a·w1b) ⊙ (w2a·w2b) · α/r', async () => {
    const picked = ROWS.filter((r) => /^(?:double_blocks\.(?:0|19)\.(?:img_attn\.qkv|img_mlp\.0|txt_mod\.lin)|single_blocks\.39\.(?:linear1|modulation\.lin))$/.test(r[0]));
    expect(picked).toHaveLength(8);
    const entries: TensorEntry[] = [];
    const want = new Map<string, Float64Array>();
    const F = 4;
    const R = 2;
    for (const [comfy, tencent, , out, inp] of picked) {
      const rnd = keyedRandom(`lycoris ${comfy}`, 7);
      const m = comfy.startsWith('double_blocks.0.') || comfy.startsWith('single_blocks.')
        ? lokrModule(`lora_unet_${us(tencent)}`, rnd, { f: F, r: R, out, inp })
        : lohaModule(`lycoris_${us(comfy)}`, rnd, { rank: RANK, out, inp, alpha: 2 });
      entries.push(...m.entries);
      want.set(`${comfy}.weight`, m.delta);
    }
    const path = join(tmp.dir, 'lycoris.safetensors');
    await writeSafetensors(path, entries);
    const set = await readLora(path);
    expect(set.architecture).toBe('hunyuan-video');
    expect(set.format).toBe('lycoris');
    expect(set.unknownKeys).toEqual([]);
    expect(await deltaError(set, want)).toBeLessThan(1e-6);
    await set.close();
  });

  it('ComfyUI-extracted files: LoRA + diff_b biases + full diffs (RMSNorm scales in both spellings, refiner LayerNorms, the Conv3d patch embedder) all placed, by value', async () => {
    const lora = UNITS.comfy.filter((u) => u.target === 'double_blocks.3.img_attn.qkv' || u.target === 'single_blocks.39.linear1');
    const v = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => (i + k) / 10);
    const diffs: [string, number[], string][] = [
      ['double_blocks.3.img_attn.qkv.diff_b', [3 * H], 'double_blocks.3.img_attn.qkv.bias'],
      ['double_blocks.3.img_attn.norm.query_norm.scale.diff', [W.head], 'double_blocks.3.img_attn.norm.query_norm.scale'],
      // ComfyUI's current model names the RMSNorm weight `.weight` (a key without `.scale`), Tencent's `img_attn_k_norm`
      ['double_blocks.3.txt_attn.norm.key_norm.diff', [W.head], 'double_blocks.3.txt_attn.norm.key_norm.scale'],
      ['double_blocks.4.img_attn_k_norm.diff', [W.head], 'double_blocks.4.img_attn.norm.key_norm.scale'],
      ['single_blocks.39.q_norm.diff', [W.head], 'single_blocks.39.norm.query_norm.scale'],
      ['txt_in.individual_token_refiner.blocks.1.norm1.diff', [H], 'txt_in.individual_token_refiner.blocks.1.norm1.weight'],
      ['txt_in.individual_token_refiner.blocks.1.norm1.diff_b', [H], 'txt_in.individual_token_refiner.blocks.1.norm1.bias'],
      ['img_in.proj.diff', [H, W.in, 1, 2, 2], 'img_in.proj.weight'],
      ['img_in.proj.diff_b', [H], 'img_in.proj.bias'],
    ];
    const entries: TensorEntry[] = [
      ...lora.flatMap((m) => [f32(`diffusion_model.${m.name}.lora_down.weight`, [RANK, m.in], m.down), f32(`diffusion_model.${m.name}.lora_up.weight`, [m.out, RANK], m.up)]),
      ...diffs.map(([k, shape], i) => f32(`diffusion_model.${k}`, shape, v(shape.reduce((a, b) => a * b, 1), i))),
    ];
    const path = join(tmp.dir, 'extracted.safetensors');
    await writeSafetensors(path, entries);
    const set = await readLora(path);
    expect(set.architecture).toBe('hunyuan-video');
    expect(set.unknownKeys).toEqual([]);
    const got = await referenceDeltas(set);
    expect([...got.keys()].sort()).toEqual([...diffs.map((d) => `transformer:${d[2]}`), 'transformer:double_blocks.3.img_attn.qkv.weight', 'transformer:single_blocks.39.linear1.weight'].sort());
    diffs.forEach(([k, shape, target], i) => expect([...got.get(`transformer:${target}`)!.data], k).toEqual([...v(shape.reduce((a, b) => a * b, 1), i)].map((x) => Math.fround(x))));
    expect(await deltaError({ patches: set.patches.filter((p) => p.adapter.kind === 'lora') }, new Map([...WANT.comfy].filter(([k]) => k === 'double_blocks.3.img_attn.qkv.weight' || k === 'single_blocks.39.linear1.weight')))).toBeLessThan(1e-6);
    await set.close();
  });

  it('constructed full-width key lists (test/fixtures/families/hunyuan-video): family hunyuan-video, every module placed, with and without metadata', () => {
    const dir = join(import.meta.dirname, 'fixtures', 'families', 'hunyuan-video');
    // per doc §6.3: musubi 8 per double + 2 per single block (no modulation), diffusion-pipe every Linear (10 + 3),
    // diffusers 12 per double (q, k, v split twice) + 5 per single (q, k, v, proj_mlp, proj_out)
    const modules: Record<string, number> = { 'musubi.txt': 20 * 8 + 40 * 2, 'diffusion-pipe.txt': 20 * 10 + 40 * 3, 'diffusers-peft.txt': 20 * 12 + 40 * 5 };
    const formats: Record<string, string> = { 'musubi.txt': 'kohya', 'diffusion-pipe.txt': 'diffusers', 'diffusers-peft.txt': 'diffusers' };
    const files = readdirSync(dir).sort();
    expect(files).toEqual(Object.keys(modules).sort());
    for (const file of files) {
      const tensors = tensorsOf(join(dir, file));
      for (const metadata of [undefined, HV_META, { 'modelspec.architecture': 'hunyuan-video/lora' }]) {
        const d = detectFormat(tensors, metadata);
        expect(d.architecture, file).toBe('hunyuan-video');
        expect(d.format, file).toBe(formats[file]);
        expect(d.unknownKeys, file).toEqual([]);
        expect(d.modules.length, file).toBe(modules[file]);
        expect(d.modules.every((m) => m.target.startsWith('double_blocks.') || m.target.startsWith('single_blocks.')), file).toBe(true);
      }
      expect(formatDetection(detectFormat(tensors)), file).toMatch(/coverage: +double blocks 20 \(0[–-]19\); single blocks 40 \(0[–-]39\)/);
    }
    // the full-width diffusers parts sit at rows of the real widths (h 3072, linear1 21504 rows)
    const d = detectFormat(tensorsOf(join(dir, 'diffusers-peft.txt')));
    expect(d.modules.find((m) => m.module === 'transformer.single_transformer_blocks.7.proj_mlp')).toMatchObject({ target: 'single_blocks.7.linear1.weight', rows: [9216, 12288] });
    expect(d.modules.find((m) => m.module === 'transformer.transformer_blocks.7.attn.add_k_proj')).toMatchObject({ target: 'double_blocks.7.txt_attn.qkv.weight', rows: [3072, 3072] });
  });
});

describe('HunyuanVideo and FLUX.1: told apart both ways', () => {
  const tensor = (name: string, shape: number[]) => ({ name, shape });
  // kohya / LyCORIS prefixes take the name with `.` → `_`, dotted prefixes as it is
  const lora = (name: string, out: number, inp: number, prefix = 'lora_unet_') => {
    const n = prefix.endsWith('_') ? us(name) : name;
    return [tensor(`${prefix}${n}.lora_down.weight`, [4, inp]), tensor(`${prefix}${n}.lora_up.weight`, [out, 4])];
  };

  it('FLUX.1 files (every sample layout, every real FLUX fixture, a kohya file read back) are still FLUX.1', async () => {
    await expectFluxFilesStayFlux(tmp.dir);
  });

  it('ComfyUI names (FLUX.1\'s) are HunyuanVideo by depth (double block 19, single 38 or 39) or by musubi-tuner\'s metadata; within FLUX.1\'s depth and without it, FLUX.1', () => {
    const shallow = [...lora('double_blocks.0.img_attn.qkv', 9216, 3072), ...lora('double_blocks.18.img_mlp.0', 12288, 3072), ...lora('single_blocks.37.linear1', 21504, 3072)];
    expect(detectFormat(shallow).architecture).toBe('flux');
    expect(detectFormat(shallow, { ss_base_model_version: 'hunyuan_video' }).architecture).toBe('hunyuan-video');
    expect(detectFormat(shallow, { 'modelspec.architecture': 'hunyuan-video/lora' }).architecture).toBe('hunyuan-video');
    // HunyuanVideo 1.5 is another model: its metadata does not say HunyuanVideo
    expect(detectFormat(shallow, { ss_base_model_version: 'hunyuan_video_1_5' }).architecture).toBe('flux');
    for (const deep of [lora('double_blocks.19.img_attn.proj', 3072, 3072), lora('single_blocks.38.linear2', 3072, 15360), lora('single_blocks.39.linear1', 21504, 3072, 'diffusion_model.')]) {
      const d = detectFormat([...shallow, ...deep]);
      expect(d.architecture, deep[0]!.name).toBe('hunyuan-video');
      expect(d.evidence.join('\n')).toMatch(/HunyuanVideo's depth/);
    }
    // diffusers names FLUX.1 shares, by depth too
    const dif = ['transformer_blocks.19.attn.to_q', 'single_transformer_blocks.39.proj_mlp'].flatMap((n) => [tensor(`transformer.${n}.lora_A.weight`, [4, 64]), tensor(`transformer.${n}.lora_B.weight`, [n.endsWith('proj_mlp') ? 256 : 64, 4])]);
    expect(detectFormat(dif).architecture).toBe('hunyuan-video');
  });

  it('deeper than HunyuanVideo (double block 30) is neither: a FLUX.1 LoRA for a bigger model, as before; FLUX.2 shapes stay FLUX.2', () => {
    expect(detectFormat(lora('double_blocks.30.img_attn.proj', 64, 64)).architecture).toBe('flux');
    expect(detectFormat([...lora('double_blocks.19.img_attn.proj', 64, 64), ...lora('double_blocks.30.img_attn.proj', 64, 64)]).architecture).toBe('flux');
    // klein-4B-like: FLUX.1's hidden width, FLUX.2's SwiGLU widths, single block 19 (within both depths)
    const flux2 = [...lora('double_blocks.4.img_mlp.0', 18432, 3072), ...lora('single_blocks.19.linear1', 27648, 3072)];
    expect(detectFormat(flux2).architecture).toBe('flux2');
    expect(detectFormat(flux2, { ss_base_model_version: 'hunyuan_video' }).architecture).toBe('flux2');
  });

  it("Tencent's spellings and the token refiner are HunyuanVideo's alone, at any depth within its own, any prefix", () => {
    for (const keys of [
      lora('double_blocks.0.img_mlp.fc1', 12288, 3072),
      lora('double_blocks.0.img_mod.linear', 18432, 3072),
      lora('single_blocks.0.modulation.linear', 9216, 3072, 'transformer.'),
      [tensor('diffusion_model.double_blocks.0.img_attn_qkv.lora_A.weight', [4, 3072]), tensor('diffusion_model.double_blocks.0.img_attn_qkv.lora_B.weight', [9216, 4])],
      lora('txt_in.individual_token_refiner.blocks.0.self_attn_qkv', 9216, 3072, 'lycoris_'),
      lora('time_in.mlp.0', 3072, 256),
    ]) {
      const d = detectFormat(keys);
      expect(d.architecture, keys[0]!.name).toBe('hunyuan-video');
      expect(d.unknownKeys, keys[0]!.name).toEqual([]);
    }
    // kohya's underscores make Tencent's img_attn_qkv FLUX.1's img_attn.qkv: that alone stays FLUX.1
    expect(detectFormat(lora('double_blocks.0.img_attn_qkv', 9216, 3072)).architecture).toBe('flux');
  });

  it('base checkpoints: HunyuanVideo by img_in.proj / the token refiner / Tencent names, in either naming; FLUX.1 bases stay FLUX.1', async () => {
    const ckpt = (names: string[]) => names.map((n) => tensor(n, [4, 4]));
    const flux = join(tmp.dir, 'flux-ckpt.safetensors');
    await writeFluxCheckpoint(flux, { scale: 64, doubleBlocks: 1, singleBlocks: 1, dtype: 'F32' });
    const file = await SafetensorsFile.open(flux);
    expect(checkpointArchitecture(file.tensors).architecture).toBe('flux');
    await file.close();
    for (const names of [
      ['double_blocks.0.img_attn.qkv.weight', 'img_in.proj.weight'],
      ['model.diffusion_model.double_blocks.0.img_attn.qkv.weight', 'model.diffusion_model.txt_in.individual_token_refiner.blocks.0.norm1.weight'],
      ['double_blocks.0.img_attn_qkv.weight', 'single_blocks.0.linear1.weight'],
      ['model.model.double_blocks.0.img_attn.qkv.weight', 'model.model.img_in.proj.weight'],
    ]) expect(checkpointArchitecture(ckpt(names)).architecture, names[0]).toBe('hunyuan-video');
  });
});

/** A LoraWriter for the shared suite: a layout's units (the first `count`), ΔW by canonical target. */
const writer = (layout: Layout) => rowWriter(layout, (seed, count) => units(layout.naming, seed).slice(0, count), HV_META);

/** A shrunk HunyuanVideo base in ComfyUI's names: every linear (with biases), the Conv3d patch embedder, the RMSNorm scales, a refiner LayerNorm. */
const BASE: BaseSpec = {
  linears: ROWS.map((r) => [r[0], r[3], r[4]] as const),
  biases: true,
  others: [
    ['img_in.proj.weight', [H, W.in, 1, 2, 2]],
    ['img_in.proj.bias', [H]],
    ...['img_attn.norm.query_norm', 'img_attn.norm.key_norm', 'txt_attn.norm.query_norm', 'txt_attn.norm.key_norm'].map((n) => [`double_blocks.0.${n}.scale`, [W.head]] as const),
    ['single_blocks.0.norm.query_norm.scale', [W.head]],
    ['txt_in.individual_token_refiner.blocks.0.norm1.weight', [H]],
  ],
  prefixes: ['model.diffusion_model.', ''],
};

const MUSUBI_WRITER = writer(MUSUBI);
const DIFFUSERS_WRITER = writer(DIFFUSERS);
const pad2 = (i: number) => String(i).padStart(2, '0');
const BLOCK_IDS = ['IN', ...Array.from({ length: DOUBLE_BLOCKS }, (_, i) => `D${pad2(i)}`), ...Array.from({ length: SINGLE_BLOCKS }, (_, i) => `S${pad2(i)}`), 'OUT'];

describeTableFamilyOperations({
  id: 'hunyuan-video',
  label: 'HunyuanVideo',
  convert: {
    sources: [MUSUBI_WRITER, DIFFUSERS_WRITER],
    names: [
      // kohya = musubi-tuner's own names
      { to: 'kohya', contains: ['lora_unet_double_blocks_19_img_mlp_fc1.lora_down.weight', 'lora_unet_double_blocks_0_img_mod_linear.lora_up.weight', 'lora_unet_double_blocks_0_txt_attn_qkv.alpha', 'lora_unet_single_blocks_39_modulation_linear.alpha', 'lora_unet_single_blocks_39_linear1.lora_up.weight', 'lora_unet_time_in_mlp_0.alpha', 'lora_unet_txt_in_c_embedder_linear_1.lora_down.weight', 'lora_unet_txt_in_individual_token_refiner_blocks_1_self_attn_qkv.lora_down.weight', 'lora_unet_final_layer_adaLN_modulation_1.lora_up.weight'], all: /^lora_unet_/ },
      { to: 'comfyui', contains: ['diffusion_model.double_blocks.19.img_mlp.0.lora_up.weight', 'diffusion_model.double_blocks.0.img_attn.qkv.lora_down.weight', 'diffusion_model.single_blocks.39.modulation.lin.alpha', 'diffusion_model.time_in.in_layer.lora_down.weight', 'diffusion_model.txt_in.individual_token_refiner.blocks.1.self_attn.qkv.lora_up.weight'], all: /^diffusion_model\./ },
      {
        to: 'diffusers',
        contains: [
          'transformer_blocks.19.attn.to_q', 'transformer_blocks.19.attn.add_k_proj', 'transformer_blocks.19.ff.net.0.proj', 'transformer_blocks.0.norm1_context.linear', 'single_transformer_blocks.39.attn.to_v', 'single_transformer_blocks.39.proj_mlp',
          'single_transformer_blocks.39.proj_out', 'single_transformer_blocks.0.norm.linear', 'context_embedder.token_refiner.refiner_blocks.1.attn.to_k', 'context_embedder.time_text_embed.text_embedder.linear_1', 'time_text_embed.guidance_embedder.linear_2', 'norm_out.linear', 'proj_out',
        ].map((n) => `transformer.${n}.lora_A.weight`),
        all: /^transformer\./,
      },
      // the diffusers source's split parts come back fused under musubi's names
      { from: DIFFUSERS_WRITER, to: 'kohya', contains: ['lora_unet_double_blocks_7_txt_attn_qkv.lora_up.weight', 'lora_unet_single_blocks_39_linear1.lora_down.weight', 'lora_unet_final_layer_adaLN_modulation_1.alpha'] },
    ],
    kohyaMetadata: { source: writer(DIFFUSION_PIPE), count: DOUBLE.length, want: { ss_network_module: 'networks.lora', 'modelspec.architecture': 'hunyuan-video/lora' } },
  },
  merge: { a: writer(MUSUBI), b: writer(DIFFUSERS), rank: 4 * RANK },
  resize: { source: writer(DIFFUSION_PIPE) },
  blocks: {
    source: writer(DIFFUSION_PIPE),
    groups: [{ prefix: 'double_blocks.', id: 'D', count: DOUBLE_BLOCKS }, { prefix: 'single_blocks.', id: 'S', count: SINGLE_BLOCKS }],
    in: IN_NAMES,
    out: OUT_NAMES,
    weighted: [
      {
        spec: 'D00-D03=0,D19=0.5,S10=3,S39=0,IN=0.25,OUT=2',
        weight: (b) => ({ IN: 0.25, OUT: 2, D19: 0.5, S10: 3, S39: 0 })[b] ?? (b.startsWith('D') && blockIndex(b) <= 3 ? 0 : 1),
        dropped: 4 * DOUBLE.length + SINGLE.length,
      },
      { spec: BLOCK_IDS.map(() => 1), dropped: 0 },
      // a 62-value vector is IN, D00…D19, S00…S39, OUT in that order
      { spec: BLOCK_IDS.map((id) => (id === 'IN' || id === 'D19' || id === 'S00' || id === 'OUT' ? 0 : 1)), dropped: DOUBLE.length + SINGLE.length + IN_NAMES.length + OUT_NAMES.length },
    ],
    refused: [
      ['B00=0', /unknown block id "B00"/],
      ['D00-D20=0', /past the last HunyuanVideo block/],
      ['S35-S40=0', /past the last HunyuanVideo block/],
      [Array.from({ length: 61 }, () => 1), /62 values/],
    ],
    filters: [['D00', 'in'], ['OUT', 'S39'], ['d19']],
  },
  base: BASE,
  apply: { a: writer(MUSUBI), b: writer(DIFFUSERS) },
  extract: {
    deltas: WANT.comfy,
    targets: /^(?:double_blocks\.(?:0|19)\.|single_blocks\.39\.|txt_in\.individual_token_refiner\.blocks\.1\.|final_layer\.)/,
    format: 'diffusers',
    names: ['transformer.transformer_blocks.19.attn.to_v.lora_A.weight', 'transformer.single_transformer_blocks.39.proj_mlp.lora_B.weight', 'transformer.context_embedder.token_refiner.refiner_blocks.1.attn.to_q.lora_A.weight', 'transformer.norm_out.linear.lora_B.weight'],
  },
  refusal: {
    source: writer(MUSUBI),
    count: DOUBLE.length,
    error: /is a FLUX\.1 checkpoint.*LoRA 1 is a kohya LoRA for HunyuanVideo/,
    foreignLora: { id: 'flux', write: (path) => writeSampleLora(path, { format: 'kohya', blocks: { double: 1, single: 1 } }).then(() => undefined), error: /is a HunyuanVideo checkpoint.*LoRA 1 is a kohya LoRA for FLUX\.1/ },
  },
});

describe('HunyuanVideo bases in the other namings', () => {
  /** A base in Tencent's names (bare, as musubi-tuner's --dit and diffusion-pipe's transformer_path load it): BASE with every name respelled. */
  const tencentBase: BaseSpec = {
    ...BASE,
    linears: ROWS.map((r) => [r[1], r[3], r[4]] as const),
    others: [['img_in.proj.weight', [H, W.in, 1, 2, 2]], ['double_blocks.0.img_attn_q_norm.weight', [W.head]], ['single_blocks.0.k_norm.weight', [W.head]]],
  };

  it("applies musubi and diffusers LoRAs into a Tencent-named base and into a ComfyUI save (model.model.): each weight under the base's own name, the rest byte for byte", async () => {
    const a = join(tmp.dir, 'tb-a.safetensors');
    const b = join(tmp.dir, 'tb-b.safetensors');
    const ua = units('tencent', 1);
    const ub = units('diffusers', 3);
    await writeLayout(a, MUSUBI, ua);
    await writeLayout(b, DIFFUSERS, ub);
    const [wa, wb] = [expected(ua), expected(ub)];
    const sa = await readLora(a);
    const sb = await readLora(b);
    for (const [spec, prefix, name] of [[tencentBase, '', (c: string) => TENCENT_OF.get(c)!], [BASE, 'model.model.', (c: string) => c]] as const) {
      const base = join(tmp.dir, `tb-base-${prefix.length}.safetensors`);
      const out = join(tmp.dir, `tb-out-${prefix.length}.safetensors`);
      await writeTableBase(base, spec, prefix);
      await applyToBase({ base, out, loras: [{ set: sa, weight: 1 }, { set: sb, weight: 0.5 }] });
      const byKey = new Map(ROWS.map((r) => [`${prefix}${name(r[0])}.weight`, `${r[0]}.weight`]));
      const baseFile = await SafetensorsFile.open(base);
      const outFile = await SafetensorsFile.open(out);
      const errors = await basePlusDeltaErrors(baseFile, outFile, (key) => {
        const t = byKey.get(key);
        return t ? { data: wa.get(t)!.map((v, i) => v + 0.5 * wb.get(t)![i]!) } : undefined;
      });
      expect(errors.size, prefix || 'tencent').toBe(ROWS.length);
      expect(Math.max(...errors.values()), prefix || 'tencent').toBeLessThan(1e-6);
      await Promise.all([baseFile.close(), outFile.close()]);
    }
    await Promise.all([sa.close(), sb.close()]);
  });

  it('a norm-scale diff applies onto the RMSNorm under its Tencent name (.weight)', async () => {
    const base = join(tmp.dir, 'norm-base.safetensors');
    const out = join(tmp.dir, 'norm-out.safetensors');
    await writeTableBase(base, tencentBase, '');
    const lora = join(tmp.dir, 'norm-lora.safetensors');
    const delta = Float32Array.from({ length: W.head }, (_, i) => i / 4);
    await writeSafetensors(lora, [
      ...[...UNITS.comfy.filter((u) => u.target.startsWith('double_blocks.0.'))].flatMap((m) => [f32(`diffusion_model.${m.name}.lora_down.weight`, [RANK, m.in], m.down), f32(`diffusion_model.${m.name}.lora_up.weight`, [m.out, RANK], m.up)]),
      f32('diffusion_model.double_blocks.0.img_attn.norm.query_norm.scale.diff', [W.head], delta),
    ], { metadata: HV_META });
    const set = await readLora(lora);
    await applyToBase({ base, out, loras: [{ set, weight: 1 }] });
    const o = await SafetensorsFile.open(out);
    expect([...(await o.readF32('double_blocks.0.img_attn_q_norm.weight'))]).toEqual([...delta].map((d) => Math.fround(1 + d)));
    await o.close();
    await set.close();
  });

  it('extracts from a Tencent-named pair: modules named canonically, ΔW recovered, written as musubi-tuner names', async () => {
    const base = join(tmp.dir, 'tx-base.safetensors');
    const tuned = join(tmp.dir, 'tx-tuned.safetensors');
    const few = new Map([...WANT.comfy].filter(([k]) => /^(?:double_blocks\.19\.|single_blocks\.0\.|time_in\.)/.test(k)));
    const tencentFew = new Map([...few].map(([k, d]) => [`${TENCENT_OF.get(k.slice(0, -'.weight'.length))}.weight`, d]));
    await writeTableBase(base, tencentBase, '');
    await writeTableBase(tuned, tencentBase, '', tencentFew);
    const { set, report } = await extractLora({ base, tuned, rank: RANK });
    expect(report.architecture).toBe('hunyuan-video');
    expect(set.architecture).toBe('hunyuan-video');
    expect(await deltaError(set, few)).toBeLessThan(1e-4);
    const out = join(tmp.dir, 'tx.safetensors');
    await writeLora(out, set, { format: 'kohya' });
    const file = await SafetensorsFile.open(out);
    const names = file.tensors.map((t) => t.name);
    expect(names).toContain('lora_unet_double_blocks_19_img_mlp_fc2.lora_down.weight');
    expect(names).toContain('lora_unet_time_in_mlp_2.alpha');
    await file.close();
    const back = await readLora(out);
    expect(back.architecture).toBe('hunyuan-video');
    expect(back.unknownKeys).toEqual([]);
    expect(await deltaError(back, few)).toBeLessThan(1e-4);
    await back.close();
  });
});
