/**
 * Z-Image (Turbo) end to end on shrunk-width fixtures with the real key names and block counts
 * (30 `layers`, 2 `noise_refiner`, 2 `context_refiner`, the embedders and the final layer): every
 * trainer layout of docs/model-families.md §4.3 read with no unknown key and ΔW equal to a float64
 * reference computed here from a name table written here (diffusers' / musubi-tuner's
 * to_q / to_k / to_v landing as row slices of the original fused attention.qkv, musubi's
 * ComfyUI conversion's fused qkv at rank 3r and alpha 3α, `all_x_embedder.2-1` / `all_final_layer.2-1`
 * with their `-`); the constructed key lists detected as Z-Image with every module placed; other
 * families' files left alone; conversion to every writable layout and back; merge, apply into a
 * Z-Image base, extract, resize, block weights and filters by value; a Z-Image LoRA on a FLUX base
 * refused naming both.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectFormat, formatDetection } from '../src/formats/detect.ts';
import { familyOf } from '../src/formats/families.ts';
import { readLora } from '../src/formats/read.ts';
import { applyBlockWeights } from '../src/lora/blocks.ts';
import { filterPatches } from '../src/lora/filter.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { keyedRandom, writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { blockIndex, describeTableFamilyOperations } from './helpers/table-family-ops.ts';
import { lohaModule } from './helpers/lycoris.ts';
import { RANK, bothNamings, deltaError, f32, itReadsEveryRowLayout, rowDeltas, rowUnits, rowWriter, underscored as us, writeRowLayout, type LoraWriter, type Naming, type RowLayout, type RowUnit } from './helpers/table-family.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { readKeyList, expectFluxFilesStayFlux } from './helpers/key-lists.ts';

const tmp = useTempDir('loraflow-z-image-');

// shrunk widths, all distinct: h hidden, f SwiGLU hidden, hd head, ad adaLN width, fq timestep frequencies, tm t_embedder middle,
// ctx caption features, in patchified latent channels
const H = 16;
const W = { h: H, f: 40, hd: 4, ad: 12, fq: 6, tm: 20, ctx: 28, in: 24 } as const;
const LAYERS = 30;
const REFINERS = 2;

/**
 * Z-Image linears as docs/model-families.md §4.2 states them: original (ComfyUI) name, diffusers name (an array = the
 * diffusers parts of the fused original weight, each h rows, in order), [out, in]. Written here, not taken from the code
 * under test.
 */
type Row = [original: string, diffusers: string | string[], out: number, inp: number];
const BLOCK: Row[] = [
  ['attention.qkv', ['attention.to_q', 'attention.to_k', 'attention.to_v'], 3 * H, H],
  ['attention.out', 'attention.to_out.0', H, H],
  ['feed_forward.w1', 'feed_forward.w1', W.f, H],
  ['feed_forward.w2', 'feed_forward.w2', H, W.f],
  ['feed_forward.w3', 'feed_forward.w3', W.f, H],
];
const MODULATION: Row = ['adaLN_modulation.0', 'adaLN_modulation.0', 4 * H, W.ad];
const IN_ROWS: Row[] = [
  ['x_embedder', 'all_x_embedder.2-1', H, W.in],
  ['t_embedder.mlp.0', 't_embedder.mlp.0', W.tm, W.fq],
  ['t_embedder.mlp.2', 't_embedder.mlp.2', W.ad, W.tm],
  ['cap_embedder.1', 'cap_embedder.1', H, W.ctx],
];
const OUT_ROWS: Row[] = [
  ['final_layer.linear', 'all_final_layer.2-1.linear', W.in, H],
  ['final_layer.adaLN_modulation.1', 'all_final_layer.2-1.adaLN_modulation.1', H, W.ad],
];

/** Block container → its block id for block index i (the forward order: refiners, then layers). */
const CONTAINERS: [container: string, count: number, modulation: boolean, id: (i: number) => string][] = [
  ['noise_refiner', REFINERS, true, (i) => `NR${i}`],
  ['context_refiner', REFINERS, false, (i) => `CR${i}`],
  ['layers', LAYERS, true, (i) => `B${String(i).padStart(2, '0')}`],
];

