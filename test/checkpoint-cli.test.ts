/**
 * Every checkpoint form through the command line and the nodes: `loraflow apply` on a diffusers
 * pipeline folder keeps a folder, `--format` / `--layout` change it, `loraflow extract` takes a
 * folder; load-model describes each form, save-model converts between them (GGUF → safetensors,
 * folder → single file), all through recipes like any run.
 */
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CanonicalView } from '../src/checkpoint/canonical.ts';
import { readLora } from '../src/formats/read.ts';
import { writeLora } from '../src/formats/write/index.ts';
import { writeGguf } from '../src/gguf/writer.ts';
import { gv } from '../src/gguf/metadata.ts';
import { runRecipe } from '../src/graph/index.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32, encodeFromF32 } from '../src/tensor/dtype.ts';
import { fluxCheckpointShapes, fluxTensorValues, writeFluxCheckpoint } from '../src/samples/flux-checkpoint.ts';
import { registry } from '../nodes/index.ts';
import { dyadicPatch, firstDifference, loraSet, writeFluxDiffusersFolder } from './checkpoint-fixtures.ts';
import { cli } from './helpers/cli.ts';
import { useTempDir } from './helpers/temp-dir.ts';
import { SMALL_FLUX } from './ops-fixtures.ts';

const H = 48;
const tmp = useTempDir('loraflow-ckpt-cli-');
const home = process.cwd();

beforeAll(async () => {
  await useBackend('wasm');
  await writeFluxCheckpoint(tmp.path('flux.safetensors'), { ...SMALL_FLUX, dtype: 'BF16' });
  await writeFluxDiffusersFolder(tmp.path('pipeline', 'transformer'), tmp.path('flux.safetensors'), 3);
  await writeLora(tmp.path('lora.safetensors'), loraSet([dyadicPatch('double_blocks.0.img_attn.qkv.weight', 3 * H, H, 1), dyadicPatch('single_blocks.1.linear1.weight', 3 * H + 192, H, 2, [H, H])]), { format: 'kohya', dtype: 'F32' });
  // a small GGUF: F32 1-D tensors, F16 matrices (rows of 48 are no whole block)
  await writeGguf(tmp.path('flux.gguf'), fluxCheckpointShapes({ ...SMALL_FLUX, dtype: 'F32' }).map((s) => ({ name: s.name, type: s.shape.length < 2 ? 'F32' : 'F16', shape: s.shape, data: fluxTensorValues(s) })), { metadata: { 'general.architecture': gv.str('flux') } });
  process.chdir(tmp.dir);
});
afterAll(() => {
  process.chdir(home);
});

/** What the library gives the BFL file for the same LoRA file (read back, so alpha and dtype are the same). */
async function reference(out: string): Promise<void> {
  const lora = await readLora(tmp.path('lora.safetensors'));
  try {
    await applyToBase({ threads: 0, base: tmp.path('flux.safetensors'), out, loras: [{ set: lora, weight: 1 }] });
  } finally {
    await lora.close();
  }
}

