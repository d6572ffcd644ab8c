/**
 * Fixtures of the checkpoint-form tests (test/checkpoint-*.test.ts): FLUX bases re-laid as
 * diffusers folders by an explicit BFL → diffusers map written out here (diffusers'
 * convert_flux_to_diffusers facts, independent of the module tables the code uses), LoRAs whose
 * factors are small dyadic numbers (every product and sum exact in f32, so "rounded once" can be
 * checked bit for bit, even through a GGUF quantizer), and the float64 expected result.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AdapterSet, Patch } from '../src/adapter/model.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { referenceDeltas, type TargetDelta } from '../src/samples/reference-delta.ts';
import { memoryTensor } from '../src/tensor/lazy.ts';
import { random } from './ops-fixtures.ts';

/** Where a BFL tensor goes in diffusers: [diffusers name, first row, rows] parts; `swap`: the two row halves trade places. */
export interface DiffusersPart {
  name: string;
  start: number;
  rows: number;
  swap?: boolean;
}

const ONE_TO_ONE: [RegExp, string][] = [
  [/^img_in\.(weight|bias)$/, 'x_embedder.$1'],
  [/^txt_in\.(weight|bias)$/, 'context_embedder.$1'],
  [/^time_in\.in_layer\.(weight|bias)$/, 'time_text_embed.timestep_embedder.linear_1.$1'],
  [/^time_in\.out_layer\.(weight|bias)$/, 'time_text_embed.timestep_embedder.linear_2.$1'],
  [/^vector_in\.in_layer\.(weight|bias)$/, 'time_text_embed.text_embedder.linear_1.$1'],
  [/^vector_in\.out_layer\.(weight|bias)$/, 'time_text_embed.text_embedder.linear_2.$1'],
  [/^guidance_in\.in_layer\.(weight|bias)$/, 'time_text_embed.guidance_embedder.linear_1.$1'],
  [/^guidance_in\.out_layer\.(weight|bias)$/, 'time_text_embed.guidance_embedder.linear_2.$1'],
  [/^double_blocks\.(\d+)\.img_mod\.lin\.(weight|bias)$/, 'transformer_blocks.$1.norm1.linear.$2'],
  [/^double_blocks\.(\d+)\.txt_mod\.lin\.(weight|bias)$/, 'transformer_blocks.$1.norm1_context.linear.$2'],
  [/^double_blocks\.(\d+)\.img_attn\.proj\.(weight|bias)$/, 'transformer_blocks.$1.attn.to_out.0.$2'],
  [/^double_blocks\.(\d+)\.txt_attn\.proj\.(weight|bias)$/, 'transformer_blocks.$1.attn.to_add_out.$2'],
  [/^double_blocks\.(\d+)\.img_mlp\.0\.(weight|bias)$/, 'transformer_blocks.$1.ff.net.0.proj.$2'],
  [/^double_blocks\.(\d+)\.img_mlp\.2\.(weight|bias)$/, 'transformer_blocks.$1.ff.net.2.$2'],
  [/^double_blocks\.(\d+)\.txt_mlp\.0\.(weight|bias)$/, 'transformer_blocks.$1.ff_context.net.0.proj.$2'],
  [/^double_blocks\.(\d+)\.txt_mlp\.2\.(weight|bias)$/, 'transformer_blocks.$1.ff_context.net.2.$2'],
  [/^double_blocks\.(\d+)\.img_attn\.norm\.query_norm\.scale$/, 'transformer_blocks.$1.attn.norm_q.weight'],
  [/^double_blocks\.(\d+)\.img_attn\.norm\.key_norm\.scale$/, 'transformer_blocks.$1.attn.norm_k.weight'],
  [/^double_blocks\.(\d+)\.txt_attn\.norm\.query_norm\.scale$/, 'transformer_blocks.$1.attn.norm_added_q.weight'],
  [/^double_blocks\.(\d+)\.txt_attn\.norm\.key_norm\.scale$/, 'transformer_blocks.$1.attn.norm_added_k.weight'],
  [/^single_blocks\.(\d+)\.linear2\.(weight|bias)$/, 'single_transformer_blocks.$1.proj_out.$2'],
  [/^single_blocks\.(\d+)\.modulation\.lin\.(weight|bias)$/, 'single_transformer_blocks.$1.norm.linear.$2'],
  [/^single_blocks\.(\d+)\.norm\.query_norm\.scale$/, 'single_transformer_blocks.$1.attn.norm_q.weight'],
  [/^single_blocks\.(\d+)\.norm\.key_norm\.scale$/, 'single_transformer_blocks.$1.attn.norm_k.weight'],
  [/^final_layer\.linear\.(weight|bias)$/, 'proj_out.$1'],
];

