import type { LazyTensor } from '../tensor/lazy.ts';

/**
 * The canonical adapter model: every LoRA layout is read into this and written from it.
 *
 * A LoRA is a list of patches on base-checkpoint weights, named exactly as the base file names
 * them (FLUX: BFL names such as `double_blocks.3.img_attn.qkv.weight`; without the
 * `model.diffusion_model.` prefix, which belongs to the checkpoint file, not the model).
 */

/** A registered family's id (`flux`, `sdxl`, `wan`, …; `src/formats/families.ts`) or `unknown`. */
export type Architecture = string;

/** Which model the target weight belongs to. Text encoders use their Hugging Face names. */
export type Component = 'transformer' | 'unet' | 'clip_l' | 'clip_g' | 't5';

/** A row range of the target weight: `[start, length]` (diffusers `to_k` is a slice of the fused `qkv`). */
export type RowSlice = readonly [start: number, length: number];

export interface LoraAdapter {
  kind: 'lora';
  /** A: `[r, in]` (conv: `[r, in, kh, kw]`). */
  down: LazyTensor;
  /** B: `[out, r]` (conv: `[out, r, 1, 1]`). */
  up: LazyTensor;
  /** LoCon Tucker core (`lora_mid`), conv only. */
  mid?: LazyTensor;
  /** Alpha as stored in the file, if any (kept for provenance and rewriting). */
  alpha?: number;
  /** ΔW = scale · up @ down; scale = alpha / rank, or 1 when the file has no alpha. */
  scale: number;
}

export interface LohaAdapter {
  kind: 'loha';
  w1a: LazyTensor;
  w1b: LazyTensor;
  w2a: LazyTensor;
  w2b: LazyTensor;
  t1?: LazyTensor;
  t2?: LazyTensor;
  alpha?: number;
  /** ΔW = scale · (w1a@w1b) ⊙ (w2a@w2b); scale = alpha / rank(w1b rows), or 1. */
  scale: number;
}

export interface LokrAdapter {
  kind: 'lokr';
  /** w1 = lokr_w1 or lokr_w1_a @ lokr_w1_b. */
  w1?: LazyTensor;
  w1a?: LazyTensor;
  w1b?: LazyTensor;
  /** w2 = lokr_w2 or lokr_w2_a @ lokr_w2_b (or Tucker with t2). */
  w2?: LazyTensor;
  w2a?: LazyTensor;
  w2b?: LazyTensor;
  t2?: LazyTensor;
  alpha?: number;
  /** ΔW = scale · kron(w1, w2); scale = alpha / rank when the factors are decomposed, else 1. */
  scale: number;
}

/** A full difference added to the target (`.diff` for weights, `.diff_b` for biases, BFL `lora_B.bias`). */
export interface FullAdapter {
  kind: 'full';
  diff: LazyTensor;
}

/** Replaces the target outright (BFL control LoRA norm scales). */
export interface SetAdapter {
  kind: 'set';
  value: LazyTensor;
}

export type Adapter = LoraAdapter | LohaAdapter | LokrAdapter | FullAdapter | SetAdapter;
export type AdapterKind = Adapter['kind'];

/** DoRA: the weight is renormalised to this magnitude after the low-rank update. */
export interface DoraMagnitude {
  magnitude: LazyTensor;
  /** `out`: one value per output row (PEFT `lora_magnitude_vector`); `in`: per input column (LyCORIS `dora_scale` `[1, in]`). */
  axis: 'out' | 'in';
}

export interface Patch {
  component: Component;
  /** The base weight's name in its own checkpoint, e.g. `double_blocks.0.img_attn.qkv.weight`. */
  target: string;
  /** Row slice of the target this patch covers; absent = the whole weight. */
  rows?: RowSlice;
  adapter: Adapter;
  dora?: DoraMagnitude;
  /**
   * The base weight must first be zero-padded to this shape (BFL control LoRAs widen `img_in` to
   * take the control image's channels; ComfyUI's `reshape_weight`).
   */
  reshape?: readonly number[];
  /** The source module name (as the file spells it) and every source key this patch consumed. */
  source: { module: string; keys: string[] };
}

export interface AdapterSet {
  architecture: Architecture;
  /** Format id the set was read from (`kohya`, `diffusers`, `comfyui`, `onetrainer`, `xlabs`, `bfl-control`, `lycoris`, …). */
  format: string;
  patches: Patch[];
  /** Header metadata of the source file (carried over by writers and updated). */
  metadata: Record<string, string>;
  /** Keys the reader could not place. Never silently dropped: reported by name. */
  unknownKeys: string[];
  /** Things a user should know about how the file was read (e.g. a split_qkv file whose alpha was not rescaled). */
  notes: string[];
  /** Which member of a pair of models it is for, where the family ships pairs (Wan 2.2's `high-noise` / `low-noise` experts) and the file says. */
  variant?: string;
}

/** Where a patch lands, as one string (target plus row slice), for grouping and messages. */
export function patchKey(p: Pick<Patch, 'component' | 'target' | 'rows'>): string {
  return `${p.component}:${p.target}${p.rows ? `[${p.rows[0]}:${p.rows[0] + p.rows[1]}]` : ''}`;
}
