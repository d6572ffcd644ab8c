/**
 * SD3 / SD3.5 end to end on shrunk-width fixtures with the real key names and block counts
 * (SD3.5-medium: 24 joint blocks, dual attention in 0–12; SD3.5-large: 38): every trainer layout of
 * docs/model-families.md §5.2 read with no unknown key and ΔW equal to a float64 reference computed
 * here from a name table written here (diffusers' to_q / to_k / to_v and add_*_proj landing as row
 * slices of the fused `attn.qkv`, attn2 in the dual blocks, the [9h, h] x adaLN of a dual block,
 * the last block's [2h, h] context adaLN and `norm_out.linear` with their halves swapped, every other
 * block's [6h, h] context adaLN not); text encoders (CLIP-L, CLIP-G, T5) in sd-scripts' and diffusers'
 * prefixes; the patch-embedding conv; the constructed full-width key lists; detection against FLUX.1
 * and Qwen-Image, which share the diffusers names; then every operation through the shared suite.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertLora } from '../src/formats/convert.ts';
import { detectFormat, formatDetection } from '../src/formats/detect.ts';
import type { AdapterSet } from '../src/adapter/model.ts';
import { readLora } from '../src/formats/read.ts';
import { applyBlockWeights } from '../src/lora/blocks.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { FIXTURE_NAMES, fixtureKeyShapes, keyedRandom, sampleKeyShapes, writeSampleLora, type SampleFormat } from '../src/samples/lora-fixtures.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { sampleTableLora, writeTableCheckpoint, writeTableLora } from '../src/samples/table-samples.ts';
import { SD3 } from '../src/formats/sd3/family.ts';
import { blockIndex, describeTableFamilyOperations } from './helpers/table-family-ops.ts';
import { lokrModule } from './helpers/lycoris.ts';
import { RANK, bothNamings, deltaError, f32, itReadsEveryRowLayout, rowDeltas, rowUnits, rowWriter, underscored as us, writeRowLayout, type Naming, type RowLayout, type RowUnit, type TableRow } from './helpers/table-family.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { readKeyList } from './helpers/key-lists.ts';

const tmp = useTempDir('loraflow-sd3-');

// shrunk widths (distinct): h hidden, f mlp (4h), hd head, ctx context, y pooled, fq timestep frequencies, oc out × patch², c latent, p patch
const H = 16;
const W = { h: H, f: 4 * H, hd: 4, ctx: 36, y: 28, fq: 12, oc: 20, c: 6, p: 2 } as const;
interface Size {
  blocks: number;
  dual: number;
}
const MEDIUM: Size = { blocks: 24, dual: 13 };
const LARGE: Size = { blocks: 38, dual: 0 };

/**
 * SD3 linears as docs/model-families.md §5.2 states them: original name, diffusers name (an array =
 * the h-row parts of a fused weight, in order), [out, in], and whether the (shift, scale) halves swap.
 * Written here from the doc and diffusers' converter, not taken from the code under test.
 */
type Row = TableRow;

function blockRows(i: number, size: Size): Row[] {
  const dual = i < size.dual;
  const last = i === size.blocks - 1;
  const rows: Row[] = [
    ['x_block.attn.qkv', ['attn.to_q', 'attn.to_k', 'attn.to_v'], 3 * H, H],
    ['x_block.attn.proj', 'attn.to_out.0', H, H],
    ['x_block.mlp.fc1', 'ff.net.0.proj', W.f, H],
    ['x_block.mlp.fc2', 'ff.net.2', H, W.f],
    // SD35AdaLayerNormZeroX in the dual blocks: shift, scale, gate for attn, mlp and attn2
    ['x_block.adaLN_modulation.1', 'norm1.linear', (dual ? 9 : 6) * H, H],
    ['context_block.attn.qkv', ['attn.add_q_proj', 'attn.add_k_proj', 'attn.add_v_proj'], 3 * H, H],
    // the last block is context_pre_only: AdaLayerNormContinuous (scale, shift) ⇄ the original's (shift, scale)
    ['context_block.adaLN_modulation.1', 'norm1_context.linear', (last ? 2 : 6) * H, H, last],
  ];
  if (dual) rows.push(['x_block.attn2.qkv', ['attn2.to_q', 'attn2.to_k', 'attn2.to_v'], 3 * H, H], ['x_block.attn2.proj', 'attn2.to_out.0', H, H]);
  if (!last) rows.push(['context_block.attn.proj', 'attn.to_add_out', H, H], ['context_block.mlp.fc1', 'ff_context.net.0.proj', W.f, H], ['context_block.mlp.fc2', 'ff_context.net.2', H, W.f]);
  return rows.map(([o, d, out, inp, swap]) => [`joint_blocks.${i}.${o}`, typeof d === 'string' ? `transformer_blocks.${i}.${d}` : d.map((p) => `transformer_blocks.${i}.${p}`), out, inp, swap]);
}
const IN_ROWS: Row[] = [
  ['t_embedder.mlp.0', 'time_text_embed.timestep_embedder.linear_1', H, W.fq],
  ['t_embedder.mlp.2', 'time_text_embed.timestep_embedder.linear_2', H, H],
  ['y_embedder.mlp.0', 'time_text_embed.text_embedder.linear_1', H, W.y],
  ['y_embedder.mlp.2', 'time_text_embed.text_embedder.linear_2', H, H],
  ['context_embedder', 'context_embedder', H, W.ctx],
];
const OUT_ROWS: Row[] = [
  ['final_layer.linear', 'proj_out', W.oc, H],
  ['final_layer.adaLN_modulation.1', 'norm_out.linear', 2 * H, H, true],
];

