/**
 * Deterministic FLUX.1-shaped base checkpoints with the real BFL key names (the layout of
 * `flux1-dev.safetensors`), for tests and benchmarks. Widths shrink by `scale`, key names and
 * block structure stay, so the code paths that handle the real model run in milliseconds.
 *
 * Every tensor's values come from a PRNG seeded by (seed, tensor name), so any tensor can be
 * regenerated alone (`fluxTensorValues`) without writing or reading the file.
 */
import { encodeFromF32, type DType } from '../tensor/dtype.ts';
import { SafetensorsWriter, byteLength, type TensorEntry, type TensorOrder } from '../safetensors/writer.ts';

export interface FluxCheckpointOptions {
  /** Every width (hidden, mlp, head dim, channels, embedder inputs) is divided by this; 1 = real FLUX.1. Must divide 64. */
  scale?: number;
  /** Double-stream blocks (FLUX.1: 19). */
  doubleBlocks?: number;
  /** Single-stream blocks (FLUX.1: 38). */
  singleBlocks?: number;
  /** `guidance_in` embedder: true for FLUX.1-dev, false for schnell. */
  guidance?: boolean;
  /** Key prefix, e.g. `model.diffusion_model.` (ComfyUI full checkpoints); none by default, like BFL's release. */
  prefix?: string;
  dtype?: DType;
  seed?: number;
}

export interface FluxDims {
  hidden: number;
  heads: number;
  headDim: number;
  mlp: number;
  inChannels: number;
  contextDim: number;
  vecDim: number;
  timeDim: number;
}

/** FLUX.1 hyper-parameters (sd-scripts `flux_models.configs["dev"]`; timeDim is `time_in.in_layer`'s input width). */
const FLUX1 = { hidden: 3072, heads: 24, headDim: 128, mlp: 12288, inChannels: 64, contextDim: 4096, vecDim: 768, timeDim: 256 };
const WIDTHS_GCD = 64;

export function fluxDims(scale = 1): FluxDims {
  if (!Number.isInteger(scale) || scale < 1 || WIDTHS_GCD % scale !== 0) {
    throw new Error(`flux checkpoint: scale must be a divisor of ${WIDTHS_GCD} (1, 2, 4, …, 64), got ${scale}`);
  }
  return {
    hidden: FLUX1.hidden / scale,
    heads: FLUX1.heads,
    headDim: FLUX1.headDim / scale,
    mlp: FLUX1.mlp / scale,
    inChannels: FLUX1.inChannels / scale,
    contextDim: FLUX1.contextDim / scale,
    vecDim: FLUX1.vecDim / scale,
    timeDim: FLUX1.timeDim / scale,
  };
}

export interface FluxTensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
  /** Input width of the layer the tensor belongs to (sets the value range, like PyTorch's Linear init). */
  fanIn: number;
  role: 'weight' | 'bias' | 'norm';
}

type Row = [suffix: string, out: number, inp: number];

function linear(prefix: string, out: number, inp: number): Row[] {
  return [[`${prefix}.weight`, out, inp], [`${prefix}.bias`, out, inp]];
}

function rows(d: FluxDims, o: Required<Omit<FluxCheckpointOptions, 'prefix' | 'dtype' | 'seed' | 'scale'>>): Row[] {
  const h = d.hidden;
  const out: Row[] = [
    ...linear('img_in', h, d.inChannels),
    ...linear('txt_in', h, d.contextDim),
    ...linear('time_in.in_layer', h, d.timeDim),
    ...linear('time_in.out_layer', h, h),
    ...linear('vector_in.in_layer', h, d.vecDim),
    ...linear('vector_in.out_layer', h, h),
  ];
  if (o.guidance) out.push(...linear('guidance_in.in_layer', h, d.timeDim), ...linear('guidance_in.out_layer', h, h));
  for (let i = 0; i < o.doubleBlocks; i++) {
    for (const s of ['img', 'txt']) {
      const p = `double_blocks.${i}.${s}`;
      out.push(
        ...linear(`${p}_mod.lin`, 6 * h, h),
        ...linear(`${p}_attn.qkv`, 3 * h, h),
        [`${p}_attn.norm.query_norm.scale`, d.headDim, 0],
        [`${p}_attn.norm.key_norm.scale`, d.headDim, 0],
        ...linear(`${p}_attn.proj`, h, h),
        ...linear(`${p}_mlp.0`, d.mlp, h),
        ...linear(`${p}_mlp.2`, h, d.mlp),
      );
    }
  }
  for (let i = 0; i < o.singleBlocks; i++) {
    const p = `single_blocks.${i}`;
    out.push(
      ...linear(`${p}.linear1`, 3 * h + d.mlp, h),
      ...linear(`${p}.linear2`, h, h + d.mlp),
      ...linear(`${p}.modulation.lin`, 3 * h, h),
      [`${p}.norm.query_norm.scale`, d.headDim, 0],
      [`${p}.norm.key_norm.scale`, d.headDim, 0],
    );
  }
  out.push(...linear('final_layer.linear', d.inChannels, h), ...linear('final_layer.adaLN_modulation.1', 2 * h, h));
  return out;
}

