/**
 * Deterministic single-file SD1.5 / SD2 / SDXL checkpoints with the real key names and block
 * counts (`model.diffusion_model.` UNet from the module tables, CLIP-L under Hugging Face names,
 * OpenCLIP-H / -bigG under OpenCLIP names with fused `in_proj_weight`, a few VAE tensors), every
 * width divided by `factor` (kernels, sequence length and latent channels that the factor does not
 * divide are kept), so the code paths that handle the real models run in milliseconds.
 *
 * Values come from the same keyed PRNG as the FLUX checkpoint (`fluxTensorValues`), so any tensor
 * can be regenerated alone.
 */
import { writeSafetensors, byteLength, type TensorEntry } from '../safetensors/writer.ts';
import { encodeFromF32, type DType } from '../tensor/dtype.ts';
import { CLIP_VOCAB, SD_TEXT_ENCODERS, type SdTextEncoder } from '../formats/sd/text-encoders.ts';
import { sdUnetModules, type SdArchitecture } from '../formats/sd/unet.ts';
import { fluxTensorValues, type FluxTensorSpec } from './flux-checkpoint.ts';
import { referenceDeltas } from './reference-delta.ts';
import { withSafetensors } from '../safetensors/reader.ts';
import type { AdapterSet } from '../adapter/model.ts';

export const UNET_PREFIX = 'model.diffusion_model.';

export interface SdCheckpointOptions {
  arch: SdArchitecture;
  /** Width divisor (a power of two up to 64); default 64. */
  factor?: number;
  dtype?: DType;
  seed?: number;
  /** Include the text encoders (default true). */
  textEncoders?: boolean;
  /** Include a handful of VAE tensors (default true): weights no LoRA patches, copied through. */
  vae?: boolean;
}

export type SdTensorSpec = FluxTensorSpec & { /** Stored as integers (position ids). */ integer?: boolean };

/** A width at `factor`: divided when the factor divides it, else kept (3×3 kernels, 77 positions, 4 latent channels). */
export function scaledWidth(d: number, factor: number): number {
  return d % factor === 0 ? d / factor : d;
}

function checkFactor(factor: number): void {
  if (!Number.isInteger(factor) || factor < 1 || 64 % factor !== 0) throw new Error(`sd checkpoint: factor must divide 64 (1, 2, 4, …, 64), got ${factor}`);
}

/** Weight shape of a table module at `factor`: out and in divided, kernel dims kept. */
export function scaledShape(shape: readonly number[], factor: number): number[] {
  return shape.map((d, i) => (i < 2 ? scaledWidth(d, factor) : d));
}

function unetSpecs(arch: SdArchitecture, factor: number, dtype: DType): SdTensorSpec[] {
  const out: SdTensorSpec[] = [];
  for (const m of sdUnetModules(arch)) {
    const shape = scaledShape(m.shape, factor);
    const fanIn = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : shape[0]!;
    out.push({ name: `${UNET_PREFIX}${m.ldm}.weight`, dtype, shape, fanIn, role: m.kind === 'norm' ? 'norm' : 'weight' });
    if (m.bias) out.push({ name: `${UNET_PREFIX}${m.ldm}.bias`, dtype, shape: [shape[0]!], fanIn, role: 'bias' });
  }
  return out;
}

function hfClipSpecs(te: SdTextEncoder, factor: number, dtype: DType): SdTensorSpec[] {
  const d = scaledWidth(te.d, factor);
  const ff = scaledWidth(te.ff, factor);
  const p = `${te.checkpoint.prefix}text_model.`;
  const w = (name: string, shape: number[], fanIn: number, role: SdTensorSpec['role'] = 'weight'): SdTensorSpec => ({ name: p + name, dtype, shape, fanIn, role });
  const out: SdTensorSpec[] = [
    w('embeddings.token_embedding.weight', [scaledWidth(CLIP_VOCAB.tokens, factor), d], d),
    w('embeddings.position_embedding.weight', [CLIP_VOCAB.positions, d], d),
    { name: `${p}embeddings.position_ids`, dtype: 'I64', shape: [1, CLIP_VOCAB.positions], fanIn: 1, role: 'weight', integer: true },
  ];
  for (let i = 0; i < te.checkpointLayers; i++) {
    const l = `encoder.layers.${i}.`;
    for (const x of ['q', 'k', 'v', 'out']) out.push(w(`${l}self_attn.${x}_proj.weight`, [d, d], d), w(`${l}self_attn.${x}_proj.bias`, [d], d, 'bias'));
    out.push(
      w(`${l}layer_norm1.weight`, [d], d, 'norm'), w(`${l}layer_norm1.bias`, [d], d, 'bias'),
      w(`${l}mlp.fc1.weight`, [ff, d], d), w(`${l}mlp.fc1.bias`, [ff], d, 'bias'),
      w(`${l}mlp.fc2.weight`, [d, ff], ff), w(`${l}mlp.fc2.bias`, [d], ff, 'bias'),
      w(`${l}layer_norm2.weight`, [d], d, 'norm'), w(`${l}layer_norm2.bias`, [d], d, 'bias'),
    );
  }
  out.push(w('final_layer_norm.weight', [d], d, 'norm'), w('final_layer_norm.bias', [d], d, 'bias'));
  return out;
}