/** Every linear of a model: its blocks, then the embedders and the final layer. */
function rows(size = MEDIUM): Row[] {
  return [...Array.from({ length: size.blocks }, (_, i) => blockRows(i, size)).flat(), ...IN_ROWS, ...OUT_ROWS];
}
const ROWS = rows();

/** The LoRA modules of a file in original or diffusers names, factors from `seed`. */
const units = (naming: Naming, seed: number, table: readonly Row[] = ROWS): RowUnit[] => rowUnits(table, naming, seed, H);
const expected = rowDeltas;

type Layout = RowLayout;
const ab = (r: 'down' | 'up' | 'alpha') => (r === 'down' ? 'A' : 'B');
const downUp = (n: string, r: 'down' | 'up' | 'alpha') => `${n}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}`;

/** The layouts of docs/model-families.md §5.2 (ComfyUI diff / diff_b, LoKr and the text encoders have their own tests). */
const LAYOUTS: Layout[] = [
  { name: 'kohya / sd-scripts lora_sd3 (lora_unet_)', naming: 'original', alpha: true, key: (n, r) => downUp(`lora_unet_${us(n)}`, r) },
  { name: 'ComfyUI-saved (diffusion_model. lora_down + alpha)', naming: 'original', alpha: true, key: (n, r) => downUp(`diffusion_model.${n}`, r) },
  { name: 'diffusers / PEFT, diffusion-pipe (transformer.)', naming: 'diffusers', alpha: false, key: (n, r) => `transformer.${n}.lora_${ab(r)}.weight` },
  { name: 'PEFT raw save (base_model.model. + adapter name)', naming: 'diffusers', alpha: false, key: (n, r) => `base_model.model.${n}.lora_${ab(r)}.default.weight` },
  { name: 'OneTrainer (lora_transformer_ + diffusers names)', naming: 'diffusers', alpha: true, key: (n, r) => downUp(`lora_transformer_${us(n)}`, r) },
  { name: 'SimpleTuner LyCORIS (lycoris_ + diffusers names)', naming: 'diffusers', alpha: true, key: (n, r) => downUp(`lycoris_${us(n)}`, r) },
];
const KOHYA = LAYOUTS[0]!;
const COMFY = LAYOUTS[1]!;
const DIFFUSERS = LAYOUTS[2]!;
const SD3_META = { ss_base_model_version: '5-medium', 'modelspec.architecture': 'stable-diffusion-3-5-medium/lora' };

const writeLayout = (path: string, layout: Layout, mods: readonly RowUnit[], alpha = RANK, metadata: Record<string, string> = SD3_META) => writeRowLayout(path, layout, mods, { alpha, metadata });

const { original: ORIG, diffusers: DIF, want: { original: WANT_ORIG }, unitsOf, wantOf } = bothNamings(ROWS, H);

const tensor = (name: string, shape: number[]) => ({ name, shape });
const keyInfos = (layout: Layout, mods: readonly RowUnit[]) => mods.flatMap((m) => [tensor(layout.key(m.name, 'down'), [RANK, m.in]), tensor(layout.key(m.name, 'up'), [m.out, RANK])]);