/** Every original linear of the model: [original path, diffusers path(s), out, in], plus its block id. */
function rows(): (Row & { id?: string })[] {
  const out: (Row & { id?: string })[] = [];
  for (const [c, n, modulation, id] of CONTAINERS) {
    for (let i = 0; i < n; i++) {
      for (const r of modulation ? [...BLOCK, MODULATION] : BLOCK) {
        const row = [`${c}.${i}.${r[0]}`, typeof r[1] === 'string' ? `${c}.${i}.${r[1]}` : r[1].map((p) => `${c}.${i}.${p}`), r[2], r[3]] as Row & { id?: string };
        row.id = id(i);
        out.push(row);
      }
    }
  }
  return [...out, ...IN_ROWS.map((r) => Object.assign([...r] as Row, { id: 'IN' })), ...OUT_ROWS.map((r) => Object.assign([...r] as Row, { id: 'OUT' }))];
}
const ROWS = rows();
const ID_OF = new Map(ROWS.map((r) => [`${r[0]}.weight`, r.id!]));

/** The LoRA modules of a file in original or diffusers names (parts at their rows of the fused qkv), factors from `seed`. */
const units = (naming: Naming, seed: number, table: readonly Row[] = ROWS): RowUnit[] => rowUnits(table, naming, seed, H);
const expected = rowDeltas;

type Layout = RowLayout;
const ab = (r: 'down' | 'up' | 'alpha') => (r === 'down' ? 'A' : 'B');
const kohyaRole = (r: 'down' | 'up' | 'alpha') => (r === 'alpha' ? 'alpha' : `lora_${r}.weight`);

/** The layouts of docs/model-families.md §4.3 (Z1' musubi → ComfyUI has its own test: its qkv is fused at rank 3r). */
const LAYOUTS: Layout[] = [
  { name: 'Z1 musubi-tuner (lora_unet_ + split to_q/to_k/to_v, to_out_0)', naming: 'diffusers', alpha: true, key: (n, r) => `lora_unet_${us(n)}.${kohyaRole(r)}` },
  { name: 'Z2 ai-toolkit (diffusion_model. + diffusers names, lora_A)', naming: 'diffusers', alpha: false, key: (n, r) => `diffusion_model.${n}.lora_${ab(r)}.weight` },
  { name: 'Z3 diffusion-pipe (diffusion_model. + fused qkv / out, lora_A)', naming: 'original', alpha: false, key: (n, r) => `diffusion_model.${n}.lora_${ab(r)}.weight` },
  { name: 'Z4 diffusers / PEFT (transformer.)', naming: 'diffusers', alpha: false, key: (n, r) => `transformer.${n}.lora_${ab(r)}.weight` },
  { name: 'ComfyUI-saved (diffusion_model. + original names, lora_down + alpha)', naming: 'original', alpha: true, key: (n, r) => `diffusion_model.${n}.${kohyaRole(r)}` },
  { name: 'kohya with original names (lora_unet_ + fused qkv, same rank as its block)', naming: 'original', alpha: true, key: (n, r) => `lora_unet_${us(n)}.${kohyaRole(r)}` },
  { name: 'original names without prefix (lora_A)', naming: 'original', alpha: false, key: (n, r) => `${n}.lora_${ab(r)}.weight` },
  { name: 'PEFT raw save (base_model.model. + adapter name)', naming: 'diffusers', alpha: false, key: (n, r) => `base_model.model.${n}.lora_${ab(r)}.default.weight` },
  { name: 'LyCORIS prefix (lycoris_ + diffusers names, LoRA factors)', naming: 'diffusers', alpha: true, key: (n, r) => `lycoris_${us(n)}.${kohyaRole(r)}` },
];
const MUSUBI = LAYOUTS[0]!;
const AITOOLKIT = LAYOUTS[1]!;
const PIPE = LAYOUTS[2]!;
const DIFFUSERS = LAYOUTS[3]!;

const Z_META = { ss_base_model_version: 'z_image', 'modelspec.architecture': 'Z-Image/lora' };

const writeLayout = (path: string, layout: Layout, mods: readonly RowUnit[], alpha = RANK, metadata: Record<string, string> = Z_META) => writeRowLayout(path, layout, mods, { alpha, metadata });

const { original: ORIG, diffusers: DIF, want: { original: WANT_ORIG, diffusers: WANT_DIF }, unitsOf, wantOf } = bothNamings(ROWS, H);

