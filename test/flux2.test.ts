/**
 * FLUX.2 (dev; klein 4B / 9B) end to end on shrunk-width fixtures with the real key names and block
 * counts (dev: 8 double, 48 single blocks; klein-4B: 5 / 20): every trainer layout of
 * docs/model-families.md §3.3 read with no unknown key and ΔW equal to a float64 reference computed
 * here from a name table written here (diffusers' to_q / to_k / to_v landing as row slices of BFL's
 * fused qkv, norm_out.linear's halves swapped onto final_layer.adaLN_modulation.1); the constructed
 * key lists detected as FLUX.2; FLUX.1 files (which share the BFL block names) still FLUX.1;
 * conversion to every writable layout and back; merge, apply into a FLUX.2 base, extract, resize,
 * block weights and filters by value; a FLUX.2 LoRA on a FLUX.1 base refused naming both.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectFormat, formatDetection } from '../src/formats/detect.ts';
import { readLora } from '../src/formats/read.ts';
import { applyBlockWeights } from '../src/lora/blocks.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { keyedRandom, writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { lokrModule } from './helpers/lycoris.ts';
import { blockIndex, describeTableFamilyOperations } from './helpers/table-family-ops.ts';
import { RANK, deltaError, itReadsEveryRowLayout, rowDeltas, rowUnits, rowWriter, underscored as us, writeRowLayout, type Naming, type RowLayout, type RowUnit, type TableRow } from './helpers/table-family.ts';
import { readKeyList, expectFluxFilesStayFlux } from './helpers/key-lists.ts';

const tmp = useTempDir('loraflow-flux2-');

// shrunk widths: h hidden, mlp = 3h (SwiGLU hidden), in latent channels, ctx text width, time timestep embedding, head
const H = 16;
const W = { h: H, mlp: 3 * H, in: 20, ctx: 36, time: 12, head: 4 } as const;
const DEV = { double: 8, single: 48 };
const KLEIN4 = { double: 5, single: 20 };

/**
 * FLUX.2 linears as docs/model-families.md §3.2 states them: BFL name (the 'original' naming),
 * diffusers name (an array = the diffusers parts of a fused BFL weight, each h rows, in order),
 * [out, in], and whether the (shift, scale) halves swap. Written here, not taken from the code under test.
 */
type Row = TableRow;
const DOUBLE: Row[] = [
  ['img_attn.qkv', ['attn.to_q', 'attn.to_k', 'attn.to_v'], 3 * H, H],
  ['txt_attn.qkv', ['attn.add_q_proj', 'attn.add_k_proj', 'attn.add_v_proj'], 3 * H, H],
  ['img_attn.proj', 'attn.to_out.0', H, H],
  ['txt_attn.proj', 'attn.to_add_out', H, H],
  ['img_mlp.0', 'ff.linear_in', 2 * W.mlp, H],
  ['img_mlp.2', 'ff.linear_out', H, W.mlp],
  ['txt_mlp.0', 'ff_context.linear_in', 2 * W.mlp, H],
  ['txt_mlp.2', 'ff_context.linear_out', H, W.mlp],
];
const SINGLE: Row[] = [
  ['linear1', 'attn.to_qkv_mlp_proj', 3 * H + 2 * W.mlp, H],
  ['linear2', 'attn.to_out', H, H + W.mlp],
];
const IN_ROWS: Row[] = [
  ['double_stream_modulation_img.lin', 'double_stream_modulation_img.linear', 6 * H, H],
  ['double_stream_modulation_txt.lin', 'double_stream_modulation_txt.linear', 6 * H, H],
  ['single_stream_modulation.lin', 'single_stream_modulation.linear', 3 * H, H],
  ['img_in', 'x_embedder', H, W.in],
  ['txt_in', 'context_embedder', H, W.ctx],
  ['time_in.in_layer', 'time_guidance_embed.timestep_embedder.linear_1', H, W.time],
  ['time_in.out_layer', 'time_guidance_embed.timestep_embedder.linear_2', H, H],
  ['guidance_in.in_layer', 'time_guidance_embed.guidance_embedder.linear_1', H, W.time],
  ['guidance_in.out_layer', 'time_guidance_embed.guidance_embedder.linear_2', H, H],
];
const OUT_ROWS: Row[] = [
  ['final_layer.linear', 'proj_out', W.in, H],
  ['final_layer.adaLN_modulation.1', 'norm_out.linear', 2 * H, H, true],
];