describe('SD3.5 LoRAs: every layout read, by value', () => {
  itReadsEveryRowLayout({ id: 'sd3', layouts: LAYOUTS, metadata: SD3_META, file: (name) => tmp.path(name), units: unitsOf, want: wantOf });

  it('SD3.5-large (38 blocks, no attn2): kohya and diffusers files read by value, the context adaLN of block 37 swapped, of block 23 not', async () => {
    const table = rows(LARGE);
    for (const [layout, naming] of [[KOHYA, 'original'], [DIFFUSERS, 'diffusers']] as const) {
      const mods = units(naming, 5, table);
      const path = join(tmp.dir, `large-${naming}.safetensors`);
      await writeLayout(path, layout, mods, RANK, { ss_base_model_version: '5-large' });
      const set = await readLora(path);
      expect(set.architecture).toBe('sd3');
      expect(set.unknownKeys).toEqual([]);
      expect(await deltaError(set, expected(mods))).toBeLessThan(1e-6);
      await set.close();
    }
    expect(table.find((r) => r[0] === 'joint_blocks.37.context_block.adaLN_modulation.1')).toEqual(['joint_blocks.37.context_block.adaLN_modulation.1', 'transformer_blocks.37.norm1_context.linear', 2 * H, H, true]);
    expect(table.find((r) => r[0] === 'joint_blocks.23.context_block.adaLN_modulation.1')?.[2]).toBe(6 * H);
  });

  it('diffusers parts land as rows of the fused qkv (attn, add_*_proj, attn2); a dual block\'s norm1.linear is 9h rows; only the last context adaLN and norm_out swap', async () => {
    const path = join(tmp.dir, 'parts.safetensors');
    await writeLayout(path, DIFFUSERS, DIF, RANK, {});
    const set = await readLora(path);
    const patch = (module: string) => set.patches.find((p) => p.source.module === `transformer.${module}`)!;
    expect(patch('transformer_blocks.3.attn.to_q')).toMatchObject({ target: 'joint_blocks.3.x_block.attn.qkv.weight', rows: [0, H] });
    expect(patch('transformer_blocks.3.attn.to_k').rows).toEqual([H, H]);
    expect(patch('transformer_blocks.3.attn.add_v_proj')).toMatchObject({ target: 'joint_blocks.3.context_block.attn.qkv.weight', rows: [2 * H, H] });
    expect(patch('transformer_blocks.12.attn2.to_v')).toMatchObject({ target: 'joint_blocks.12.x_block.attn2.qkv.weight', rows: [2 * H, H] });
    expect(patch('transformer_blocks.12.attn2.to_out.0').target).toBe('joint_blocks.12.x_block.attn2.proj.weight');
    expect(patch('transformer_blocks.12.norm1.linear').adapter).toMatchObject({ up: { shape: [9 * H, RANK] } });
    expect(patch('transformer_blocks.13.norm1.linear').adapter).toMatchObject({ up: { shape: [6 * H, RANK] } });
    expect(patch('transformer_blocks.23.attn.to_out.0').target).toBe('joint_blocks.23.x_block.attn.proj.weight');
    // the stored up against the read one: halves exchanged for block 23's context adaLN and norm_out, nowhere else
    const file = await SafetensorsFile.open(path);
    const swapped = async (module: string) => {
      const stored = await file.readF32(`transformer.${module}.lora_B.weight`);
      const read = await (patch(module).adapter as { up: { f32(): Promise<Float32Array> } }).up.f32();
      const half = stored.length / 2;
      const same = read.every((v, i) => v === stored[i]);
      const exchanged = read.every((v, i) => v === stored[(i + half) % stored.length]);
      return same ? 'same' : exchanged ? 'swapped' : 'other';
    };
    expect(await swapped('transformer_blocks.23.norm1_context.linear')).toBe('swapped');
    expect(await swapped('norm_out.linear')).toBe('swapped');
    expect(await swapped('transformer_blocks.22.norm1_context.linear')).toBe('same');
    expect(await swapped('transformer_blocks.0.norm1.linear')).toBe('same');
    await file.close();
    await set.close();
  });

  it('alpha scales: an sd-scripts file at alpha 2 (rank 4) reads at scale ½', async () => {
    const path = join(tmp.dir, 'alpha.safetensors');
    await writeLayout(path, KOHYA, ORIG, 2);
    const set = await readLora(path);
    expect(await deltaError(set, WANT_ORIG, 0.5)).toBeLessThan(1e-6);
    await set.close();
  });

  it('sd-scripts split_qkv files: each fused qkv (x, attn2, context) at 3× its block\'s proj rank is reported as split_qkv', () => {
    const lora = (name: string, out: number, rank: number) => [tensor(`lora_unet_${us(name)}.lora_down.weight`, [rank, H]), tensor(`lora_unet_${us(name)}.lora_up.weight`, [out, rank])];
    const tensors = ['x_block.attn', 'x_block.attn2', 'context_block.attn'].flatMap((a) => [...lora(`joint_blocks.5.${a}.qkv`, 3 * H, 3 * RANK), ...lora(`joint_blocks.5.${a}.proj`, H, RANK)]);
    const d = detectFormat(tensors, { ss_network_args: JSON.stringify({ split_qkv: 'True' }), ss_network_module: 'networks.lora_sd3' });
    expect(d.architecture).toBe('sd3');
    expect(d.splitQkv).toBe(true);
    expect(d.evidence.join('\n')).toMatch(/split_qkv: 3 fused qkv/);
  });

  it('LyCORIS LoKr under diffusers names, the swapped last context adaLN among them: ΔW = w1 ⊗ (w2a·w2b) · alpha/r with its halves in original order', async () => {
    const picked = DIF.filter((u) => /^transformer_blocks\.(?:12|23)\.(?:attn\.to_out\.0|norm1_context\.linear|norm1\.linear)$/.test(u.name));
    expect(picked).toHaveLength(6);
    const entries: TensorEntry[] = [];
    const want = new Map<string, Float64Array>();
    const F = 2;
    const R = 2;
    for (const u of picked) {
      const half = u.out / 2;
      const rowOf = (row: number) => (u.swap ? (row < half ? row + half : row - half) : row);
      const m = lokrModule(`lycoris_${us(u.name)}`, keyedRandom(`lokr ${u.name}`, 7), { f: F, r: R, out: u.out, inp: u.in, rowOf });
      entries.push(...m.entries);
      want.set(`${u.target}.weight`, m.delta);
    }
    const path = join(tmp.dir, 'lokr.safetensors');
    await writeSafetensors(path, entries);
    const set = await readLora(path);
    expect(set.architecture).toBe('sd3');
    expect(set.unknownKeys).toEqual([]);
    expect(await deltaError(set, want)).toBeLessThan(1e-6);
    await set.close();
  });

  it('ComfyUI diff / diff_b (extracted files): LoRA, bias diffs and the QK norm diffs of x, context and attn2 all placed', async () => {
    const lora = ORIG.filter((u) => u.name === 'joint_blocks.3.x_block.attn.qkv' || u.name === 'joint_blocks.3.context_block.attn.proj');
    const bias = (n: number) => Float32Array.from({ length: n }, (_, i) => i / 10);
    const entries: TensorEntry[] = [
      ...lora.flatMap((u) => [f32(`diffusion_model.${u.name}.lora_down.weight`, [RANK, u.in], u.down), f32(`diffusion_model.${u.name}.lora_up.weight`, [u.out, RANK], u.up)]),
      f32('diffusion_model.joint_blocks.3.x_block.attn.qkv.diff_b', [3 * H], bias(3 * H)),
      f32('diffusion_model.joint_blocks.3.x_block.mlp.fc2.diff', [H, W.f], bias(H * W.f)),
      ...['x_block.attn.ln_q', 'x_block.attn.ln_k', 'context_block.attn.ln_q', 'x_block.attn2.ln_k'].map((n) => f32(`diffusion_model.joint_blocks.3.${n}.diff`, [W.hd], bias(W.hd))),
    ];
    const path = join(tmp.dir, 'diffs.safetensors');
    await writeSafetensors(path, entries);
    const set = await readLora(path);
    expect(set.architecture).toBe('sd3');
    expect(set.unknownKeys).toEqual([]);
    expect(set.patches.map((p) => `${p.adapter.kind} ${p.target}`).sort()).toEqual([
      'full joint_blocks.3.context_block.attn.ln_q.weight', 'full joint_blocks.3.x_block.attn.ln_k.weight', 'full joint_blocks.3.x_block.attn.ln_q.weight', 'full joint_blocks.3.x_block.attn.qkv.bias',
      'full joint_blocks.3.x_block.attn2.ln_k.weight', 'full joint_blocks.3.x_block.mlp.fc2.weight', 'lora joint_blocks.3.context_block.attn.proj.weight', 'lora joint_blocks.3.x_block.attn.qkv.weight',
    ]);
    const got = await referenceDeltas(set);
    expect([...got.get('transformer:joint_blocks.3.x_block.attn.qkv.bias')!.data]).toEqual([...bias(3 * H)].map((v) => Math.fround(v)));
    await set.close();
  });

  it('the patch embedding (sd-scripts emb_dims): a Conv2d LoRA on x_embedder.proj [h, c, p, p] reads, and converts to diffusers pos_embed.proj and back, by value', async () => {
    const r = keyedRandom('x_embedder', 3);
    const down = Float32Array.from({ length: RANK * W.c * W.p * W.p }, () => r() - 0.5);
    const up = Float32Array.from({ length: H * RANK }, () => r() - 0.5);
    const cols = W.c * W.p * W.p;
    const want = new Float64Array(H * cols);
    for (let i = 0; i < H; i++) for (let k = 0; k < RANK; k++) for (let j = 0; j < cols; j++) want[i * cols + j]! += up[i * RANK + k]! * down[k * cols + j]!;
    const path = join(tmp.dir, 'conv.safetensors');
    const qkv = ORIG.find((u) => u.name === 'joint_blocks.0.x_block.attn.qkv')!;
    await writeSafetensors(path, [
      f32('lora_unet_x_embedder_proj.lora_down.weight', [RANK, W.c, W.p, W.p], down),
      f32('lora_unet_x_embedder_proj.lora_up.weight', [H, RANK, 1, 1], up),
      f32('lora_unet_x_embedder_proj.alpha', [], Float32Array.of(RANK)),
      f32('lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight', [RANK, H], qkv.down),
      f32('lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight', [3 * H, RANK], qkv.up),
    ]);
    for (const to of [undefined, 'diffusers', 'kohya'] as const) {
      let file = path;
      if (to) {
        file = join(tmp.dir, `conv-${to}.safetensors`);
        await convertLora(path, file, { to });
      }
      const set = await readLora(file);
      expect(set.architecture, to).toBe('sd3');
      expect(set.unknownKeys, to).toEqual([]);
      const got = (await referenceDeltas(set)).get('transformer:x_embedder.proj.weight')!;
      expect(got.cols, to).toBe(cols);
      expect(Math.max(...got.data.map((v, i) => Math.abs(v - want[i]!)))).toBeLessThan(1e-6);
      if (to === 'diffusers') {
        const f = await SafetensorsFile.open(file);
        expect(f.tensors.map((t) => t.name)).toContain('transformer.pos_embed.proj.lora_A.weight');
        await f.close();
      }
      await set.close();
    }
  });

  it('constructed full-width key lists (test/fixtures/families/sd3): family sd3, every module placed, with and without metadata', () => {
    const dir = join(import.meta.dirname, 'fixtures', 'families', 'sd3');
    // per doc §5.2: kohya large 37 blocks × 10 + the last block's 7; diffusers medium 13 dual × 16 + 10 × 12 + the last block's 9
    const modules: Record<string, number> = { 'kohya-sd35-large.txt': 37 * 10 + 7, 'diffusers-peft-sd35-medium.txt': 13 * 16 + 10 * 12 + 9 };
    const files = readdirSync(dir).sort();
    expect(files).toEqual(Object.keys(modules).sort());
    for (const file of files) {
      const tensors = readKeyList(join(dir, file));
      for (const metadata of [undefined, { ss_base_model_version: '5-large' }, { 'modelspec.architecture': 'stable-diffusion-3-5-medium/lora' }]) {
        const d = detectFormat(tensors, metadata);
        expect(d.architecture, file).toBe('sd3');
        expect(d.unknownKeys, file).toEqual([]);
        expect(d.modules.length, file).toBe(modules[file]);
        expect(d.modules.every((m) => /^joint_blocks\.\d+\.(?:x_block|context_block)\./.test(m.target)), file).toBe(true);
      }
      const last = file.startsWith('kohya') ? 37 : 23;
      const d = detectFormat(tensors);
      expect(d.coverage.blocks, file).toEqual(Array.from({ length: last + 1 }, (_, i) => `B${String(i).padStart(2, '0')}`));
    }
  });
});

