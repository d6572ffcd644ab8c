/**
 * SD1.5 / SD2 / SDXL diffusers `unet/` folders as bases: read under the LDM names the SD families
 * use (src/checkpoint/unet-names.ts), patched by value (W + ΔW rounded once), passed through
 * byte for byte by a no-LoRA apply, written from a single LDM file with `format: 'diffusers'`,
 * and extracted from. The name pairs checked by hand come from diffusers' and ComfyUI's
 * conversion tables (`unet_to_diffusers`), not from the module lists the code uses.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AdapterSet, Patch } from '../src/adapter/model.ts';
import { CanonicalView } from '../src/checkpoint/canonical.ts';
import { sdUnetModules, type SdArchitecture } from '../src/formats/sd/unet.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { extractLora } from '../src/lora/extract.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { UNET_PREFIX, writeSdCheckpoint } from '../src/samples/sd-checkpoint.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32 } from '../src/tensor/dtype.ts';
import { diffusersIndexText, dyadicPatch, firstDifference, folderFiles } from './checkpoint-fixtures.ts';
import { expectDeltasClose } from './helpers/lora.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-unet-folder-');
let n = 0;
const fresh = (name: string) => tmp.path(`${n++}-${name}`);

/** An LDM single file (UNet only, `model.diffusion_model.` names, F32, widths / 64). */
async function ldmFile(arch: SdArchitecture): Promise<string> {
  const path = fresh(`${arch}-ldm.safetensors`);
  await writeSdCheckpoint(path, { arch, factor: 64, dtype: 'F32', textEncoders: false, vae: false });
  return path;
}

/** The same UNet as a diffusers pipeline folder: `unet/` with two shards cut in name order, the index, a config.json. */
async function unetFolder(ldm: string, arch: SdArchitecture): Promise<string> {
  const toDiffusers = new Map<string, string>();
  for (const m of sdUnetModules(arch)) for (const p of ['weight', 'bias']) toDiffusers.set(`${UNET_PREFIX}${m.ldm}.${p}`, `${m.diffusers}.${p}`);
  const entries: TensorEntry[] = [];
  await withSafetensors(ldm, async (f) => {
    for (const t of f.tensors) entries.push({ name: toDiffusers.get(t.name)!, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) });
  });
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  const pipeline = fresh(`${arch}-pipeline`);
  const dir = join(pipeline, 'unet');
  await mkdir(dir, { recursive: true });
  const half = Math.ceil(entries.length / 2);
  const weightMap = new Map<string, string>();
  let total = 0;
  for (const [i, part] of [entries.slice(0, half), entries.slice(half)].entries()) {
    const file = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(join(dir, file), part, { metadata: { format: 'pt' }, order: 'reference' });
    for (const e of part) {
      weightMap.set(e.name, file);
      total += (e.data as Uint8Array).byteLength;
    }
  }
  await writeFile(join(dir, 'diffusion_pytorch_model.safetensors.index.json'), diffusersIndexText(weightMap, total));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ _class_name: 'UNet2DConditionModel', _diffusers_version: '0.30.0' }));
  return pipeline;
}

/** Whether two folders' files are the same names and bytes (Buffer.equals: deep equality walks big buffers slowly). */
function sameFiles(a: Map<string, Buffer>, b: Map<string, Buffer>): boolean {
  return [...a.keys()].join() === [...b.keys()].join() && [...a].every(([name, bytes]) => bytes.equals(b.get(name)!));
}

/** Bytes of one tensor of a folder, by its diffusers name. */
async function folderTensor(folder: string, name: string): Promise<Float32Array> {
  const view = await CanonicalView.open(folder);
  try {
    const file = view.reader.fileOf(name);
    return await withSafetensors(file, async (f) => decodeToF32(await f.readBytes(name), 'F32'));
  } finally {
    await view.close();
  }
}

const unetPatch = (target: string, height: number, cols: number, seed: number): Patch => ({ ...dyadicPatch(target, height, cols, seed), component: 'unet' });
const sdSet = (arch: SdArchitecture, patches: Patch[]): AdapterSet => ({ architecture: arch, format: 'test', patches, metadata: {}, unknownKeys: [], notes: [] });

/** Pairs from the reference conversion tables (the research notes' worked examples). */
const PAIRS: Record<'sd1' | 'sdxl', [ldm: string, diffusers: string][]> = {
  sd1: [
    ['input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight'],
    ['input_blocks.3.0.op.weight', 'down_blocks.0.downsamplers.0.conv.weight'],
    ['input_blocks.4.0.skip_connection.weight', 'down_blocks.1.resnets.0.conv_shortcut.weight'],
    ['middle_block.2.out_layers.3.weight', 'mid_block.resnets.1.conv2.weight'],
    ['output_blocks.2.1.conv.weight', 'up_blocks.0.upsamplers.0.conv.weight'],
    ['output_blocks.11.1.proj_out.bias', 'up_blocks.3.attentions.2.proj_out.bias'],
    ['time_embed.0.weight', 'time_embedding.linear_1.weight'],
    ['input_blocks.0.0.weight', 'conv_in.weight'],
    ['out.0.weight', 'conv_norm_out.weight'],
    ['out.2.bias', 'conv_out.bias'],
  ],
  sdxl: [
    ['input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight', 'down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight'],
    ['input_blocks.7.1.transformer_blocks.9.ff.net.2.weight', 'down_blocks.2.attentions.0.transformer_blocks.9.ff.net.2.weight'],
    ['output_blocks.2.2.conv.weight', 'up_blocks.0.upsamplers.0.conv.weight'],
    ['label_emb.0.0.weight', 'add_embedding.linear_1.weight'],
  ],
};