/** musubi-tuner's convert_z_image_lora_to_comfy.py on a split file: downs concatenated [3r, h], ups block-diagonal [3h, 3r], alpha × 3. */
function musubiToComfy(mods: readonly RowUnit[], alpha: number): TensorEntry[] {
  const entries: TensorEntry[] = [];
  const byTarget = new Map<string, RowUnit[]>();
  for (const m of mods) byTarget.set(m.target, [...(byTarget.get(m.target) ?? []), m]);
  const rename = (n: string) => us(n).replace(/_attention_to_out_0$/, '_attention_out');
  for (const [target, parts] of byTarget) {
    if (parts.length === 1) {
      const m = parts[0]!;
      const k = `lora_unet_${rename(m.name)}`;
      entries.push(f32(`${k}.lora_down.weight`, [RANK, m.in], m.down), f32(`${k}.lora_up.weight`, [m.out, RANK], m.up), f32(`${k}.alpha`, [], Float32Array.of(alpha)));
      continue;
    }
    const cols = parts[0]!.in;
    const rank = RANK * parts.length;
    const down = new Float32Array(rank * cols);
    const up = new Float32Array(parts[0]!.full * rank);
    parts.forEach((p, i) => {
      down.set(p.down, i * RANK * cols);
      for (let r = 0; r < p.out; r++) for (let k = 0; k < RANK; k++) up[(p.row + r) * rank + i * RANK + k] = p.up[r * RANK + k]!;
    });
    const k = `lora_unet_${us(target)}`;
    entries.push(f32(`${k}.lora_down.weight`, [rank, cols], down), f32(`${k}.lora_up.weight`, [parts[0]!.full, rank], up), f32(`${k}.alpha`, [], Float32Array.of(alpha * parts.length)));
  }
  return entries;
}