describe('SD3.5 samples (loraflow samples)', () => {
  it('the base is SD3.5-medium shrunk, every weight at its block\'s shape: attn2 and a 9h x adaLN in 0–12, the last block context-pre-only with a 2h context adaLN', async () => {
    const h = SD3.samples!.widths.h!;
    const path = join(tmp.dir, 'sample-base.safetensors');
    await writeTableCheckpoint(path, SD3);
    const file = await SafetensorsFile.open(path);
    const shape = (k: string) => (file.has(`model.diffusion_model.${k}`) ? file.info(`model.diffusion_model.${k}`).shape : undefined);
    expect(shape('joint_blocks.12.x_block.attn2.qkv.weight')).toEqual([3 * h, h]);
    expect(shape('joint_blocks.13.x_block.attn2.qkv.weight')).toBeUndefined();
    expect(shape('joint_blocks.12.x_block.adaLN_modulation.1.weight')).toEqual([9 * h, h]);
    expect(shape('joint_blocks.13.x_block.adaLN_modulation.1.weight')).toEqual([6 * h, h]);
    expect(shape('joint_blocks.22.context_block.adaLN_modulation.1.weight')).toEqual([6 * h, h]);
    expect(shape('joint_blocks.23.context_block.adaLN_modulation.1.weight')).toEqual([2 * h, h]);
    expect(shape('joint_blocks.22.context_block.mlp.fc2.weight')).toBeDefined();
    for (const k of ['attn.proj', 'mlp.fc1', 'mlp.fc2']) expect(shape(`joint_blocks.23.context_block.${k}.weight`), k).toBeUndefined();
    expect(shape('joint_blocks.23.context_block.attn.qkv.weight')).toEqual([3 * h, h]);
    expect(shape('x_embedder.proj.weight')).toEqual([h, SD3.samples!.widths.c, 2, 2]);
    expect(file.tensors.filter((t) => /^model\.diffusion_model\.joint_blocks\.\d+\.x_block\.attn\.qkv\.weight$/.test(t.name))).toHaveLength(24);
    await file.close();
  });

  it('the sample LoRA (sd-scripts\' default targets) written in diffusers layout reads back with the same ΔW, its last context adaLN swapped out and back', async () => {
    const set = sampleTableLora(SD3, 22);
    expect(set.patches.find((p) => p.target === 'joint_blocks.23.context_block.adaLN_modulation.1.weight')?.adapter).toMatchObject({ up: { shape: [2 * SD3.samples!.widths.h!, 4] } });
    const path = join(tmp.dir, 'sample-diffusers.safetensors');
    await writeTableLora(path, SD3, 'diffusers', 22);
    const back = await readLora(path);
    expect(back).toMatchObject({ architecture: 'sd3', format: 'diffusers', unknownKeys: [] });
    const [want, got] = [await referenceDeltas(set), await referenceDeltas(back)];
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    // written in F16: normwise relative error of two f16-rounded factors (a misplaced half would be ~1)
    for (const [k, d] of want) {
      const g = got.get(k)!.data;
      const err = Math.max(...g.map((v, i) => Math.abs(v - d.data[i]!))) / Math.max(...d.data.map(Math.abs));
      expect(err, k).toBeLessThan(2e-3);
    }
    await back.close();
  });
});