/** Every tensor of the checkpoint, in BFL module order (the writer sorts them as the reference writer does). */
export function fluxCheckpointShapes(opts: FluxCheckpointOptions = {}): FluxTensorSpec[] {
  const d = fluxDims(opts.scale ?? 1);
  const counts = { doubleBlocks: opts.doubleBlocks ?? 19, singleBlocks: opts.singleBlocks ?? 38, guidance: opts.guidance ?? true };
  for (const [k, v] of Object.entries({ doubleBlocks: counts.doubleBlocks, singleBlocks: counts.singleBlocks })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`flux checkpoint: ${k} must be a non-negative integer, got ${v}`);
  }
  const prefix = opts.prefix ?? '';
  const dtype = opts.dtype ?? 'BF16';
  return rows(d, counts).map(([suffix, out, inp]) => {
    const role = suffix.endsWith('.scale') ? 'norm' : suffix.endsWith('.bias') ? 'bias' : 'weight';
    return { name: prefix + suffix, dtype, shape: role === 'weight' ? [out, inp] : [out], fanIn: inp, role };
  });
}

/** FNV-1a over the UTF-16 code units of `text`, mixed with the seed: the PRNG stream of one tensor. */
function streamSeed(text: string, seed: number): number {
  let h = 0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b9);
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Values of one tensor, keyed by its name without the prefix (so prefixed and bare checkpoints hold
 * the same numbers). Weights and biases are uniform in ±1/√fan_in like a freshly initialised
 * Linear; norm scales are 1 ± 0.1.
 */
export function fluxTensorValues(spec: FluxTensorSpec, opts: Pick<FluxCheckpointOptions, 'prefix' | 'seed'> = {}): Float32Array {
  const prefix = opts.prefix ?? '';
  const key = spec.name.startsWith(prefix) ? spec.name.slice(prefix.length) : spec.name;
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const amp = spec.role === 'norm' ? 0.1 : 1 / Math.sqrt(spec.fanIn);
  const offset = spec.role === 'norm' ? 1 : 0;
  const k = (2 * amp) / 2 ** 32;
  // mulberry32: tiny, fast, and good enough for test data; state stays a 32-bit integer.
  let a = streamSeed(key, opts.seed ?? 0);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = offset - amp + ((t ^ (t >>> 14)) >>> 0) * k;
  }
  return out;
}

/** Entries for `writeSafetensors` whose bytes are generated when the writer reaches them. */
export function fluxCheckpointEntries(opts: FluxCheckpointOptions = {}): TensorEntry[] {
  return fluxCheckpointShapes(opts).map((spec) => ({
    name: spec.name,
    dtype: spec.dtype,
    shape: spec.shape,
    data: async () => encodeFromF32(fluxTensorValues(spec, opts), spec.dtype),
  }));
}

export interface WriteFluxOptions extends FluxCheckpointOptions {
  metadata?: Record<string, string>;
  order?: TensorOrder;
}

/** Writes the checkpoint one tensor at a time (memory stays at one tensor, whatever the file size). */
export async function writeFluxCheckpoint(path: string, opts: WriteFluxOptions = {}): Promise<{ tensors: number; dataBytes: number }> {
  const specs = fluxCheckpointShapes(opts);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const writer = await SafetensorsWriter.create(path, specs, { metadata: opts.metadata, order: opts.order ?? 'reference' });
  try {
    for (const { name } of writer.order) await writer.writeF32(name, fluxTensorValues(byName.get(name)!, opts));
    await writer.commit();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  return { tensors: specs.length, dataBytes: specs.reduce((s, t) => s + byteLength(t), 0) };
}