describe('loraflow apply and extract on a diffusers folder', () => {
  it('keeps the folder form by default; --format safetensors --layout original writes the single file a BFL base would give', async () => {
    const r = await cli('apply', 'pipeline', 'out/merged', 'lora.safetensors');
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(tmp.path('out/merged'))).sort()).toEqual(['config.json', 'diffusion_pytorch_model-00001-of-00003.safetensors', 'diffusion_pytorch_model-00002-of-00003.safetensors', 'diffusion_pytorch_model-00003-of-00003.safetensors', 'diffusion_pytorch_model.safetensors.index.json']);
    await reference(tmp.path('ref.safetensors'));
    const r2 = await cli('apply', 'pipeline/transformer', 'out/single.safetensors', 'lora.safetensors', '--format', 'safetensors', '--layout', 'original');
    expect(r2.code, r2.stderr).toBe(0);
    const folder = await CanonicalView.open(tmp.path('out/merged'));
    try {
      await withSafetensors(tmp.path('ref.safetensors'), async (ref) => withSafetensors(tmp.path('out/single.safetensors'), async (single) => {
        expect(single.tensors.map((t) => t.name).sort()).toEqual(ref.tensors.map((t) => t.name).sort());
        for (const t of ref.tensors) {
          const want = await ref.readBytes(t.name);
          expect(Buffer.from(await single.readBytes(t.name)).equals(Buffer.from(want)), t.name).toBe(true);
          expect(Buffer.from(await folder.readStored(t.name)).equals(Buffer.from(want)), t.name).toBe(true);
        }
      }));
    } finally {
      await folder.close();
    }
    const bad = await cli('apply', 'pipeline', 'out/x', 'lora.safetensors', '--format', 'zip');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--format must be one of keep, safetensors, diffusers, gguf, got "zip"/);
  });

  it('extracts from a folder base and a single-file tuned model', async () => {
    const r = await cli('extract', 'pipeline', 'ref.safetensors', 'out/extracted.safetensors', '--rank', '4');
    expect(r.code, r.stderr).toBe(0);
    const lora = await readLora(tmp.path('out/extracted.safetensors'));
    try {
      expect(lora.patches.map((p) => p.target).sort()).toEqual(['double_blocks.0.img_attn.qkv.weight', 'single_blocks.1.linear1.weight']);
    } finally {
      await lora.close();
    }
  });
});

describe('load-model and save-model', () => {
  const doc = (nodes: Record<string, unknown>) => ({ format: 'loraflow.recipe', schemaVersion: 1, nodes });

  it('describe a folder\'s and a GGUF\'s form, and convert them (folder → single file in original names, GGUF → bf16 safetensors)', async () => {
    const r = await runRecipe(doc({
      f: { type: 'load-model', v: '1.1.0', params: { path: 'pipeline/transformer/diffusion_pytorch_model.safetensors.index.json' } },
      g: { type: 'load-model', v: '1.1.0', params: { path: 'flux.gguf' } },
      s: { type: 'save-model', v: '1.1.0', in: { model: 'f.model' }, params: { path: 'out/from-folder.safetensors', format: 'safetensors', layout: 'original' } },
      t: { type: 'save-model', v: '1.1.0', in: { model: 'g.model' }, params: { path: 'out/from-gguf.safetensors', format: 'safetensors', dtype: 'bf16' } },
    }), { registry, cwd: tmp.dir });
    expect(r.status, JSON.stringify(r.problems ?? r.error)).toBe('success');
    expect(r.values.f!.model).toMatchObject({ architecture: 'flux', form: { container: 'diffusers-folder', layout: 'diffusers', encoding: 'plain', diffusersFamily: 'flux', shards: 3 } });
    expect(r.values.g!.model).toMatchObject({ architecture: 'flux', form: { container: 'gguf', layout: 'original' } });
    await withSafetensors(tmp.path('flux.safetensors'), async (b) => withSafetensors(tmp.path('out/from-folder.safetensors'), async (o) => {
      expect(o.tensors.map((t) => t.name).sort()).toEqual(b.tensors.map((t) => t.name).sort());
      for (const t of b.tensors) expect(Buffer.from(await o.readBytes(t.name)).equals(Buffer.from(await b.readBytes(t.name))), t.name).toBe(true);
      expect(o.metadata?.['loraflow.recipe']).toBeTruthy();
    }));
    await withSafetensors(tmp.path('out/from-gguf.safetensors'), async (o) => {
      for (const s of fluxCheckpointShapes({ ...SMALL_FLUX, dtype: 'F32' })) {
        const v = fluxTensorValues(s);
        const stored = s.shape.length < 2 ? v : decodeToF32(encodeFromF32(v, 'F16'), 'F16');
        expect(firstDifference(await o.readF32(s.name), decodeToF32(encodeFromF32(stored, 'BF16'), 'BF16')), s.name).toBeUndefined();
      }
    });
  });
});