/** The diffusers tensors of one BFL tensor of a FLUX.1 transformer (h = hidden width). */
export function fluxDiffusersParts(name: string, rows: number, h: number): DiffusersPart[] {
  for (const [re, to] of ONE_TO_ONE) if (re.test(name)) return [{ name: name.replace(re, to), start: 0, rows }];
  let m = /^double_blocks\.(\d+)\.(img|txt)_attn\.qkv\.(weight|bias)$/.exec(name);
  if (m) {
    const [, i, s, p] = m;
    const names = s === 'img' ? ['to_q', 'to_k', 'to_v'] : ['add_q_proj', 'add_k_proj', 'add_v_proj'];
    return names.map((n, k) => ({ name: `transformer_blocks.${i}.attn.${n}.${p}`, start: k * h, rows: h }));
  }
  m = /^single_blocks\.(\d+)\.linear1\.(weight|bias)$/.exec(name);
  if (m) {
    const [, i, p] = m;
    return [
      ...['to_q', 'to_k', 'to_v'].map((n, k) => ({ name: `single_transformer_blocks.${i}.attn.${n}.${p}`, start: k * h, rows: h })),
      { name: `single_transformer_blocks.${i}.proj_mlp.${p}`, start: 3 * h, rows: rows - 3 * h },
    ];
  }
  m = /^final_layer\.adaLN_modulation\.1\.(weight|bias)$/.exec(name);
  if (m) return [{ name: `norm_out.linear.${m[1]}`, start: 0, rows, swap: true }];
  throw new Error(`fixture: no diffusers name for ${name}`);
}

/** Rows of a BFL tensor as its diffusers part holds them (bytes, `rowBytes` per row). */
export function partBytes(bytes: Uint8Array, rowBytes: number, part: DiffusersPart): Uint8Array {
  if (!part.swap) return bytes.slice(part.start * rowBytes, (part.start + part.rows) * rowBytes);
  const half = (part.rows / 2) * rowBytes;
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes.subarray(half), 0);
  out.set(bytes.subarray(0, half), half);
  return out;
}

/** diffusers' index text: json.dumps(index, indent=2, sort_keys=True) + "\n", spelled out. */
export function diffusersIndexText(weightMap: Map<string, string>, totalSize: number): string {
  const names = [...weightMap.keys()].sort();
  const lines = names.map((n, i) => `    ${JSON.stringify(n)}: ${JSON.stringify(weightMap.get(n))}${i < names.length - 1 ? ',' : ''}`);
  return `{\n  "metadata": {\n    "total_size": ${totalSize}\n  },\n  "weight_map": {\n${lines.join('\n')}\n  }\n}\n`;
}

export const FLUX_CONFIG = JSON.stringify({ _class_name: 'FluxTransformer2DModel', _diffusers_version: '0.30.0', guidance_embeds: true }, null, 2);

/**
 * A diffusers model folder holding the FLUX base at `bflPath` (bare BFL names) re-laid by
 * `fluxDiffusersParts`: `shards` shards cut in diffusers name order, each written in the reference
 * order with {"format": "pt"} metadata, the index, a config.json; one shard: the unsharded file.
 */