describe('SD3.5 text encoders: CLIP-L, CLIP-G and T5-XXL', () => {
  // shrunk encoder widths: [out, in] of each linear
  const D = 12;
  const TE: [prefix: { kohya: string; diffusers?: string; comfy: string }, component: string, module: string, out: number, inp: number][] = [
    [{ kohya: 'lora_te1_', diffusers: 'text_encoder.', comfy: 'text_encoders.clip_l.transformer.' }, 'clip_l', 'text_model.encoder.layers.3.self_attn.q_proj', D, D],
    [{ kohya: 'lora_te1_', diffusers: 'text_encoder.', comfy: 'text_encoders.clip_l.transformer.' }, 'clip_l', 'text_model.encoder.layers.11.mlp.fc1', 4 * D, D],
    [{ kohya: 'lora_te2_', diffusers: 'text_encoder_2.', comfy: 'text_encoders.clip_g.transformer.' }, 'clip_g', 'text_model.encoder.layers.31.self_attn.out_proj', D, D],
    [{ kohya: 'lora_te2_', diffusers: 'text_encoder_2.', comfy: 'text_encoders.clip_g.transformer.' }, 'clip_g', 'text_model.encoder.layers.0.mlp.fc2', D, 4 * D],
    [{ kohya: 'lora_te3_', comfy: 'text_encoders.t5xxl.transformer.' }, 't5', 'encoder.block.5.layer.0.SelfAttention.q', D, D],
    [{ kohya: 'lora_te3_', comfy: 'text_encoders.t5xxl.transformer.' }, 't5', 'encoder.block.23.layer.1.DenseReluDense.wi_1', 3 * D, D],
  ];
  const factors = TE.map(([, , module, out, inp]) => {
    const r = keyedRandom(`te ${module}`, 4);
    return { down: Float32Array.from({ length: RANK * inp }, () => r() - 0.5), up: Float32Array.from({ length: out * RANK }, () => r() - 0.5) };
  });
  const teWant = new Map(
    TE.map(([, component, module, out, inp], n) => {
      const d = new Float64Array(out * inp);
      const { down, up } = factors[n]!;
      for (let i = 0; i < out; i++) for (let k = 0; k < RANK; k++) for (let j = 0; j < inp; j++) d[i * inp + j]! += up[i * RANK + k]! * down[k * inp + j]!;
      return [`${component}:${module}.weight`, d] as const;
    }),
  );
  const transformer = ORIG.filter((u) => /^joint_blocks\.(?:0|23)\./.test(u.name));

  async function expectTe(set: AdapterSet, which: (key: string) => boolean, what: string): Promise<void> {
    const got = await referenceDeltas(set);
    const want = [...teWant].filter(([k]) => which(k));
    expect([...got.keys()].filter((k) => !k.startsWith('transformer:')).sort(), what).toEqual(want.map(([k]) => k).sort());
    for (const [k, d] of want) expect(Math.max(...got.get(k)!.data.map((v, i) => Math.abs(v - d[i]!))), `${what} ${k}`).toBeLessThan(1e-6);
    expect(await deltaError({ patches: set.patches.filter((p) => p.component === 'transformer') }, expected(transformer)), what).toBeLessThan(1e-6);
  }

  it('sd-scripts lora_te1_ / lora_te2_ / lora_te3_ read as CLIP-L, CLIP-G, T5 by value; kohya and comfyui keep all three, diffusers refuses T5', async () => {
    const path = join(tmp.dir, 'te-src.safetensors');
    await writeSafetensors(path, [
      ...transformer.flatMap((u) => [f32(KOHYA.key(u.name, 'down'), [RANK, u.in], u.down), f32(KOHYA.key(u.name, 'up'), [u.out, RANK], u.up), f32(KOHYA.key(u.name, 'alpha'), [], Float32Array.of(RANK))]),
      ...TE.flatMap(([prefix, , module, out, inp], n) => [f32(`${prefix.kohya}${us(module)}.lora_down.weight`, [RANK, inp], factors[n]!.down), f32(`${prefix.kohya}${us(module)}.lora_up.weight`, [out, RANK], factors[n]!.up)]),
    ], { metadata: { ss_base_model_version: '5-large', ss_network_module: 'networks.lora_sd3' } });
    const set = await readLora(path);
    expect(set.architecture).toBe('sd3');
    expect(set.unknownKeys).toEqual([]);
    expect(new Set(set.patches.map((p) => p.component))).toEqual(new Set(['transformer', 'clip_l', 'clip_g', 't5']));
    await expectTe(set, () => true, 'read');
    const file = await SafetensorsFile.open(path);
    const d = detectFormat(file.tensors);
    await file.close();
    expect(d.coverage.textEncoders).toEqual({ clip_l: [3, 11], clip_g: [0, 31], t5: [5, 23] });

    for (const [to, prefixes] of [['kohya', ['lora_te1_', 'lora_te2_', 'lora_te3_']], ['comfyui', ['text_encoders.clip_l.transformer.', 'text_encoders.clip_g.transformer.', 'text_encoders.t5xxl.transformer.']]] as const) {
      const out = join(tmp.dir, `te-${to}.safetensors`);
      await convertLora(path, out, { to });
      const file = await SafetensorsFile.open(out);
      for (const p of prefixes) expect(file.tensors.some((t) => t.name.startsWith(p)), `${to} ${p}`).toBe(true);
      await file.close();
      const back = await readLora(out);
      expect(back.architecture, to).toBe('sd3');
      expect(back.unknownKeys, to).toEqual([]);
      await expectTe(back, () => true, to);
      await back.close();
    }
    const out = join(tmp.dir, 'te-diffusers.safetensors');
    await expect(convertLora(path, out, { to: 'diffusers' })).rejects.toThrow(/diffusers files for SD3\.5 have no place for the t5 component/);
    await expect(SafetensorsFile.open(out)).rejects.toThrow();
    await set.close();
  });

  it('diffusers text_encoder. / text_encoder_2. beside SD3.5-large diffusers blocks (no SD3-only name): SD3, not SDXL; CLIP-L / CLIP-G by value and written back there', async () => {
    const path = join(tmp.dir, 'te-diffusers-src.safetensors');
    const large = units('diffusers', 6, rows(LARGE)).filter((u) => /^transformer_blocks\.(?:0|37)\./.test(u.name));
    const clips = TE.map((t, n) => [t, n] as const).filter(([t]) => t[0].diffusers);
    await writeSafetensors(path, [
      ...large.flatMap((u) => [f32(`transformer.${u.name}.lora_A.weight`, [RANK, u.in], u.down), f32(`transformer.${u.name}.lora_B.weight`, [u.out, RANK], u.up)]),
      ...clips.flatMap(([[prefix, , module, out, inp], n]) => [f32(`${prefix.diffusers}${module}.lora_A.weight`, [RANK, inp], factors[n]!.down), f32(`${prefix.diffusers}${module}.lora_B.weight`, [out, RANK], factors[n]!.up)]),
    ]);
    const set = await readLora(path);
    expect(set.architecture).toBe('sd3');
    expect(set.unknownKeys).toEqual([]);
    const got = await referenceDeltas(set);
    const clipWant = [...teWant].filter(([k]) => !k.startsWith('t5:'));
    expect([...got.keys()].filter((k) => !k.startsWith('transformer:')).sort()).toEqual(clipWant.map(([k]) => k).sort());
    for (const [k, d] of clipWant) expect(Math.max(...got.get(k)!.data.map((v, i) => Math.abs(v - d[i]!))), k).toBeLessThan(1e-6);
    expect(await deltaError({ patches: set.patches.filter((p) => p.component === 'transformer') }, expected(large))).toBeLessThan(1e-6);
    const out = join(tmp.dir, 'te-diffusers-out.safetensors');
    await convertLora(path, out, { to: 'diffusers' });
    const file = await SafetensorsFile.open(out);
    const names = file.tensors.map((t) => t.name);
    expect(names).toContain('text_encoder.text_model.encoder.layers.3.self_attn.q_proj.lora_A.weight');
    expect(names).toContain('text_encoder_2.text_model.encoder.layers.31.self_attn.out_proj.lora_B.weight');
    expect(names).toContain('transformer.transformer_blocks.37.norm1_context.linear.lora_B.weight');
    await file.close();
    await set.close();
  });

  it('a text-encoder-only SD3 LoRA (CLIP-L, CLIP-G, T5) is SD3; CLIP-L + CLIP-G alone stays SDXL, CLIP-L + T5 FLUX.1', () => {
    const te = (which: (component: string) => boolean) =>
      TE.filter(([, c]) => which(c)).flatMap(([prefix, , module, out, inp]) => [tensor(`${prefix.kohya}${us(module)}.lora_down.weight`, [RANK, inp]), tensor(`${prefix.kohya}${us(module)}.lora_up.weight`, [out, RANK])]);
    const all = detectFormat(te(() => true));
    expect(all.architecture).toBe('sd3');
    expect(all.unknownKeys).toEqual([]);
    expect(detectFormat(te((c) => c !== 't5')).architecture).toBe('sdxl');
    expect(detectFormat(te((c) => c !== 'clip_g')).architecture).toBe('flux');
  });
});