/** Every BFL linear of a model: [bfl path, diffusers path(s), out, in, swap]. */
function rows(blocks = DEV): Row[] {
  const out: Row[] = [];
  const at = (r: Row, bfl: string, dif: string, i: number): Row => [`${bfl}.${i}.${r[0]}`, typeof r[1] === 'string' ? `${dif}.${i}.${r[1]}` : r[1].map((p) => `${dif}.${i}.${p}`), r[2], r[3]];
  for (let i = 0; i < blocks.double; i++) for (const r of DOUBLE) out.push(at(r, 'double_blocks', 'transformer_blocks', i));
  for (let i = 0; i < blocks.single; i++) for (const r of SINGLE) out.push(at(r, 'single_blocks', 'single_transformer_blocks', i));
  return [...out, ...IN_ROWS, ...OUT_ROWS];
}
const ROWS = rows();

/** The LoRA modules of a file in BFL ('original') or diffusers names, factors from `seed`. */
const units = (naming: Naming, seed: number, table: readonly Row[] = ROWS): RowUnit[] => rowUnits(table, naming, seed, H);
const expected = rowDeltas;

type Layout = RowLayout;
const ab = (r: 'down' | 'up' | 'alpha') => (r === 'down' ? 'A' : 'B');

/** The layouts of docs/model-families.md §3.3 (F2-4 LyCORIS LoKr has its own test below). */
const LAYOUTS: Layout[] = [
  { name: 'F2-1 kohya / musubi-tuner (lora_unet_)', naming: 'original', alpha: true, key: (n, r) => `lora_unet_${us(n)}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
  { name: 'F2-2 ai-toolkit / diffusion-pipe (diffusion_model. lora_A)', naming: 'original', alpha: false, key: (n, r) => `diffusion_model.${n}.lora_${ab(r)}.weight` },
  { name: 'F2-3 diffusers / PEFT (transformer.)', naming: 'diffusers', alpha: false, key: (n, r) => `transformer.${n}.lora_${ab(r)}.weight` },
  { name: 'ComfyUI-saved (diffusion_model. lora_down + alpha)', naming: 'original', alpha: true, key: (n, r) => `diffusion_model.${n}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
  { name: 'BFL names without prefix (lora_A)', naming: 'original', alpha: false, key: (n, r) => `${n}.lora_${ab(r)}.weight` },
];
const KOHYA = LAYOUTS[0]!;
const AITOOLKIT = LAYOUTS[1]!;
const DIFFUSERS = LAYOUTS[2]!;

const FLUX2_META = { ss_base_model_version: 'flux_2_dev' };
const writeLayout = (path: string, layout: Layout, mods: readonly RowUnit[], alpha = RANK, metadata: Record<string, string> = FLUX2_META) => writeRowLayout(path, layout, mods, { alpha, metadata });

const BFL = units('original', 1);
const DIF = units('diffusers', 1);
const WANT_BFL = expected(BFL);
const WANT_DIF = expected(DIF);
const unitsOf = (layout: Layout) => (layout.naming === 'original' ? BFL : DIF);
const wantOf = (layout: Layout) => (layout.naming === 'original' ? WANT_BFL : WANT_DIF);

describe('FLUX.2 LoRAs: every layout read, by value', () => {
  itReadsEveryRowLayout({ id: 'flux2', layouts: LAYOUTS, metadata: FLUX2_META, file: (name) => tmp.path(name), units: unitsOf, want: wantOf });

  it('diffusers to_q / to_k / to_v land as rows 0..h, h..2h, 2h..3h of the fused BFL qkv; norm_out.linear swaps its halves', async () => {
    const path = join(tmp.dir, 'parts.safetensors');
    await writeLayout(path, DIFFUSERS, DIF, RANK, {});
    const set = await readLora(path);
    const rowsOf = (module: string) => set.patches.find((p) => p.source.module.endsWith(module))!;
    expect(rowsOf('transformer_blocks.3.attn.to_q').target).toBe('double_blocks.3.img_attn.qkv.weight');
    expect(rowsOf('transformer_blocks.3.attn.to_q').rows).toEqual([0, H]);
    expect(rowsOf('transformer_blocks.3.attn.to_k').rows).toEqual([H, H]);
    expect(rowsOf('transformer_blocks.3.attn.add_v_proj').target).toBe('double_blocks.3.txt_attn.qkv.weight');
    expect(rowsOf('transformer_blocks.3.attn.add_v_proj').rows).toEqual([2 * H, H]);
    expect(rowsOf('single_transformer_blocks.47.attn.to_qkv_mlp_proj').target).toBe('single_blocks.47.linear1.weight');
    expect(rowsOf('single_transformer_blocks.47.attn.to_qkv_mlp_proj').rows).toBeUndefined();
    expect(rowsOf('norm_out.linear').target).toBe('final_layer.adaLN_modulation.1.weight');
    await set.close();
  });

  it('alpha scales: a musubi file at alpha 2 (rank 4) reads at scale ½', async () => {
    const path = join(tmp.dir, 'alpha.safetensors');
    await writeLayout(path, KOHYA, BFL, 2);
    const set = await readLora(path);
    expect(await deltaError(set, WANT_BFL, 0.5)).toBeLessThan(1e-6);
    await set.close();
  });

  it('F2-4 LyCORIS LoKr without prefix (klein-9B style, shared names only): ΔW = w1 ⊗ (w2a·w2b) · alpha/r, FLUX.2 by its shapes', async () => {
    const picked = ROWS.filter((r) => /^double_blocks\.[34]\.(?:img_attn\.qkv|txt_attn\.proj|img_mlp\.0|img_mlp\.2|txt_mlp\.0)$/.test(r[0]));
    expect(picked).toHaveLength(10);
    const entries: TensorEntry[] = [];
    const want = new Map<string, Float64Array>();
    const F = 4;
    const R = 2;
    for (const [name, , out, inp] of picked) {
      const m = lokrModule(name, keyedRandom(`lokr ${name}`, 7), { f: F, r: R, out, inp });
      entries.push(...m.entries);
      want.set(`${name}.weight`, m.delta);
    }
    const path = join(tmp.dir, 'lokr.safetensors');
    await writeSafetensors(path, entries);
    const set = await readLora(path);
    expect(set.architecture).toBe('flux2');
    expect(set.unknownKeys).toEqual([]);
    expect(await deltaError(set, want)).toBeLessThan(1e-6);
    await set.close();
  });

  it('constructed full-width key lists (test/fixtures/families/flux2): family flux2, every module placed, with and without metadata', () => {
    const dir = join(import.meta.dirname, 'fixtures', 'families', 'flux2');
    // per doc §3.2 counts: dev 160 BFL linears, klein-4B 80, klein-9B in diffusers naming 8 × 12 + 24 × 2
    const modules: Record<string, number> = { 'musubi-dev.txt': 160, 'ai-toolkit-klein-4b.txt': 80, 'diffusers-peft-klein-9b.txt': 144 };
    const files = readdirSync(dir).filter((f) => !f.includes('excerpt')).sort();
    expect(files).toEqual(Object.keys(modules).sort());
    for (const file of files) {
      const tensors = readKeyList(join(dir, file));
      for (const metadata of [undefined, { ss_base_model_version: 'flux2_klein_4b' }, { 'modelspec.architecture': 'Flux.2-dev/lora' }]) {
        const d = detectFormat(tensors, metadata);
        expect(d.architecture, file).toBe('flux2');
        expect(d.unknownKeys, file).toEqual([]);
        expect(d.modules.length, file).toBe(modules[file]);
      }
      const summary = formatDetection(detectFormat(tensors));
      expect(summary, file).toMatch(file.includes('dev') ? /coverage: +double blocks 8 \(0[–-]7\); single blocks 48 \(0[–-]47\)/ : file.includes('4b') ? /coverage: +double blocks 5 \(0[–-]4\); single blocks 20 \(0[–-]19\)/ : /coverage: +double blocks 8 \(0[–-]7\); single blocks 24 \(0[–-]23\)/);
    }
  });

  it('the real LyCORIS excerpt names (no shapes in the thread) all resolve to FLUX.2 BFL modules', () => {
    const lines = readFileSync(join(import.meta.dirname, 'fixtures', 'families', 'flux2', 'lycoris-lokr-klein-9b-real-excerpt.txt'), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    const modules = new Set(lines.map((l) => l.trim().replace(/\.(?:alpha|lokr_w[12])$/, '')));
    const known = new Set(ROWS.map((r) => r[0]));
    for (const m of modules) expect(known.has(m), m).toBe(true);
  });

  it('files with only names FLUX.1 shares are told apart by shapes: FLUX.2 mlp 6h / linear1 9h, FLUX.1 4h / 7h', () => {
    const tensor = (name: string, shape: number[]) => ({ name, shape });
    const lora = (name: string, out: number, inp: number) => [tensor(`lora_unet_${us(name)}.lora_down.weight`, [4, inp]), tensor(`lora_unet_${us(name)}.lora_up.weight`, [out, 4])];
    // klein-4B has FLUX.1's hidden width 3072
    const flux2 = [...lora('double_blocks.0.img_attn.qkv', 9216, 3072), ...lora('double_blocks.0.img_mlp.0', 18432, 3072), ...lora('single_blocks.0.linear1', 27648, 3072)];
    const flux1 = [...lora('double_blocks.0.img_attn.qkv', 9216, 3072), ...lora('double_blocks.0.img_mlp.0', 12288, 3072), ...lora('single_blocks.0.linear1', 21504, 3072)];
    expect(detectFormat(flux2).architecture).toBe('flux2');
    expect(detectFormat(flux1).architecture).toBe('flux');
    // a FLUX.2 metadata claim on FLUX.1 shapes: the shapes win
    expect(detectFormat(flux1, { ss_base_model_version: 'flux_2_dev' }).architecture).toBe('flux');
    // attention only: nothing tells; FLUX.1 unless the metadata says FLUX.2
    const qkv = lora('double_blocks.0.img_attn.qkv', 9216, 3072);
    expect(detectFormat(qkv).architecture).toBe('flux');
    expect(detectFormat(qkv, { ss_base_model_version: 'flux2' }).architecture).toBe('flux2');
  });

  it('FLUX.1 files (every sample layout, every real FLUX fixture) are still FLUX.1', async () => {
    await expectFluxFilesStayFlux(tmp.dir);
  });
});

/** A FLUX.2 layout as the operation suite writes it: BFL or diffusers units from a seed, ΔW on the fused BFL targets. */
const flux2Writer = (layout: Layout) => rowWriter(layout, (seed, count) => units(layout.naming, seed).slice(0, count), FLUX2_META);
const KOHYA_W = flux2Writer(KOHYA);
const DIFFUSERS_W = flux2Writer(DIFFUSERS);
const AITOOLKIT_W = flux2Writer(AITOOLKIT);

describeTableFamilyOperations({
  id: 'flux2',
  label: 'FLUX.2',
  convert: {
    sources: [KOHYA_W, DIFFUSERS_W],
    names: [
      { from: DIFFUSERS_W, to: 'kohya', contains: ['lora_unet_double_blocks_7_img_attn_qkv.lora_down.weight', 'lora_unet_single_blocks_47_linear1.lora_up.weight', 'lora_unet_double_stream_modulation_img_lin.alpha', 'lora_unet_final_layer_adaLN_modulation_1.lora_up.weight'] },
      { from: KOHYA_W, to: 'comfyui', all: /^diffusion_model\./, contains: ['diffusion_model.double_blocks.7.img_mlp.0.lora_up.weight'] },
      {
        from: KOHYA_W,
        to: 'diffusers',
        all: /^transformer\./,
        contains: ['transformer_blocks.7.attn.to_q', 'transformer_blocks.7.attn.add_k_proj', 'transformer_blocks.7.ff.linear_in', 'single_transformer_blocks.47.attn.to_qkv_mlp_proj', 'single_transformer_blocks.47.attn.to_out', 'single_stream_modulation.linear', 'norm_out.linear', 'time_guidance_embed.guidance_embedder.linear_2'].map((n) => `transformer.${n}.lora_A.weight`),
      },
    ],
    kohyaMetadata: { source: DIFFUSERS_W, count: 12, want: { ss_network_module: 'networks.lora_flux_2', 'modelspec.architecture': 'Flux.2-dev/lora' } },
  },
  merge: { a: KOHYA_W, b: DIFFUSERS_W, rank: 4 * RANK },
  resize: { source: AITOOLKIT_W },
  blocks: {
    source: AITOOLKIT_W,
    groups: [{ prefix: 'double_blocks.', id: 'D', count: DEV.double }, { prefix: 'single_blocks.', id: 'S', count: DEV.single }],
    in: IN_ROWS.map((r) => r[0]),
    out: OUT_ROWS.map((r) => r[0]),
    weighted: [
      { spec: 'D00-D03=0,D07=0.5,S10=3,S47=0,IN=0.25,OUT=2', weight: (b) => ({ IN: 0.25, OUT: 2, D07: 0.5, S10: 3, S47: 0 })[b] ?? (b.startsWith('D') && blockIndex(b) <= 3 ? 0 : 1), dropped: 4 * DOUBLE.length + SINGLE.length },
      // a 58-value vector is IN, D00…D07, S00…S47, OUT in that order
      { spec: [0, ...Array.from({ length: 56 }, (_, i) => (i === 7 || i === 8 ? 0 : 1)), 0], dropped: DOUBLE.length + SINGLE.length + IN_ROWS.length + OUT_ROWS.length },
    ],
    refused: [
      ['B00=0', /unknown block id "B00"/],
      ['D00-D08=0', /past the last FLUX\.2 block/],
      [Array.from({ length: 61 }, () => 1), /58 \(dev\), 34 \(klein-9B\), 27 \(klein-4B\)/],
    ],
    filters: [['D00', 'in'], ['OUT', 'S47']],
  },
  // every table linear (no biases), the QK norms, nothing else LoRA-able
  base: {
    linears: ROWS.map(([name, , out, inp]) => [name, out, inp] as const),
    biases: false,
    others: [
      ...['img_attn.norm.query_norm', 'img_attn.norm.key_norm', 'txt_attn.norm.query_norm', 'txt_attn.norm.key_norm'].map((n) => [`double_blocks.0.${n}.scale`, [W.head]] as const),
      ['single_blocks.0.norm.query_norm.scale', [W.head]],
    ],
    prefixes: ['model.diffusion_model.', ''],
  },
  apply: { a: KOHYA_W, b: DIFFUSERS_W },
  extract: {
    deltas: WANT_BFL,
    targets: /^(?:double_blocks\.(?:0|7)\.|single_blocks\.47\.|single_stream_modulation\.|final_layer\.)/,
    format: 'diffusers',
    names: ['transformer.transformer_blocks.7.attn.to_v.lora_A.weight', 'transformer.single_stream_modulation.linear.lora_B.weight'],
  },
  refusal: {
    source: KOHYA_W,
    count: 8,
    error: /is a FLUX\.1 checkpoint.*LoRA 1 is a kohya LoRA for FLUX\.2/,
    foreignLora: { write: (path) => writeSampleLora(path, { format: 'kohya', blocks: { double: 1, single: 1 } }), id: 'flux', error: /is a FLUX\.2 checkpoint.*LoRA 1 is a kohya LoRA for FLUX\.1/ },
  },
});

describe('FLUX.2 klein-4B', () => {
  it('klein-4B (5 double, 20 single blocks): a 27-value vector is IN, D00…D04, S00…S19, OUT; inspect covers its blocks', async () => {
    const table = rows(KLEIN4);
    const mods = units('original', 4, table);
    const path = join(tmp.dir, 'klein4.safetensors');
    await writeLayout(path, AITOOLKIT, mods, RANK, {});
    const set = await readLora(path);
    expect(set.architecture).toBe('flux2');
    expect(await deltaError(set, expected(mods))).toBeLessThan(1e-6);
    const weighted = applyBlockWeights(set, [1, 0, 1, 1, 1, 1, ...Array.from({ length: 20 }, (_, i) => (i === 19 ? 0 : 1)), 1]);
    expect(weighted.report.dropped).toHaveLength(DOUBLE.length + SINGLE.length);
    const d = detectFormat(
      mods.flatMap((m) => [{ name: AITOOLKIT.key(m.name, 'down'), shape: [RANK, m.in] }, { name: AITOOLKIT.key(m.name, 'up'), shape: [m.out, RANK] }]),
    );
    expect(d.architecture).toBe('flux2');
    expect(d.coverage.doubleBlocks).toEqual([0, 1, 2, 3, 4]);
    expect(d.coverage.singleBlocks).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(d.coverage.blocks).toEqual(['D00', 'D01', 'D02', 'D03', 'D04', ...Array.from({ length: 20 }, (_, i) => `S${String(i).padStart(2, '0')}`), 'IN', 'OUT']);
    expect(formatDetection(d)).toMatch(/double_stream_modulation_img\.lin.*final_layer\.linear/);
    await set.close();
  });
});