export async function writeFluxDiffusersFolder(dir: string, bflPath: string, shards = 3, opts: { config?: boolean } = {}): Promise<{ tensors: number }> {
  await mkdir(dir, { recursive: true });
  const entries: TensorEntry[] = [];
  await withSafetensors(bflPath, async (f) => {
    const h = f.info('double_blocks.0.img_attn.proj.weight').shape[0]!;
    for (const t of f.tensors) {
      const bytes = await f.readBytes(t.name);
      const rows = t.shape[0]!;
      for (const part of fluxDiffusersParts(t.name, rows, h)) {
        entries.push({ name: part.name, dtype: t.dtype, shape: [part.rows, ...t.shape.slice(1)], data: partBytes(bytes, bytes.byteLength / rows, part) });
      }
    }
  });
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  const per = Math.ceil(entries.length / shards);
  const weightMap = new Map<string, string>();
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const part = entries.slice(s * per, (s + 1) * per);
    const file = shards === 1 ? 'diffusion_pytorch_model.safetensors' : `diffusion_pytorch_model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    await writeSafetensors(join(dir, file), part, { metadata: { format: 'pt' }, order: 'reference' });
    for (const e of part) {
      weightMap.set(e.name, file);
      total += (e.data as Uint8Array).byteLength;
    }
  }
  if (shards > 1) await writeFile(join(dir, 'diffusion_pytorch_model.safetensors.index.json'), diffusersIndexText(weightMap, total));
  if (opts.config !== false) await writeFile(join(dir, 'config.json'), FLUX_CONFIG);
  return { tensors: entries.length };
}

/** Every file of a folder, by name, with its bytes. */
export async function folderFiles(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) out.set(name, await readFile(join(dir, name)));
  return out;
}

/** Values k/den with k a small integer: products and short sums of them are exact in f32. */
function dyadic(n: number, seed: number, den: number): Float32Array {
  const r = random(seed);
  return Float32Array.from({ length: n }, () => Math.round(r() * 4) / den);
}

/** A rank-`rank` LoRA patch with dyadic factors (scale 1 / 2 alpha), on rows `rows` of `target` ([height, cols]). */
export function dyadicPatch(target: string, height: number, cols: number, seed: number, rows?: readonly [number, number], rank = 4): Patch {
  const len = rows?.[1] ?? height;
  return {
    component: 'transformer',
    target,
    ...(rows ? { rows } : {}),
    adapter: { kind: 'lora', down: memoryTensor(dyadic(rank * cols, seed * 2 + 1, 8), [rank, cols]), up: memoryTensor(dyadic(len * rank, seed * 2 + 2, 64), [len, rank]), alpha: rank / 2, scale: 0.5 },
    source: { module: `${target}${rows ? `[${rows}]` : ''}`, keys: [] },
  };
}

export function loraSet(patches: Patch[], format = 'test'): AdapterSet {
  return { architecture: 'flux', format, patches, metadata: {}, unknownKeys: [], notes: [] };
}

/** W + Σ wᵢ·ΔWᵢ in float64 for one base tensor (replacements first), or undefined when nothing patches it. */
export async function expectedDeltas(loras: readonly { set: AdapterSet; weight: number }[]): Promise<(values: ArrayLike<number>, target: string) => Float64Array | undefined> {
  const refs: { map: Map<string, TargetDelta>; weight: number }[] = await Promise.all(loras.map(async ({ set, weight }) => ({ map: await referenceDeltas(set), weight })));
  return (values, target) => {
    const w = Float64Array.from(values);
    let touched = false;
    for (const { map } of refs) {
      for (const component of ['transformer', 'clip_l', 't5']) {
        const d = map.get(`${component}:${target}`);
        if (d?.replace) {
          w.set(d.data);
          touched = true;
        }
      }
    }
    for (const { map, weight } of refs) {
      for (const component of ['transformer', 'clip_l', 't5']) {
        const d = map.get(`${component}:${target}`);
        if (!d || d.replace) continue;
        for (let i = 0; i < d.data.length; i++) w[i]! += weight * d.data[i]!;
        touched = true;
      }
    }
    return touched ? w : undefined;
  };
}

/**
 * Where two float arrays first differ (bit patterns, so -0 ≠ 0 and NaN = NaN), or undefined when
 * they are the same: vitest's deep equality walks big typed arrays slowly.
 */
export function firstDifference(got: Float32Array, want: Float32Array): string | undefined {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  const a = Buffer.from(got.buffer, got.byteOffset, got.byteLength);
  const b = Buffer.from(want.buffer, want.byteOffset, want.byteLength);
  if (a.equals(b)) return undefined;
  for (let i = 0; i < got.length; i++) if (Object.is(got[i], want[i]) === false && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) return `[${i}] ${got[i]} vs ${want[i]}`;
  return undefined;
}