describe('SD3.5 detection: the diffusers names FLUX.1 and Qwen-Image share', () => {
  const attention = (size: Size, h: number, blocks: (i: number) => boolean) =>
    rows(size).filter(([o]) => blocks(Number(/^joint_blocks\.(\d+)\./.exec(o)?.[1] ?? -1)) && /\.attn\.qkv$/.test(o)).flatMap(([, dif]) => (dif as string[]).flatMap((n) => [tensor(`transformer.${n}.lora_A.weight`, [RANK, h]), tensor(`transformer.${n}.lora_B.weight`, [h, RANK])]));

  it('split attention only: SD3 by its hidden width (1536 / 2432) at any depth, by depth at other widths; FLUX.1 and Qwen-Image widths stay theirs', () => {
    // 10 blocks: too shallow for the depth rule; SD3.5-medium / large widths say SD3
    expect(detectFormat(attention(MEDIUM, 1536, (i) => i < 10)).architecture).toBe('sd3');
    expect(detectFormat(attention(LARGE, 2432, (i) => i < 10)).architecture).toBe('sd3');
    // FLUX.1's 3072 on the same names and depth: FLUX.1
    expect(detectFormat(attention(MEDIUM, 3072, (i) => i < 10)).architecture).toBe('flux');
    // Qwen-Image's 60 blocks at 3072 are Qwen-Image, 38 blocks at any width SD3
    const qwen = Array.from({ length: 60 }, (_, i) => ['attn.to_q', 'attn.add_k_proj'].map((m) => `transformer_blocks.${i}.${m}`)).flat().flatMap((n) => [tensor(`transformer.${n}.lora_A.weight`, [RANK, 3072]), tensor(`transformer.${n}.lora_B.weight`, [3072, RANK])]);
    expect(detectFormat(qwen).architecture).toBe('qwen-image');
    expect(detectFormat(attention(LARGE, 64, () => true)).architecture).toBe('sd3');
    // shallow and shrunk: sd-scripts' metadata says SD3
    expect(detectFormat(attention(MEDIUM, 64, (i) => i < 10), { ss_base_model_version: '5-medium' }).architecture).toBe('sd3');
    expect(detectFormat(attention(MEDIUM, 64, (i) => i < 10), { 'modelspec.architecture': 'stable-diffusion-3-medium/lora' }).architecture).toBe('sd3');
  });

  it('full diffusers SD3.5 files (to_out, ff, ff_context, norm1_context) are SD3, not FLUX.1; FLUX.1 and Qwen-Image files stay theirs', async () => {
    expect(detectFormat(keyInfos(DIFFUSERS, DIF)).architecture).toBe('sd3');
    // no attn2, blocks 13–18 only, shrunk widths: nothing SD3-only left but norm_out / proj_out shared with FLUX: FLUX.1 unless the metadata says SD3
    const shallow = DIF.filter((u) => /^transformer_blocks\.1[3-8]\./.test(u.name) || !u.name.startsWith('transformer_blocks.'));
    expect(detectFormat(keyInfos(DIFFUSERS, shallow)).architecture).toBe('flux');
    expect(detectFormat(keyInfos(DIFFUSERS, shallow), SD3_META).architecture).toBe('sd3');
    // original names with the embedders FLUX.1 also names (x_embedder, final_layer): SD3
    const withEmb = [...keyInfos(KOHYA, ORIG), tensor('lora_unet_x_embedder_proj.lora_down.weight', [RANK, W.c, W.p, W.p]), tensor('lora_unet_x_embedder_proj.lora_up.weight', [H, RANK, 1, 1])];
    const d = detectFormat(withEmb);
    expect(d.architecture).toBe('sd3');
    expect(d.unknownKeys).toEqual([]);

    for (const format of ['aitoolkit', 'diffusers', 'kohya', 'comfyui', 'onetrainer', 'xlabs'] as SampleFormat[]) {
      const shapes = sampleKeyShapes({ format });
      expect(detectFormat(Object.entries(shapes).map(([name, shape]) => ({ name, shape }))).architecture, format).toBe('flux');
    }
    for (const name of FIXTURE_NAMES) {
      expect(detectFormat(Object.entries(fixtureKeyShapes(name)).map(([n, shape]) => ({ name: n, shape }))).architecture, name).toBe('flux');
    }
    const dir = join(import.meta.dirname, 'fixtures', 'families', 'qwen-image');
    for (const file of readdirSync(dir)) {
      const tensors = readKeyList(join(dir, file));
      expect(detectFormat(tensors).architecture, file).toBe('qwen-image');
    }
    const path = join(tmp.dir, 'flux1.safetensors');
    await writeSampleLora(path, { format: 'diffusers' });
    const flux = await readLora(path);
    expect(flux.architecture).toBe('flux');
    await flux.close();
  });

  it('inspect: IN, B00–B23, OUT coverage, and the medium / large vector lengths', async () => {
    const d = detectFormat(keyInfos(KOHYA, ORIG));
    expect(d.coverage.blocks).toEqual([...Array.from({ length: 24 }, (_, i) => `B${String(i).padStart(2, '0')}`), 'IN', 'OUT']);
    expect(formatDetection(d)).toMatch(/coverage: {5}blocks 24 \(0–23\); IN, OUT/);
    const path = join(tmp.dir, 'vectors.safetensors');
    await writeLayout(path, KOHYA, ORIG);
    const set = await readLora(path);
    expect(applyBlockWeights(set, Array.from({ length: 40 }, (_, i) => (i === 39 ? 0 : 1))).report.dropped).toHaveLength(OUT_ROWS.length);
    expect(() => applyBlockWeights(set, Array.from({ length: 30 }, () => 1))).toThrow(/26 or 40 values/);
    await set.close();
  });
});