describe('Z-Image LoRAs: every layout read, by value', () => {
  itReadsEveryRowLayout({ id: 'z-image', layouts: LAYOUTS, metadata: Z_META, file: (name) => tmp.path(name), units: unitsOf, want: wantOf });

  it("Z1' musubi → ComfyUI (lora_unet_layers_N_attention_qkv at rank 3r, alpha 3α; attention_out): the split file's ΔW", async () => {
    const path = join(tmp.dir, 'musubi-comfy.safetensors');
    // musubi trains only `layers` (exclude .*(_modulation|_refiner).*): its attention and feed-forward
    const trained = DIF.filter((m) => /^layers\.\d+\.(?:attention|feed_forward)\./.test(m.name));
    expect(trained).toHaveLength(LAYERS * 7);
    await writeSafetensors(path, musubiToComfy(trained, 2), { metadata: Z_META });
    const set = await readLora(path);
    expect(set.architecture).toBe('z-image');
    expect(set.unknownKeys).toEqual([]);
    expect(set.patches).toHaveLength(LAYERS * 5);
    const qkv = set.patches.find((p) => p.target === 'layers.29.attention.qkv.weight')!;
    expect(qkv.source.module).toBe('lora_unet_layers_29_attention_qkv');
    expect(qkv.rows).toBeUndefined();
    expect(qkv.adapter.kind === 'lora' && qkv.adapter.down.shape).toEqual([3 * RANK, H]);
    expect(set.patches.find((p) => p.source.module === 'lora_unet_layers_29_attention_out')?.target).toBe('layers.29.attention.out.weight');
    // alpha 2 at rank 4 on the split file = scale ½; the fused alpha 6 at rank 12 keeps it
    expect(await deltaError(set, expected(trained, 0.5))).toBeLessThan(1e-6);
    await set.close();
  });

  it('diffusers / musubi to_q / to_k / to_v land as rows 0..h, h..2h, 2h..3h of the fused attention.qkv; all_x_embedder.2-1 and all_final_layer.2-1 on x_embedder / final_layer', async () => {
    for (const layout of [DIFFUSERS, MUSUBI]) {
      const path = join(tmp.dir, `parts-${layout === MUSUBI ? 'kohya' : 'peft'}.safetensors`);
      await writeLayout(path, layout, DIF, RANK, {});
      const set = await readLora(path);
      const at = (module: string) => set.patches.find((p) => p.source.module === layout.key(module, 'down').replace(/\.lora_(?:A|down)\.weight$/, ''))!;
      for (const c of ['layers.29', 'noise_refiner.1', 'context_refiner.0']) {
        expect(at(`${c}.attention.to_q`).target).toBe(`${c}.attention.qkv.weight`);
        expect(at(`${c}.attention.to_q`).rows).toEqual([0, H]);
        expect(at(`${c}.attention.to_k`).rows).toEqual([H, H]);
        expect(at(`${c}.attention.to_v`).rows).toEqual([2 * H, H]);
        expect(at(`${c}.attention.to_out.0`).target).toBe(`${c}.attention.out.weight`);
      }
      expect(at('all_x_embedder.2-1').target).toBe('x_embedder.weight');
      expect(at('all_final_layer.2-1.linear').target).toBe('final_layer.linear.weight');
      expect(at('all_final_layer.2-1.adaLN_modulation.1').target).toBe('final_layer.adaLN_modulation.1.weight');
      expect(at('all_final_layer.2-1.adaLN_modulation.1').rows).toBeUndefined();
      await set.close();
    }
  });

  it('alpha scales: a musubi file at alpha 2 (rank 4) reads at scale ½', async () => {
    const path = join(tmp.dir, 'alpha.safetensors');
    await writeLayout(path, MUSUBI, DIF, 2);
    const set = await readLora(path);
    expect(await deltaError(set, WANT_DIF, 0.5)).toBeLessThan(1e-6);
    await set.close();
  });

  it('LyCORIS LoHa under lycoris_ names (diffusers names, parts of the fused qkv too): ΔW = (w1a·w1b) ⊙ (w2a·w2b) · alpha/r', async () => {
    const picked = DIF.filter((m) => /^(?:layers\.(?:0|29)\.attention\.(?:to_v|to_out\.0)|noise_refiner\.1\.adaLN_modulation\.0|context_refiner\.0\.feed_forward\.w2)$/.test(m.name) || m.name === 'all_final_layer.2-1.linear');
    expect(picked).toHaveLength(7);
    const entries: TensorEntry[] = [];
    const want = new Map<string, Float64Array>();
    for (const m of picked) {
      const loha = lohaModule(`lycoris_${us(m.name)}`, keyedRandom(`loha ${m.name}`, 5), { rank: RANK, out: m.out, inp: m.in, alpha: 2 });
      entries.push(...loha.entries);
      const key = `${m.target}.weight`;
      const d = want.get(key) ?? new Float64Array(m.full * m.in);
      want.set(key, d);
      // a part of the fused qkv: its rows of the target
      d.set(loha.delta, m.row * m.in);
    }
    const path = join(tmp.dir, 'loha.safetensors');
    await writeSafetensors(path, entries, { metadata: { ss_base_model_version: 'zimage' } });
    const set = await readLora(path);
    expect(set.architecture).toBe('z-image');
    expect(set.unknownKeys).toEqual([]);
    expect(set.patches.find((p) => p.source.module === 'lycoris_layers_29_attention_to_v')?.rows).toEqual([2 * H, H]);
    expect(await deltaError(set, want)).toBeLessThan(1e-6);
    await set.close();
  });

  it('ComfyUI-extracted files: LoRA + diff_b biases + RMSNorm diffs (q_norm, attention_norm1, cap_embedder.0) + a full diff, all placed by value', async () => {
    const path = join(tmp.dir, 'extracted.safetensors');
    const lora = ORIG.filter((x) => x.name === 'layers.3.attention.qkv' || x.name === 'context_refiner.1.feed_forward.w3');
    const ramp = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => (i + 1) / k);
    const diff = ramp(H * W.ad, 50);
    const entries: TensorEntry[] = [
      ...lora.flatMap((m) => [f32(`diffusion_model.${m.name}.lora_down.weight`, [RANK, m.in], m.down), f32(`diffusion_model.${m.name}.lora_up.weight`, [m.out, RANK], m.up)]),
      f32('diffusion_model.layers.3.adaLN_modulation.0.diff_b', [4 * H], ramp(4 * H, 10)),
      f32('diffusion_model.final_layer.adaLN_modulation.1.diff', [H, W.ad], diff),
      f32('diffusion_model.layers.3.attention.q_norm.diff', [W.hd], ramp(W.hd, 3)),
      f32('diffusion_model.noise_refiner.0.attention_norm1.diff', [H], ramp(H, 7)),
      f32('diffusion_model.cap_embedder.0.diff', [W.ctx], new Float32Array(W.ctx).fill(0.5)),
    ];
    await writeSafetensors(path, entries);
    const set = await readLora(path);
    expect(set.architecture).toBe('z-image');
    expect(set.unknownKeys).toEqual([]);
    expect(set.patches.map((p) => `${p.adapter.kind} ${p.target}`).sort()).toEqual([
      'full cap_embedder.0.weight',
      'full final_layer.adaLN_modulation.1.weight',
      'full layers.3.adaLN_modulation.0.bias',
      'full layers.3.attention.q_norm.weight',
      'full noise_refiner.0.attention_norm1.weight',
      'lora context_refiner.1.feed_forward.w3.weight',
      'lora layers.3.attention.qkv.weight',
    ]);
    const got = await referenceDeltas(set);
    // the full diff of the final adaLN is added as stored: no (shift, scale) half swap in Z-Image
    expect([...got.get('transformer:final_layer.adaLN_modulation.1.weight')!.data]).toEqual([...diff].map((v) => v));
    expect([...got.get('transformer:layers.3.attention.q_norm.weight')!.data]).toEqual([...ramp(W.hd, 3)]);
    const want = expected(lora);
    for (const [k, d] of want) {
      const g = got.get(`transformer:${k}`)!.data;
      expect(Math.max(...d.map((v, i) => Math.abs(v - g[i]!)))).toBeLessThan(1e-6);
    }
    await set.close();
  });

  it('constructed full-width key lists (test/fixtures/families/z-image): family z-image, every module placed on its original weight, with and without metadata', () => {
    const dir = join(import.meta.dirname, 'fixtures', 'families', 'z-image');
    // musubi: layers × 7 split modules; ai-toolkit: + adaLN_modulation.0 (8); diffusion-pipe: fused qkv/out + w1–3 (+ adaLN outside
    // the context refiner) in 30 layers, 2 noise and 2 context refiners; diffusers: layers × 7
    const modules: Record<string, number> = { 'musubi.txt': LAYERS * 7, 'ai-toolkit.txt': LAYERS * 8, 'diffusion-pipe.txt': (LAYERS + REFINERS) * 6 + REFINERS * 5, 'diffusers-peft.txt': LAYERS * 7 };
    const files = readdirSync(dir).sort();
    expect(files).toEqual(Object.keys(modules).sort());
    const known = new Set(ROWS.map((r) => `${r[0]}.weight`));
    for (const file of files) {
      const tensors = readKeyList(join(dir, file));
      for (const metadata of [undefined, { ss_base_model_version: 'z_image' }, { ss_base_model_version: 'zimage' }, { 'modelspec.architecture': 'Z-Image/lora' }]) {
        const d = detectFormat(tensors, metadata);
        expect(d.architecture, file).toBe('z-image');
        expect(d.confidence, file).toBeGreaterThan(0.9);
        expect(d.unknownKeys, file).toEqual([]);
        expect(d.modules.length, file).toBe(modules[file]);
        for (const m of d.modules) {
          expect(known.has(m.target), `${file}: ${m.module} → ${m.target}`).toBe(true);
          // the split parts at their h = 3840 rows of the 11520-row qkv
          if (/\.to_[qkv](?:\.|$)|_to_[qkv]$/.test(m.module)) expect(m.rows, m.module).toEqual([{ q: 0, k: 3840, v: 7680 }[/to_([qkv])/.exec(m.module)![1]! as 'q']!, 3840]);
          else expect(m.rows, m.module).toBeUndefined();
        }
      }
      const summary = formatDetection(detectFormat(tensors));
      expect(summary, file).toMatch(file === 'diffusion-pipe.txt' ? /coverage: +blocks 30 \(0[–-]29\); NR0, NR1, CR0, CR1/ : /coverage: +blocks 30 \(0[–-]29\)$/m);
    }
  });

  it('other families stay theirs: FLUX.1 sample layouts and real fixtures, every other family fixture key list', async () => {
    await expectFluxFilesStayFlux(tmp.dir);
    const root = join(import.meta.dirname, 'fixtures', 'families');
    const others = readdirSync(root).filter((d) => d !== 'z-image');
    expect(others.length).toBeGreaterThan(3);
    for (const family of others) {
      for (const file of readdirSync(join(root, family))) {
        const lines = readFileSync(join(root, family, file), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
        // real excerpts copied from issue threads may have no shapes: those are name lists, not key sets
        if (lines.some((l) => !/\s\[/.test(l.trim()))) continue;
        const tensors = lines.map((l) => {
          const [name, shape] = l.trim().split(/\s+/) as [string, string];
          return { name, shape: JSON.parse(shape) as number[] };
        });
        const d = detectFormat(tensors);
        expect(d.architecture, `${family}/${file}`).not.toBe('z-image');
        expect(d.evidence.join('\n'), `${family}/${file}`).not.toMatch(/Z-Image/);
      }
    }
  });

  it('FLUX names in a Z-Image file (x_embedder, final_layer.*) do not make it FLUX; a FLUX file stays FLUX', () => {
    const tensor = (name: string, shape: number[]) => ({ name, shape });
    const lora = (name: string, out: number, inp: number) => [tensor(`diffusion_model.${name}.lora_A.weight`, [4, inp]), tensor(`diffusion_model.${name}.lora_B.weight`, [out, 4])];
    const z = [...lora('layers.0.attention.qkv', 11520, 3840), ...lora('x_embedder', 3840, 64), ...lora('final_layer.linear', 64, 3840), ...lora('final_layer.adaLN_modulation.1', 3840, 256)];
    const d = detectFormat(z);
    expect(d.architecture).toBe('z-image');
    expect(d.unknownKeys).toEqual([]);
    expect(d.modules.map((m) => m.target).sort()).toEqual(['final_layer.adaLN_modulation.1.weight', 'final_layer.linear.weight', 'layers.0.attention.qkv.weight', 'x_embedder.weight']);
    const flux = [...lora('double_blocks.0.img_attn.qkv', 9216, 3072), ...lora('final_layer.linear', 64, 3072), ...lora('final_layer.adaLN_modulation.1', 6144, 3072)];
    expect(detectFormat(flux).architecture).toBe('flux');
    // a Z-Image metadata claim on a FLUX file: the keys win
    expect(detectFormat(flux, { ss_base_model_version: 'z_image' }).architecture).toBe('flux');
    // only the names both share: FLUX.1, unless the metadata says Z-Image
    const shared = [...lora('x_embedder', 3840, 64), ...lora('final_layer.linear', 64, 3840)];
    expect(detectFormat(shared).architecture).toBe('flux');
    const claimed = detectFormat(shared, { ss_base_model_version: 'z_image' });
    expect(claimed.architecture).toBe('z-image');
    expect(claimed.unknownKeys).toEqual([]);
    expect(claimed.modules.map((m) => m.target).sort()).toEqual(['final_layer.linear.weight', 'x_embedder.weight']);
    // Z-Image keys with another family's metadata: still Z-Image, less sure
    const other = detectFormat(z, { ss_base_model_version: 'qwen_image' });
    expect(other.architecture).toBe('z-image');
    expect(other.confidence).toBeLessThan(0.9);
  });
});

/** A `LoraWriter` (test/helpers/table-family.ts) of one layout over `table` (its first `count` rows when given): the file and its ΔW. */
const writer = (layout: Layout, table: readonly Row[] = ROWS) => rowWriter(layout, (seed, count) => units(layout.naming, seed, table.slice(0, count)), Z_META);

/** Z1': musubi-tuner's own file (layers' attention and feed-forward, split) put through its ComfyUI conversion. */
const MUSUBI_COMFY: LoraWriter = {
  name: "Z1' musubi → ComfyUI (fused qkv at rank 3r, alpha 3α)",
  async write(path, seed, opts = {}) {
    const mods = units('diffusers', seed, ROWS.filter((r) => /^layers\.\d+\.(?:attention|feed_forward)\./.test(r[0])).slice(0, opts.count));
    await writeSafetensors(path, musubiToComfy(mods, RANK), { metadata: opts.metadata ?? Z_META });
    return expected(mods);
  },
};

const LAYER_ROWS = ROWS.filter((r) => r.id === 'IN' || r.id === 'OUT' || r[0].startsWith('layers.'));
const LAYER_MODULES = BLOCK.length + 1;
const IN_MODULES = IN_ROWS.map((r) => r[0]);
const OUT_MODULES = OUT_ROWS.map((r) => r[0]);
const PER_BLOCK_NORMS: [string, number[]][] = [...['attention.q_norm', 'attention.k_norm'].map((n): [string, number[]] => [n, [W.hd]]), ...['attention_norm1', 'ffn_norm1', 'attention_norm2', 'ffn_norm2'].map((n): [string, number[]] => [n, [H]])];

describeTableFamilyOperations({
  id: 'z-image',
  label: 'Z-Image',
  convert: {
    sources: [writer(MUSUBI), writer(PIPE), MUSUBI_COMFY],
    names: [
      // kohya = original names (musubi's ComfyUI conversion's layout): qkv fused, attention_out, the refiners, adaLN, embedders
      {
        to: 'kohya',
        contains: [
          'lora_unet_layers_29_attention_qkv.lora_down.weight',
          'lora_unet_layers_29_attention_out.lora_up.weight',
          'lora_unet_noise_refiner_1_adaLN_modulation_0.alpha',
          'lora_unet_context_refiner_0_feed_forward_w2.lora_down.weight',
          'lora_unet_x_embedder.lora_down.weight',
          'lora_unet_t_embedder_mlp_2.alpha',
          'lora_unet_final_layer_adaLN_modulation_1.lora_up.weight',
        ],
        all: /^lora_unet_/,
      },
      { to: 'comfyui', some: /^diffusion_model\.layers\.29\.attention\.qkv\./, all: /^diffusion_model\./ },
      // diffusers names from a fused source: to_q / to_k / to_v, to_out.0, the 2-1 ModuleDict keys
      {
        to: 'diffusers',
        contains: [
          'transformer.layers.29.attention.to_q.lora_A.weight',
          'transformer.layers.29.attention.to_v.lora_B.weight',
          'transformer.context_refiner.1.attention.to_out.0.lora_B.weight',
          'transformer.all_x_embedder.2-1.lora_A.weight',
          'transformer.all_final_layer.2-1.linear.lora_B.weight',
          'transformer.all_final_layer.2-1.adaLN_modulation.1.lora_A.weight',
        ],
        all: /^transformer\./,
      },
      { from: MUSUBI_COMFY, to: 'diffusers', contains: ['transformer.layers.0.attention.to_k.lora_A.weight', 'transformer.layers.29.attention.to_out.0.lora_B.weight'], all: /^transformer\.layers\.\d+\.(?:attention|feed_forward)\./ },
    ],
    kohyaMetadata: { source: writer(DIFFUSERS), count: 6, want: { ss_network_module: 'networks.lora_zimage', 'modelspec.architecture': 'Z-Image/lora' } },
  },
  // split parts (3 · r on the qkv) and a fused file: the qkv's merged rank is 4r
  merge: { a: writer(MUSUBI), b: writer(PIPE), rank: 4 * RANK },
  resize: { source: writer(AITOOLKIT) },
  // the layers, IN and OUT here; the refiners' ids (NR0, CR1: one digit) in the test below
  blocks: {
    source: writer(PIPE, LAYER_ROWS),
    groups: [{ prefix: 'layers.', id: 'B', count: LAYERS }],
    in: IN_MODULES,
    out: OUT_MODULES,
    weighted: [{ spec: 'B00-B09=0,B10=0.5,B29=3,IN=0.25,OUT=2', weight: (b) => ({ IN: 0.25, OUT: 2, B10: 0.5, B29: 3 })[b] ?? (blockIndex(b) < 10 ? 0 : 1), dropped: 10 * LAYER_MODULES }],
    refused: [
      ['D00=0', /unknown block id "D00".*IN, NR0, NR1, CR0, CR1, B00–B29, OUT/],
      ['NR2=0', /unknown block id "NR2"/],
      ['B00-B30=0', /past the last Z-Image block \(B29\)/],
      [Array.from({ length: 32 }, () => 1), /36 values/],
    ],
    filters: [['B00', 'in'], ['OUT', 'B29']],
  },
  base: {
    linears: ROWS.map((r) => [r[0], r[2], r[3]] as const),
    // attention and feed-forward have no biases; the adaLN, embedders and final layer do
    biases: false,
    others: [
      ...CONTAINERS.flatMap(([c]) => PER_BLOCK_NORMS.map(([n, shape]) => [`${c}.0.${n}.weight`, shape] as const)),
      ['layers.0.adaLN_modulation.0.bias', [4 * H]],
      ['x_embedder.bias', [H]],
      ['cap_embedder.0.weight', [W.ctx]],
      ['cap_embedder.1.bias', [H]],
      ['final_layer.linear.bias', [W.in]],
      ['x_pad_token', [1, H]],
      ['cap_pad_token', [1, H]],
    ],
    prefixes: ['model.diffusion_model.', ''],
  },
  apply: { a: writer(MUSUBI), b: writer(PIPE) },
  extract: {
    deltas: WANT_ORIG,
    targets: /^(?:layers\.(?:0|29)|noise_refiner\.1|context_refiner\.0)\.|^(?:x_embedder|final_layer\.adaLN_modulation\.1)\./,
    format: 'diffusers',
    names: [
      'transformer.layers.29.attention.to_v.lora_A.weight',
      'transformer.context_refiner.0.attention.to_out.0.lora_B.weight',
      'transformer.noise_refiner.1.adaLN_modulation.0.lora_A.weight',
      'transformer.all_x_embedder.2-1.lora_A.weight',
      'transformer.all_final_layer.2-1.adaLN_modulation.1.lora_B.weight',
    ],
  },
  refusal: {
    source: writer(MUSUBI),
    count: 6,
    error: /is a FLUX\.1 checkpoint.*LoRA 1 is a kohya LoRA for Z-Image/,
    foreignLora: { id: 'flux', write: (path) => writeSampleLora(path, { format: 'kohya', blocks: { double: 1, single: 1 } }), error: /is a Z-Image checkpoint.*LoRA 1 is a kohya LoRA for FLUX\.1/ },
  },
});

describe('Z-Image block ids: IN, NR0–NR1, CR0–CR1, B00–B29, OUT (the refiners between the embedders and the layers, as the forward runs)', () => {
  const IDS = ['IN', 'NR0', 'NR1', 'CR0', 'CR1', ...Array.from({ length: LAYERS }, (_, i) => `B${String(i).padStart(2, '0')}`), 'OUT'];

  it('the scheme is described with its 36 ids', () => {
    expect(familyOf('z-image')!.blocks!.ids).toEqual(IDS);
    expect(familyOf('z-image')!.blocks!.describe).toBe('Z-Image (36: IN, NR0, NR1, CR0, CR1, B00–B29, OUT)');
  });

  it('refiner weights by id and a 36-value vector by position scale each module by its block, by value; filters keep refiner blocks', async () => {
    const path = join(tmp.dir, 'refiner-blocks.safetensors');
    await writeLayout(path, PIPE, ORIG);
    const set = await readLora(path);
    const scaled = (weight: (id: string) => number) => new Map([...WANT_ORIG].flatMap(([k, d]) => (weight(ID_OF.get(k)!) === 0 ? [] : [[k, d.map((v) => weight(ID_OF.get(k)!) * v)] as const])));
    const perId = (id: string) => ROWS.filter((r) => r.id === id).length;

    const byId: Record<string, number> = { NR0: 0, NR1: 0.5, CR1: 3, B29: 0, IN: 0.25 };
    const named = applyBlockWeights(set, 'nr0=0,NR1=0.5,CR1=3,B29=0,IN=0.25');
    expect(await deltaError(named.set, scaled((id) => byId[id] ?? 1))).toBeLessThan(1e-6);
    expect(named.report.dropped).toHaveLength(perId('NR0') + perId('B29'));

    const vector = IDS.map((_, i) => (i % 4 === 1 ? 0 : 1 + i / 8));
    const positional = applyBlockWeights(set, vector);
    expect(await deltaError(positional.set, scaled((id) => vector[IDS.indexOf(id)]!))).toBeLessThan(1e-6);
    expect(positional.report.dropped).toHaveLength(IDS.filter((_, i) => i % 4 === 1).reduce((n, id) => n + perId(id), 0));

    for (const keep of [['NR1', 'cr0'], ['CR1', 'OUT']]) {
      const want = ROWS.filter((r) => keep.map((k) => k.toUpperCase()).includes(r.id!)).map((r) => `${r[0]}.weight`).sort();
      expect(want.length).toBeGreaterThan(0);
      expect(filterPatches(set, { keepBlocks: keep }).set.patches.map((p) => p.target).sort(), keep.join('+')).toEqual(want);
    }
    await set.close();
  });

  it('inspect covers refiners as NR / CR ids and the layers as blocks', () => {
    const d = detectFormat(ORIG.flatMap((m) => [{ name: PIPE.key(m.name, 'down'), shape: [RANK, m.in] }, { name: PIPE.key(m.name, 'up'), shape: [m.out, RANK] }]));
    expect(d.architecture).toBe('z-image');
    expect(d.coverage.blocks!.slice().sort()).toEqual(IDS.slice().sort());
    expect(formatDetection(d)).toMatch(/coverage: +blocks 30 \(0[–-]29\); NR0, NR1, CR0, CR1, IN, OUT/);
  });
});