beforeAll(async () => {
  await useBackend('wasm');
});

describe.each(['sd1', 'sdxl'] as const)('%s unet/ folder', (arch) => {
  let ldm: string;
  let folder: string;
  beforeAll(async () => {
    ldm = await ldmFile(arch);
    folder = await unetFolder(ldm, arch);
  });

  it('reads under the LDM names, each tensor the diffusers one of the reference pair', async () => {
    const view = await CanonicalView.open(folder);
    try {
      expect(view.layout).toBe('diffusers');
      expect(view.family?.id).toBe(arch);
      const ldmNames = await withSafetensors(ldm, async (f) => f.tensors.map((t) => t.name.slice(UNET_PREFIX.length)).sort());
      expect(view.tensors.map((t) => t.name).sort()).toEqual(ldmNames);
      for (const [l, d] of PAIRS[arch]) {
        expect(view.info(l).rows.map((r) => r.tensor), l).toEqual([d]);
        const want = await withSafetensors(ldm, async (f) => f.readBytes(`${UNET_PREFIX}${l}`));
        expect(Buffer.from(await view.readStored(l)).equals(Buffer.from(want)), l).toBe(true);
      }
    } finally {
      await view.close();
    }
  });

  it('passes through a no-LoRA apply byte for byte (shards, index, config)', async () => {
    const out = fresh('copy');
    await applyToBase({ threads: 0, base: folder, out, loras: [] });
    expect(sameFiles(await folderFiles(out), await folderFiles(join(folder, 'unet')))).toBe(true);
  });
});

describe('sd1 unet/ folder patched and extracted', () => {
  const c = 5; // 320 / 64
  const targets: [string, number, number][] = [
    ['input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight', c, c],
    ['input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight', c, 12],
    ['output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight', 8 * c, c],
    ['time_embed.0.weight', 4 * c, c],
  ];
  const set = () => sdSet('sd1', targets.map(([t, h, w], i) => unetPatch(t, h, w, i + 1)));
  let ldm: string;
  let folder: string;
  beforeAll(async () => {
    ldm = await ldmFile('sd1');
    folder = await unetFolder(ldm, 'sd1');
  });

  it('writes W + ΔW (one f32 rounding) under the diffusers names, every other tensor unchanged', async () => {
    const out = fresh('patched');
    for (const threads of [0, 1]) {
      const at = `${out}-${threads}`;
      const report = await applyToBase({ threads, base: folder, out: at, loras: [{ set: set(), weight: 1 }] });
      expect(report.files[0]!.patched).toBe(targets.length);
      const deltas = await referenceDeltas(set());
      const diffusersOf = new Map(sdUnetModules('sd1').map((m) => [`${m.ldm}.weight`, `${m.diffusers}.weight`]));
      for (const [target] of targets) {
        const base = await withSafetensors(ldm, async (f) => f.readF32(`${UNET_PREFIX}${target}`));
        const d = deltas.get(`unet:${target}`)!.data;
        const want = Float32Array.from(base, (w, i) => w + d[i]!);
        expect(firstDifference(await folderTensor(at, diffusersOf.get(target)!), want), target).toBeUndefined();
      }
      const before = await folderFiles(join(folder, 'unet'));
      const after = await folderFiles(at);
      expect([...after.keys()]).toEqual([...before.keys()]);
      expect(after.get('config.json')!.equals(before.get('config.json')!)).toBe(true);
      const untouched = 'down_blocks.0.resnets.0.conv1.weight';
      expect(firstDifference(await folderTensor(at, untouched), await folderTensor(folder, untouched))).toBeUndefined();
    }
  });

  it('writes a single LDM unet file as a diffusers folder with the reference names and values', async () => {
    const bare = fresh('bare.safetensors');
    // the UNet alone under bare LDM names, as a unet-only file holds it
    const entries: TensorEntry[] = await withSafetensors(ldm, async (f) => Promise.all(f.tensors.map(async (t) => ({ name: t.name.slice(UNET_PREFIX.length), dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) }))));
    await writeSafetensors(bare, entries);
    const out = fresh('from-single');
    await applyToBase({ threads: 0, base: bare, out, loras: [], format: 'diffusers' });
    const view = await CanonicalView.open(out);
    try {
      for (const [l, d] of PAIRS.sd1) {
        const stored = view.reader.tensors.find((t) => t.name === d);
        expect(stored, d).toBeDefined();
        const want = await withSafetensors(ldm, async (f) => f.readBytes(`${UNET_PREFIX}${l}`));
        expect(Buffer.from(await view.readStored(l)).equals(Buffer.from(want)), l).toBe(true);
      }
    } finally {
      await view.close();
    }
  });

  it('extracts the ΔW of a patched folder against the folder it came from', async () => {
    const tuned = fresh('tuned');
    await applyToBase({ threads: 0, base: folder, out: tuned, loras: [{ set: set(), weight: 1 }] });
    const { set: got, report } = await extractLora({ base: folder, tuned, rank: 4 });
    expect(report.architecture).toBe('sd1');
    expect(report.modules.map((m) => m.key).sort()).toEqual(targets.map(([t]) => t).sort());
    expectDeltasClose(await referenceDeltas(set()), await referenceDeltas(got), 1e-5);
  });
});

describe('sd2 unet/ folder', () => {
  it('is told from SD1.5 by its Linear proj_in, as a single file is', async () => {
    const ldm = await ldmFile('sd2');
    const view = await CanonicalView.open(await unetFolder(ldm, 'sd2'));
    try {
      expect([view.layout, view.family?.id]).toEqual(['diffusers', 'sd2']);
    } finally {
      await view.close();
    }
  });
});
