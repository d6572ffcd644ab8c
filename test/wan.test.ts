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
import { detectFormat } from '../src/formats/detect.ts';
import { readLora } from '../src/formats/read.ts';
import { writeLora } from '../src/formats/write/index.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { blockIndex, describeTableFamilyOperations } from './helpers/table-family-ops.ts';
import { RANK, deltaError, expectedDeltas, f32, factorModules, itReadsEveryLayout, layoutWriter, underscored, writeLayout, type Layout, type ModuleSpec } from './helpers/table-family.ts';

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
  // no metadata: the keys alone say Wan
  itReadsEveryLayout({
    id: 'wan',
    layouts: LAYOUTS,
    metadata: [undefined],
    file: (name) => tmp.path(name),
    write: async (path, layout) => {
      await writeLayout(path, layout, MODS);
      return { count: MODS.length, want: WANT };
    },
  });

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

const wanWriter = (layout: Layout) => layoutWriter(layout, modules);
// the outer modules by block (docs/model-families.md §1.3): the embedders are IN, the head is OUT
const IN_MODULES = ['text_embedding.0', 'time_projection.1', 'img_emb.proj.1'];
const OUT_MODULES = ['head.head'];

describeTableFamilyOperations({
  id: 'wan',
  label: 'Wan 2.x',
  convert: {
    sources: [wanWriter(LAYOUTS[0]!)],
    names: [
      { to: 'kohya', within: /blocks[._]7[._]/, all: /^lora_unet_blocks_7_/ },
      { to: 'comfyui', within: /blocks[._]7[._]/, all: /^diffusion_model\.blocks\.7\.(?:self_attn|cross_attn|ffn)\./ },
      { to: 'diffusers', within: /blocks[._]7[._]/, all: /^transformer\.blocks\.7\.(?:attn[12]\.|ffn\.net\.)/ },
    ],
  },
  merge: { a: wanWriter(LAYOUTS[0]!), b: wanWriter(LAYOUTS[4]!), rank: 2 * RANK },
  resize: { source: wanWriter(LAYOUTS[2]!) },
  blocks: {
    source: wanWriter(LAYOUTS[2]!),
    groups: [{ prefix: 'blocks.', id: 'B', count: BLOCKS }],
    in: IN_MODULES,
    out: OUT_MODULES,
    weighted: [
      { spec: 'B00-B09=0,B10=0.5,OUT=2', weight: (b) => ({ IN: 1, OUT: 2, B10: 0.5 })[b] ?? (blockIndex(b) < 10 ? 0 : 1), dropped: 10 * BLOCK_MODULES.length },
      { spec: Array.from({ length: 32 }, () => 1), dropped: 0 },
    ],
    refused: [
      ['D00=0', /unknown block id "D00"/],
      ['B00-B40=0', /past the last Wan block/],
    ],
    filters: [['B00', 'in']],
  },
  base: {
    linears: MODS.map((m) => [m.name, m.out, m.in] as const),
    biases: true,
    others: [['head.modulation', [1, 2, W.h]], ['blocks.0.norm3.weight', [W.h]]],
    prefixes: ['model.diffusion_model.', ''],
  },
  apply: { a: wanWriter(LAYOUTS[0]!), b: wanWriter(LAYOUTS[4]!) },
  extract: { deltas: WANT, targets: /^blocks\.(0|29)\.|^head\./, format: 'kohya' },
  refusal: { source: wanWriter(LAYOUTS[0]!), count: 4, error: /is a FLUX\.1 checkpoint.*LoRA 1 is a kohya LoRA for Wan 2\.x/ },
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
    await expect(applyToBase({ base, out, loras: [{ set: high, weight: 1, path: high.path }] })).rejects.toThrow(/low_noise_14B_fp16\.safetensors is for the low-noise model, LoRA 1 .*a_HighNoise\.safetensors\) is for the high-noise model/);
    await expect(SafetensorsFile.open(out)).rejects.toThrow();
    const applied = join(tmp.dir, 'low-applied.safetensors');
    await applyToBase({ base, out: applied, loras: [{ set: low, weight: 1 }] });
    await Promise.all([high.close(), low.close()]);
  });
});