function openClipSpecs(te: SdTextEncoder, factor: number, dtype: DType): SdTensorSpec[] {
  const d = scaledWidth(te.d, factor);
  const ff = scaledWidth(te.ff, factor);
  const p = te.checkpoint.prefix;
  const w = (name: string, shape: number[], fanIn: number, role: SdTensorSpec['role'] = 'weight'): SdTensorSpec => ({ name: p + name, dtype, shape, fanIn, role });
  const out: SdTensorSpec[] = [w('positional_embedding', [CLIP_VOCAB.positions, d], d), w('token_embedding.weight', [scaledWidth(CLIP_VOCAB.tokens, factor), d], d)];
  for (let i = 0; i < te.checkpointLayers; i++) {
    const l = `transformer.resblocks.${i}.`;
    out.push(
      w(`${l}ln_1.weight`, [d], d, 'norm'), w(`${l}ln_1.bias`, [d], d, 'bias'),
      w(`${l}attn.in_proj_weight`, [3 * d, d], d), w(`${l}attn.in_proj_bias`, [3 * d], d, 'bias'),
      w(`${l}attn.out_proj.weight`, [d, d], d), w(`${l}attn.out_proj.bias`, [d], d, 'bias'),
      w(`${l}ln_2.weight`, [d], d, 'norm'), w(`${l}ln_2.bias`, [d], d, 'bias'),
      w(`${l}mlp.c_fc.weight`, [ff, d], d), w(`${l}mlp.c_fc.bias`, [ff], d, 'bias'),
      w(`${l}mlp.c_proj.weight`, [d, ff], ff), w(`${l}mlp.c_proj.bias`, [d], ff, 'bias'),
    );
  }
  out.push(w('ln_final.weight', [d], d, 'norm'), w('ln_final.bias', [d], d, 'bias'), w('text_projection', [d, scaledWidth(te.projection ?? te.d, factor)], d));
  out.push({ name: `${p}logit_scale`, dtype, shape: [], fanIn: 1, role: 'norm' });
  return out;
}

/** A few of the VAE's tensors (the real VAE has ~250): enough to show weights no LoRA touches are carried through. */
function vaeSpecs(factor: number, dtype: DType): SdTensorSpec[] {
  const c = scaledWidth(128, factor);
  const p = 'first_stage_model.';
  return [
    { name: `${p}encoder.conv_in.weight`, dtype, shape: [c, 3, 3, 3], fanIn: 27, role: 'weight' },
    { name: `${p}encoder.conv_in.bias`, dtype, shape: [c], fanIn: 27, role: 'bias' },
    { name: `${p}quant_conv.weight`, dtype, shape: [8, 8, 1, 1], fanIn: 8, role: 'weight' },
    { name: `${p}post_quant_conv.weight`, dtype, shape: [4, 4, 1, 1], fanIn: 4, role: 'weight' },
    { name: `${p}decoder.conv_out.weight`, dtype, shape: [3, c, 3, 3], fanIn: 9 * c, role: 'weight' },
    { name: `${p}decoder.conv_out.bias`, dtype, shape: [3], fanIn: 9 * c, role: 'bias' },
  ];
}

/** Every tensor of the checkpoint. */
export function sdCheckpointShapes(opts: SdCheckpointOptions): SdTensorSpec[] {
  const factor = opts.factor ?? 64;
  checkFactor(factor);
  const dtype = opts.dtype ?? 'F16';
  const specs = unetSpecs(opts.arch, factor, dtype);
  if (opts.textEncoders ?? true) {
    for (const te of SD_TEXT_ENCODERS[opts.arch]) specs.push(...(te.checkpoint.naming === 'hf' ? hfClipSpecs(te, factor, dtype) : openClipSpecs(te, factor, dtype)));
  }
  if (opts.vae ?? true) specs.push(...vaeSpecs(factor, dtype));
  return specs;
}

