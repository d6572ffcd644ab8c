/**
 * Wan 2.x end to end on shrunk-width fixtures with the real key names and block count (30 blocks,
 * the 1.3B's; I2V 2.1's image cross-attention included): every trainer layout read with no
 * unknown key and ΔW equal to a float64 reference computed here from the stored factors;
 * conversion to every writable layout and back; merge, apply into a Wan base, extract, resize,
 * block weights and filters by value; a Wan LoRA on a FLUX base refused naming both.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertLora } from '../src/formats/convert.ts';
import { detectFormat } from '../src/formats/detect.ts';
import { readLora } from '../src/formats/read.ts';
import { WRITE_FORMATS } from '../src/formats/write/names.ts';
import { writeLora } from '../src/formats/write/index.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { applyBlockWeights } from '../src/lora/blocks.ts';
import { extractLora } from '../src/lora/extract.ts';
import { filterPatches } from '../src/lora/filter.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { resizeLora } from '../src/lora/resize.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { writeFluxCheckpoint } from '../src/testing/flux-checkpoint.ts';
import { keyedRandom } from '../src/testing/lora-fixtures.ts';
import { basePlusDeltaErrors } from './helpers/base-plus-delta.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { RANK, deltaError, expectedDeltas, f32, factorModules, underscored, writeLayout, type Layout, type ModuleSpec } from './helpers/table-family.ts';

const tmp = useTempDir('loraflow-wan-');

// shrunk widths: h hidden, f ffn, ctx umT5, c CLIP image, oc output channels × patch
const W = { h: 32, f: 64, ctx: 48, fq: 16, c: 24, oc: 16 } as const;
const BLOCKS = 30;

/** Wan modules as the docs state them (original name, diffusers name, [out, in]); written here, not taken from the code under test. */
const BLOCK_MODULES: ModuleSpec[] = [
  ['self_attn.q', 'attn1.to_q', W.h, W.h],
  ['self_attn.k', 'attn1.to_k', W.h, W.h],
  ['self_attn.v', 'attn1.to_v', W.h, W.h],
  ['self_attn.o', 'attn1.to_out.0', W.h, W.h],
  ['cross_attn.q', 'attn2.to_q', W.h, W.h],
  ['cross_attn.k', 'attn2.to_k', W.h, W.h],
  ['cross_attn.v', 'attn2.to_v', W.h, W.h],
  ['cross_attn.o', 'attn2.to_out.0', W.h, W.h],
  ['cross_attn.k_img', 'attn2.add_k_proj', W.h, W.h],
  ['cross_attn.v_img', 'attn2.add_v_proj', W.h, W.h],
  ['ffn.0', 'ffn.net.0.proj', W.f, W.h],
  ['ffn.2', 'ffn.net.2', W.h, W.f],
];
const OUTER_MODULES: ModuleSpec[] = [
  ['text_embedding.0', 'condition_embedder.text_embedder.linear_1', W.h, W.ctx],
  ['time_projection.1', 'condition_embedder.time_proj', 6 * W.h, W.h],
  ['img_emb.proj.1', 'condition_embedder.image_embedder.ff.net.0.proj', W.c, W.c],
  ['head.head', 'proj_out', W.oc, W.h],
];

const modules = (seed: number, blocks = BLOCKS) => factorModules({ blockModules: BLOCK_MODULES, outerModules: OUTER_MODULES, blocks: BLOCKS, blockPrefix: (i) => `blocks.${i}.` }, seed, blocks);
const expected = expectedDeltas;

const u = underscored;