/** A LoRA writer of one layout for the shared operation suite: the medium table, factors from the seed. */
const writer = (layout: Layout, metadata: Record<string, string> = SD3_META) => rowWriter(layout, (seed, count) => units(layout.naming, seed).slice(0, count), metadata);

const BLOCK_MODULES = (i: number) => blockRows(i, MEDIUM).length;
const dropped = (blocks: number[]) => blocks.reduce((n, i) => n + BLOCK_MODULES(i), 0);

describeTableFamilyOperations({
  id: 'sd3',
  label: 'SD3.5',
  convert: {
    sources: [writer(KOHYA), writer(DIFFUSERS)],
    names: [
      {
        to: 'kohya',
        contains: ['lora_unet_joint_blocks_23_context_block_adaLN_modulation_1.lora_up.weight', 'lora_unet_joint_blocks_12_x_block_attn2_qkv.lora_down.weight', 'lora_unet_joint_blocks_0_context_block_mlp_fc1.alpha', 'lora_unet_final_layer_adaLN_modulation_1.lora_up.weight'],
        all: /^lora_unet_/,
      },
      { to: 'comfyui', some: /^diffusion_model\.joint_blocks\.12\.x_block\.attn2\.proj\./, all: /^diffusion_model\./ },
      {
        to: 'diffusers',
        contains: ['transformer.transformer_blocks.0.attn.to_q.lora_A.weight', 'transformer.transformer_blocks.12.attn2.to_k.lora_B.weight', 'transformer.transformer_blocks.22.attn.to_add_out.lora_A.weight', 'transformer.transformer_blocks.23.norm1_context.linear.lora_B.weight', 'transformer.transformer_blocks.23.attn.add_v_proj.lora_A.weight', 'transformer.time_text_embed.text_embedder.linear_1.lora_A.weight', 'transformer.norm_out.linear.lora_B.weight'],
        all: /^transformer\./,
      },
      { to: 'diffusers', all: /^transformer\.transformer_blocks\.23\.(?:attn\.(?:to_[qkv]|to_out\.0|add_[qkv]_proj)|ff\.net\.(?:0\.proj|2)|norm1(?:_context)?\.linear)\./, within: /^transformer\.transformer_blocks\.23\./ },
    ],
    kohyaMetadata: { source: writer(DIFFUSERS, {}), count: 20, want: { ss_network_module: 'networks.lora_sd3', 'modelspec.architecture': 'stable-diffusion-3-5-medium/lora' } },
  },
  merge: { a: writer(KOHYA), b: writer(DIFFUSERS), rank: 4 * RANK },
  resize: { source: writer(COMFY) },
  blocks: {
    source: writer(COMFY),
    groups: [{ prefix: 'joint_blocks.', id: 'B', count: MEDIUM.blocks }],
    in: IN_ROWS.map((r) => r[0]),
    out: OUT_ROWS.map((r) => r[0]),
    weighted: [
      { spec: 'B00-B03=0,B12=0.5,B23=3,IN=0.25,OUT=2', weight: (b) => ({ IN: 0.25, OUT: 2, B12: 0.5, B23: 3 })[b] ?? (blockIndex(b) < 4 ? 0 : 1), dropped: dropped([0, 1, 2, 3]) },
      // a 26-value vector is IN, B00…B23, OUT in that order
      { spec: [0, ...Array.from({ length: 24 }, (_, i) => (i === 13 ? 0 : 1)), 0], dropped: dropped([13]) + IN_ROWS.length + OUT_ROWS.length },
    ],
    refused: [
      ['D00=0', /unknown block id "D00"/],
      ['B00-B38=0', /past the last SD3\.5 block \(B37\)/],
      [Array.from({ length: 61 }, () => 1), /26 or 40 values/],
    ],
    filters: [['B00', 'in'], ['OUT', 'B23'], ['B12', 'B13']],
  },
  base: {
    linears: ROWS.map(([name, , out, inp]) => [name, out, inp] as const),
    biases: true,
    others: [
      ['x_embedder.proj.weight', [H, W.c, W.p, W.p]],
      ['pos_embed', [1, 16, H]],
      ...['x_block.attn.ln_q', 'x_block.attn.ln_k', 'context_block.attn.ln_q', 'context_block.attn.ln_k', 'x_block.attn2.ln_q', 'x_block.attn2.ln_k'].map((n) => [`joint_blocks.0.${n}.weight`, [W.hd]] as const),
    ],
    prefixes: ['model.diffusion_model.', ''],
  },
  apply: { a: writer(KOHYA), b: writer(DIFFUSERS) },
  extract: {
    deltas: WANT_ORIG,
    targets: /^joint_blocks\.(?:12|23)\.|^final_layer\.|^y_embedder\./,
    format: 'diffusers',
    names: ['transformer.transformer_blocks.23.norm1_context.linear.lora_B.weight', 'transformer.transformer_blocks.12.attn2.to_v.lora_A.weight', 'transformer.transformer_blocks.12.norm1.linear.lora_A.weight', 'transformer.norm_out.linear.lora_B.weight'],
  },
  refusal: {
    source: writer(KOHYA),
    count: 12,
    error: /is a FLUX\.1 checkpoint.*LoRA 1 is a kohya LoRA for SD3\.5/,
    foreignLora: { write: (path) => writeSampleLora(path, { format: 'kohya', blocks: { double: 1, single: 1 } }).then(() => undefined), id: 'flux', error: /is an SD3\.5 checkpoint.*LoRA 1 is a kohya LoRA for FLUX\.1/ },
  },
});