/** Values of one tensor (position ids count up, like the real ones). */
export function sdTensorValues(spec: SdTensorSpec, opts: Pick<SdCheckpointOptions, 'seed'> = {}): Float32Array {
  if (spec.integer) return Float32Array.from({ length: spec.shape.reduce((a, b) => a * b, 1) }, (_, i) => i);
  if (spec.shape.length === 0) return Float32Array.of(4.6052);
  return fluxTensorValues(spec, { seed: opts.seed });
}

export function sdCheckpointEntries(opts: SdCheckpointOptions): TensorEntry[] {
  return sdCheckpointShapes(opts).map((spec) => ({
    name: spec.name,
    dtype: spec.dtype,
    shape: spec.shape,
    data: async () => encodeFromF32(sdTensorValues(spec, opts), spec.dtype),
  }));
}

/** Writes the checkpoint one tensor at a time. */
export async function writeSdCheckpoint(path: string, opts: SdCheckpointOptions & { metadata?: Record<string, string> }): Promise<{ tensors: number; dataBytes: number }> {
  const entries = sdCheckpointEntries(opts);
  await writeSafetensors(path, entries, { metadata: opts.metadata, order: 'reference' });
  return { tensors: entries.length, dataBytes: entries.reduce((s, t) => s + byteLength(t), 0) };
}

/**
 * Where a canonical target sits in a single-file checkpoint of `arch` at `factor`, written out here
 * independently of the mapping code it checks: UNet behind `model.diffusion_model.`, CLIP-L under
 * Hugging Face names behind its prefix, OpenCLIP (SD2's encoder, SDXL's CLIP-G) q/k/v as row
 * thirds of `attn.in_proj_*`, out_proj / fc1 / fc2 as `attn.out_proj`, `mlp.c_fc`, `mlp.c_proj`.
 */
export function checkpointPlace(arch: SdArchitecture, component: string, target: string, factor = 64): { key: string; row: number } {
  if (component === 'unet') return { key: `${UNET_PREFIX}${target}`, row: 0 };
  if (component === 'clip_l' && arch === 'sd1') return { key: `cond_stage_model.transformer.${target}`, row: 0 };
  if (component === 'clip_l' && arch === 'sdxl') return { key: `conditioner.embedders.0.transformer.${target}`, row: 0 };
  const prefix = arch === 'sd2' ? 'cond_stage_model.model.' : 'conditioner.embedders.1.model.';
  const d = scaledWidth(arch === 'sd2' ? 1024 : 1280, factor);
  const m = /^text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(target);
  if (!m) throw new Error(`checkpointPlace: ${target} is not a text-encoder layer parameter`);
  const block = `${prefix}transformer.resblocks.${m[1]}.`;
  const qkv = /^self_attn\.([qkv])_proj$/.exec(m[2]!);
  if (qkv) return { key: `${block}attn.in_proj_${m[3]}`, row: 'qkv'.indexOf(qkv[1]!) * d };
  const names: Record<string, string> = { 'self_attn.out_proj': 'attn.out_proj', 'mlp.fc1': 'mlp.c_fc', 'mlp.fc2': 'mlp.c_proj', layer_norm1: 'ln_1', layer_norm2: 'ln_2' };
  return { key: `${block}${names[m[2]!]}.${m[3]}`, row: 0 };
}

/**
 * base + Σ wᵢ·ΔWᵢ in float64 for every checkpoint tensor the LoRAs touch (dense reference deltas,
 * routed by `checkpointPlace`): what merging them into the checkpoint must give before rounding.
 */
export async function mergedReference(arch: SdArchitecture, basePath: string, loras: readonly { set: Pick<AdapterSet, 'patches'>; weight: number }[], factor = 64): Promise<Map<string, Float64Array>> {
  const out = new Map<string, Float64Array>();
  await withSafetensors(basePath, async (base) => {
    for (const { set, weight } of loras) {
      for (const delta of (await referenceDeltas(set)).values()) {
        const { key, row } = checkpointPlace(arch, delta.component, delta.target, factor);
        if (!base.has(key)) throw new Error(`mergedReference: ${basePath} has no ${key} for ${delta.component}:${delta.target}`);
        let want = out.get(key);
        if (!want) {
          want = Float64Array.from(await base.readF32(key));
          out.set(key, want);
        }
        const at = row * (want.length / (base.info(key).shape[0] ?? 1));
        for (let i = 0; i < delta.data.length; i++) want[at + i]! += weight * delta.data[i]!;
      }
    }
  });
  return out;
}