/** Every layout in circulation (docs/model-families.md §1.5), as key names of one module. */
const LAYOUTS: Layout[] = [
  { name: 'musubi-tuner / sd-scripts (kohya)', alpha: true, key: (m, r) => `lora_unet_${u(m.name)}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
  { name: 'VideoX-Fun kohya (lora_unet__)', alpha: true, key: (m, r) => `lora_unet__${u(m.name)}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
  { name: 'diffusion-pipe / ai-toolkit (diffusion_model. lora_A)', alpha: false, key: (m, r) => `diffusion_model.${m.name}.lora_${r === 'down' ? 'A' : 'B'}.weight` },
  { name: 'ComfyUI-saved (diffusion_model. lora_down + alpha)', alpha: true, key: (m, r) => `diffusion_model.${m.name}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
  { name: 'diffusers / PEFT (transformer.)', alpha: false, key: (m, r) => `transformer.${m.diffusers}.lora_${r === 'down' ? 'A' : 'B'}.weight` },
  { name: 'PEFT raw save (base_model.model. + adapter name)', alpha: false, key: (m, r) => `base_model.model.${m.diffusers}.lora_${r === 'down' ? 'A' : 'B'}.default.weight` },
  { name: 'OneTrainer-style kohya of diffusers names', alpha: true, key: (m, r) => `lora_unet_${u(m.diffusers)}.${r === 'alpha' ? 'alpha' : `lora_${r}.weight`}` },
];

const MODS = modules(1);
const WANT = expected(MODS, 1);

describe('Wan 2.x LoRAs: every layout read, by value', () => {
  for (const layout of LAYOUTS) {
    it(`${layout.name}: family wan, no unknown key, ΔW equal to the float64 reference`, async () => {
      const path = join(tmp.dir, `${u(layout.name).replace(/\W+/g, '-')}.safetensors`);
      await writeLayout(path, layout, MODS);
      const set = await readLora(path);
      try {
        expect(set.architecture).toBe('wan');
        expect(set.unknownKeys).toEqual([]);
        expect(set.patches).toHaveLength(MODS.length);
        expect(await deltaError(set, WANT)).toBeLessThan(1e-6);
      } finally {
        await set.close();
      }
    });
  }

  it('alpha scales: a kohya file at alpha 2 (rank 4) reads at scale ½', async () => {
    const path = join(tmp.dir, 'alpha.safetensors');
    await writeLayout(path, LAYOUTS[0]!, MODS, { alpha: 2 });
    const set = await readLora(path);
    expect(await deltaError(set, WANT, 0.5)).toBeLessThan(1e-6);
    await set.close();
  });

  it('ComfyUI-extracted files: LoRA + diff_b biases + norm diffs all placed', async () => {
    const path = join(tmp.dir, 'extracted.safetensors');
    const entries: TensorEntry[] = [];
    const m = MODS.find((x) => x.name === 'blocks.3.cross_attn.k_img')!;
    entries.push(f32(`diffusion_model.${m.name}.lora_down.weight`, [RANK, m.in], m.down), f32(`diffusion_model.${m.name}.lora_up.weight`, [m.out, RANK], m.up));
    const bias = Float32Array.from({ length: W.h }, (_, i) => i / 10);
    entries.push(f32('diffusion_model.blocks.3.cross_attn.k_img.diff_b', [W.h], bias));
    entries.push(f32('diffusion_model.blocks.3.cross_attn.norm_k_img.diff', [W.h], bias));
    entries.push(f32('diffusion_model.blocks.3.norm3.diff', [W.h], bias), f32('diffusion_model.blocks.3.norm3.diff_b', [W.h], bias));
    await writeSafetensors(path, entries);
    const set = await readLora(path);
    expect(set.architecture).toBe('wan');
    expect(set.unknownKeys).toEqual([]);
    expect(set.patches.map((p) => `${p.adapter.kind} ${p.target}`).sort()).toEqual([
      'full blocks.3.cross_attn.k_img.bias', 'full blocks.3.cross_attn.norm_k_img.weight', 'full blocks.3.norm3.bias', 'full blocks.3.norm3.weight', 'lora blocks.3.cross_attn.k_img.weight',
    ]);
    await set.close();
  });

  it('real and full-width key lists (test/fixtures/families/wan): family wan, every complete module placed', () => {
    const dir = join(import.meta.dirname, 'fixtures', 'families', 'wan');
    for (const file of readdirSync(dir)) {
      const lines = readFileSync(join(dir, file), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
      // excerpts of logs give no shapes: LoRA-shaped stand-ins (the names are what is tested)
      const tensors = lines.map((l) => {
        const [name, shape] = l.trim().split(/\s+/) as [string, string | undefined];
        const guess = /alpha$/.test(name) ? [] : /lora_(?:down|A)/.test(name) ? [4, 64] : /lora_(?:up|B)/.test(name) ? [64, 4] : [64];
        return { name, shape: shape ? (JSON.parse(shape) as number[]) : guess };
      });
      const d = detectFormat(tensors);
      expect(d.architecture, file).toBe('wan');
      // the log excerpts cut some modules in half (a lora_B without its lora_A): those, and only those, are reported
      const half = d.unknownKeys.filter((k) => !/excerpt/.test(file) || !/lora_(?:up|B)|lora_(?:down|A)/.test(k));
      expect(half, file).toEqual([]);
      if (!/excerpt/.test(file)) expect(d.modules.length, file).toBeGreaterThanOrEqual(300);
    }
  });
});

describe('Wan 2.x LoRAs through every operation', () => {
  it('converts to kohya, diffusers and comfyui and back with ΔW unchanged, in the layouts the trainers use', async () => {
    const src = join(tmp.dir, 'conv-src.safetensors');
    await writeLayout(src, LAYOUTS[0]!, MODS);
    const names: Record<string, string> = {};
    for (const to of WRITE_FORMATS) {
      const out = join(tmp.dir, `conv-${to}.safetensors`);
      await convertLora(src, out, { to });
      const file = await SafetensorsFile.open(out);
      names[to] = file.tensors.map((t) => t.name).find((n) => n.includes('blocks.7') || n.includes('blocks_7'))!;
      await file.close();
      const set = await readLora(out);
      expect(set.architecture).toBe('wan');
      expect(set.unknownKeys).toEqual([]);
      expect(await deltaError(set, WANT)).toBeLessThan(1e-6);
      await set.close();
    }
    expect(names.kohya).toMatch(/^lora_unet_blocks_7_/);
    expect(names.comfyui).toMatch(/^diffusion_model\.blocks\.7\.(?:self_attn|cross_attn|ffn)\./);
    expect(names.diffusers).toMatch(/^transformer\.blocks\.7\.(?:attn[12]\.|ffn\.net\.)/);
  });

  it('merges two Wan LoRAs from different trainers (concat exact, SVD at rank 8 exact)', async () => {
    const a = join(tmp.dir, 'merge-a.safetensors');
    const b = join(tmp.dir, 'merge-b.safetensors');
    const modsB = modules(2);
    await writeLayout(a, LAYOUTS[0]!, MODS);
    await writeLayout(b, LAYOUTS[4]!, modsB);
    const wantB = expected(modsB, 1);
    const want = new Map([...WANT].map(([k, d]) => [k, d.map((v, i) => 0.7 * v - 0.4 * wantB.get(k)![i]!)]));
    const sa = await readLora(a);
    const sb = await readLora(b);
    for (const method of ['concat', 'svd'] as const) {
      const { set } = await mergeLoras([{ set: sa, weight: 0.7 }, { set: sb, weight: -0.4 }], { method, rank: 2 * RANK });
      expect(set.architecture).toBe('wan');
      expect(await deltaError(set, want), method).toBeLessThan(1e-5);
      const out = join(tmp.dir, `merged-${method}.safetensors`);
      await writeLora(out, set, { format: 'kohya' });
      const back = await readLora(out);
      expect(await deltaError(back, want), `${method} written`).toBeLessThan(1e-5);
      await back.close();
    }
    await sa.close();
    await sb.close();
  });

  it('resize keeps ΔW at the full rank and reports each module; block weights and filters use IN, B00–B29, OUT', async () => {
    const path = join(tmp.dir, 'ops.safetensors');
    await writeLayout(path, LAYOUTS[2]!, MODS);
    const set = await readLora(path);
    const resized = await resizeLora(set, { rank: RANK });
    expect(await deltaError(resized.set, WANT)).toBeLessThan(1e-5);

    const weighted = applyBlockWeights(set, 'B00-B09=0,B10=0.5,OUT=2');
    const want = new Map<string, Float64Array>();
    for (const [k, d] of WANT) {
      const block = /^blocks\.(\d+)\./.exec(k);
      const w = block ? (Number(block[1]) < 10 ? 0 : Number(block[1]) === 10 ? 0.5 : 1) : k.startsWith('head.') ? 2 : 1;
      if (w !== 0) want.set(k, d.map((v) => w * v));
    }
    expect(await deltaError(weighted.set, want)).toBeLessThan(1e-6);
    expect(weighted.report.dropped).toHaveLength(10 * BLOCK_MODULES.length);
    expect(() => applyBlockWeights(set, 'D00=0')).toThrow(/unknown block id "D00"/);
    expect(() => applyBlockWeights(set, 'B00-B40=0')).toThrow(/past the last Wan block/);
    expect(applyBlockWeights(set, Array.from({ length: 32 }, () => 1)).report.dropped).toEqual([]);

    const kept = filterPatches(set, { keepBlocks: ['B00', 'in'] });
    expect(kept.set.patches.map((p) => p.target).sort()).toEqual(
      [...BLOCK_MODULES.map(([o]) => `blocks.0.${o}.weight`), 'img_emb.proj.1.weight', 'text_embedding.0.weight', 'time_projection.1.weight'].sort(),
    );
    await set.close();
  });

  async function writeWanBase(path: string, prefix: string, tuned?: Map<string, Float64Array>): Promise<void> {
    const entries: TensorEntry[] = [];
    for (const m of MODS) {
      const r = keyedRandom(`base ${m.name}`, 9);
      const w = Float32Array.from({ length: m.out * m.in }, () => r() - 0.5);
      const t = tuned?.get(`${m.name}.weight`);
      if (t) for (let i = 0; i < w.length; i++) w[i]! += t[i]!;
      entries.push(f32(`${prefix}${m.name}.weight`, [m.out, m.in], w), f32(`${prefix}${m.name}.bias`, [m.out], new Float32Array(m.out).fill(0.25)));
    }
    entries.push(f32(`${prefix}head.modulation`, [1, 2, W.h], new Float32Array(2 * W.h).fill(1)));
    entries.push(f32(`${prefix}blocks.0.norm3.weight`, [W.h], new Float32Array(W.h).fill(1)));
    await writeSafetensors(path, entries);
  }

  for (const prefix of ['model.diffusion_model.', '']) {
    it(`applies a musubi and a diffusers Wan LoRA into a Wan base (${prefix || 'bare names'}): W + Σ wᵢ·ΔWᵢ, the rest byte for byte`, async () => {
      const base = join(tmp.dir, `base-${prefix.length}.safetensors`);
      const out = join(tmp.dir, `applied-${prefix.length}.safetensors`);
      await writeWanBase(base, prefix);
      const a = join(tmp.dir, `apply-a-${prefix.length}.safetensors`);
      const b = join(tmp.dir, `apply-b-${prefix.length}.safetensors`);
      const modsB = modules(3);
      await writeLayout(a, LAYOUTS[0]!, MODS);
      await writeLayout(b, LAYOUTS[4]!, modsB);
      const wantB = expected(modsB, 1);
      const sa = await readLora(a);
      const sb = await readLora(b);
      await applyToBase({ base, out, loras: [{ set: sa, weight: 1 }, { set: sb, weight: 0.5 }] });
      const baseFile = await SafetensorsFile.open(base);
      const outFile = await SafetensorsFile.open(out);
      const errors = await basePlusDeltaErrors(baseFile, outFile, (name) => {
        const k = name.slice(prefix.length);
        const da = WANT.get(k);
        return da && { data: da.map((v, i) => v + 0.5 * wantB.get(k)![i]!) };
      });
      expect(errors.size).toBe(MODS.length);
      expect(Math.max(...errors.values())).toBeLessThan(1e-6);
      await Promise.all([baseFile.close(), outFile.close(), sa.close(), sb.close()]);
    });
  }

  it('extracts a Wan LoRA from a tuned/base pair that recovers ΔW, and names its modules in Wan terms', async () => {
    const base = join(tmp.dir, 'x-base.safetensors');
    const tuned = join(tmp.dir, 'x-tuned.safetensors');
    const few = new Map([...WANT].filter(([k]) => /^blocks\.(0|29)\.|^head\./.test(k)));
    await writeWanBase(base, 'model.diffusion_model.');
    await writeWanBase(tuned, 'model.diffusion_model.', few);
    const { set, report } = await extractLora({ base, tuned, rank: RANK });
    expect(report.architecture).toBe('wan');
    expect(set.architecture).toBe('wan');
    expect(await deltaError(set, few)).toBeLessThan(1e-4);
    const out = join(tmp.dir, 'x.safetensors');
    await writeLora(out, set, { format: 'kohya' });
    const back = await readLora(out);
    expect(back.architecture).toBe('wan');
    expect(back.unknownKeys).toEqual([]);
    await back.close();
  });

  it('a Wan LoRA given with a FLUX base is refused naming both, and nothing is written', async () => {
    const base = join(tmp.dir, 'flux-base.safetensors');
    await writeFluxCheckpoint(base, { scale: 64, doubleBlocks: 1, singleBlocks: 1, dtype: 'F32' });
    const lora = join(tmp.dir, 'wan-on-flux.safetensors');
    await writeLayout(lora, LAYOUTS[0]!, MODS.slice(0, 4));
    const set = await readLora(lora);
    const out = join(tmp.dir, 'never.safetensors');
    await expect(applyToBase({ base, out, loras: [{ set, weight: 1 }] })).rejects.toThrow(/is a FLUX\.1 checkpoint.*LoRA 1 is a kohya LoRA for Wan 2\.x/);
    await expect(SafetensorsFile.open(out)).rejects.toThrow();
    await set.close();
  });
});


describe('Wan 2.2 expert pairs', () => {
  const expertFile = async (name: string, seed: number) => {
    const path = join(tmp.dir, name);
    await writeLayout(path, LAYOUTS[2]!, modules(seed, 2));
    return path;
  };

  it('a LoRA is for the high- or low-noise expert as its file name says; an output keeps it', async () => {
    const high = await readLora(await expertFile('style_wan22_high_noise.safetensors', 4));
    const low = await readLora(await expertFile('Stand-In_wan2.2_T2V_A14B_LOW_fp16.safetensors', 5));
    const plain = await readLora(await expertFile('style_wan21.safetensors', 6));
    expect([high.variant, low.variant, plain.variant]).toEqual(['high-noise', 'low-noise', undefined]);
    const { set } = await mergeLoras([{ set: high, weight: 1 }, { set: plain, weight: 1 }], { method: 'concat' });
    expect(set.variant).toBe('high-noise');
    const out = join(tmp.dir, 'merged-expert.safetensors');
    await writeLora(out, set, { format: 'kohya' });
    const back = await readLora(out);
    expect(back.variant).toBe('high-noise');
    await Promise.all([high.close(), low.close(), plain.close(), back.close()]);
  });

  it('merging a high-noise with a low-noise LoRA, or applying one to the other expert, is refused naming both', async () => {
    const high = await readLora(await expertFile('a_HighNoise.safetensors', 7));
    const low = await readLora(await expertFile('b_low_noise.safetensors', 8));
    await expect(mergeLoras([{ set: high, weight: 1 }, { set: low, weight: 1 }], { method: 'concat' })).rejects.toThrow(
      /input 1 is for the high-noise model, input 2 is for the low-noise model: these are two models of one pair/,
    );
    const base = join(tmp.dir, 'wan2.2_t2v_low_noise_14B_fp16.safetensors');
    const entries: TensorEntry[] = modules(7, 2).map((m) => f32(`model.diffusion_model.${m.name}.weight`, [m.out, m.in], new Float32Array(m.out * m.in)));
    await writeSafetensors(base, entries);
    const out = join(tmp.dir, 'never-expert.safetensors');
    await expect(applyToBase({ base, out, loras: [{ set: high, weight: 1 }] })).rejects.toThrow(/low_noise_14B_fp16\.safetensors is for the low-noise model, LoRA 1 .*a_HighNoise\.safetensors\) is for the high-noise model/);
    await expect(SafetensorsFile.open(out)).rejects.toThrow();
    const applied = join(tmp.dir, 'low-applied.safetensors');
    await applyToBase({ base, out: applied, loras: [{ set: low, weight: 1 }] });
    await Promise.all([high.close(), low.close()]);
  });
});
