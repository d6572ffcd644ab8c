/**
 * Stable Diffusion single-file checkpoints: which model a checkpoint holds (from its key names and
 * a few shapes), where a canonical text-encoder target sits in it when that is not a plain
 * prefix away (OpenCLIP's fused `in_proj_weight`: q, k and v are its row thirds), and the
 * canonical target of each checkpoint key (for extraction).
 */
import type { Architecture, Component, Patch, RowSlice } from '../model.ts';
import { hfToOpenClip, OPENCLIP_UNMAPPED, openClipToHf, SD_TEXT_ENCODERS } from './text-encoders.ts';
import type { SdArchitecture } from './unet.ts';

export interface CheckpointKey {
  name: string;
  shape: readonly number[];
}

export interface CheckpointGuess {
  architecture: Architecture;
  evidence: string;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Name signals, first match wins (any key prefix). */
const SIGNALS: readonly { architecture: Architecture; re: RegExp; what: string }[] = [
  { architecture: 'flux', re: /(?:^|\.)(?:double_blocks\.\d+\.img_attn\.qkv|single_blocks\.\d+\.linear1)\.weight$/, what: 'FLUX double/single-stream blocks' },
  { architecture: 'sd3', re: /(?:^|\.)joint_blocks\.\d+\.(?:x_block|context_block)\./, what: 'SD3 MMDiT joint blocks' },
  { architecture: 'sdxl', re: /(?:^|\.)label_emb\.0\.0\.weight$|^conditioner\.embedders\.1\.model\./, what: 'SDXL size embedding / OpenCLIP-G conditioner' },
  { architecture: 'sd2', re: /^cond_stage_model\.model\.transformer\./, what: 'OpenCLIP-H text encoder (cond_stage_model.model.)' },
  { architecture: 'sd1', re: /^cond_stage_model\.transformer\.text_model\./, what: 'CLIP-L text encoder (cond_stage_model.transformer.)' },
];

/** SD1 vs SD2 UNet without text encoder: SD1 projects with 1×1 convs, SD2 with Linear; SD1's context is 2.4× the first level's width, SD2's 3.2×. */
function unetFamily(byName: ReadonlyMap<string, CheckpointKey>): CheckpointGuess | undefined {
  const find = (suffix: string) => [...byName.values()].find((k) => k.name.endsWith(suffix));
  const projIn = find('input_blocks.1.1.proj_in.weight');
  const toK = find('input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight');
  if (!projIn && !toK) return undefined;
  if (projIn) return projIn.shape.length === 4 ? { architecture: 'sd1', evidence: `1×1 conv proj_in (${projIn.name})` } : { architecture: 'sd2', evidence: `Linear proj_in (${projIn.name})` };
  const ratio = toK!.shape[1]! / toK!.shape[0]!;
  return { architecture: ratio === 2.4 ? 'sd1' : 'sd2', evidence: `cross-attention context ${ratio}× the level-0 width (${toK!.name})` };
}

export function checkpointArchitecture(keys: readonly CheckpointKey[]): CheckpointGuess {
  for (const s of SIGNALS) {
    const hit = keys.find((k) => s.re.test(k.name));
    if (hit) return { architecture: s.architecture, evidence: `${s.what} (${hit.name})` };
  }
  const unet = keys.some((k) => /(?:^|\.)input_blocks\.\d+\.\d+\./.test(k.name)) ? unetFamily(new Map(keys.map((k) => [k.name, k]))) : undefined;
  return unet ?? { architecture: 'unknown', evidence: 'no FLUX, SD3 or Stable Diffusion UNet/text-encoder key names' };
}

/** OpenCLIP prefixes a canonical text-encoder component may sit behind. */
const OPENCLIP_PREFIXES: Partial<Record<Component, readonly string[]>> = {
  clip_g: ['conditioner.embedders.1.model.'],
  clip_l: ['cond_stage_model.model.'],
};

export interface Located {
  key: string;
  /** Rows of that key the target is (q, k or v of a fused in_proj). */
  rows?: RowSlice;
}

/**
 * Where a Hugging Face–named text-encoder target sits in an OpenCLIP-format checkpoint
 * (`text_model.encoder.layers.3.self_attn.k_proj.weight` → rows [d, 2d) of
 * `…transformer.resblocks.3.attn.in_proj_weight`); undefined when the file has no such key.
 */
export function locateOpenClip(file: { has(key: string): boolean; shapeOf(key: string): readonly number[] }, component: Component, target: string): Located | undefined {
  const oc = hfToOpenClip(target);
  if (!oc) return undefined;
  for (const prefix of OPENCLIP_PREFIXES[component] ?? []) {
    const key = prefix + oc.openclip;
    if (!file.has(key)) continue;
    if (oc.part === undefined) return { key };
    const third = file.shapeOf(key)[0]! / 3;
    return { key, rows: [oc.part * third, third] };
  }
  return undefined;
}

export interface CanonicalTarget {
  component: Component;
  target: string;
  /** Rows of the checkpoint tensor that make up this target (OpenCLIP q/k/v). */
  rows?: RowSlice;
}

/**
 * The canonical targets one checkpoint tensor holds, or why it holds none: UNet weights under
 * their LDM name, text encoders under Hugging Face names (an OpenCLIP `in_proj_weight` holds three).
 * `name` is the key with the UNet prefix (`model.diffusion_model.`) already removed.
 */
export function canonicalTargets(arch: SdArchitecture, name: string, shape: readonly number[]): CanonicalTarget[] | { reason: string } {
  if (name.startsWith('first_stage_model.')) return { reason: 'a VAE weight (LoRAs patch the UNet and text encoders only)' };
  if (name.startsWith('model_ema.')) return { reason: 'an EMA copy of the UNet (not part of the model a LoRA patches)' };
  for (const te of SD_TEXT_ENCODERS[arch]) {
    const { prefix, naming } = te.checkpoint;
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    if (naming === 'hf') return [{ component: te.component, target: rest }];
    const hf = openClipToHf(rest);
    if (!hf) return { reason: OPENCLIP_UNMAPPED[rest] ?? `an OpenCLIP ${te.component} parameter without a Hugging Face counterpart` };
    const third = (shape[0] ?? numel(shape)) / 3;
    return hf.map((h) => (h.part === undefined ? { component: te.component, target: h.hf } : { component: te.component, target: h.hf, rows: [h.part * third, third] as const }));
  }
  if (/^(?:cond_stage_model|conditioner)\./.test(name)) return { reason: `a text-encoder tensor ${arch.toUpperCase()} checkpoints do not have` };
  return [{ component: 'unet', target: name }];
}

/** A patch of a Hugging Face–named OpenCLIP target, moved onto the checkpoint key (and rows) that hold it. */
export function locateOpenClipPatch<P extends Pick<Patch, 'component' | 'target' | 'rows'>>(file: { has(key: string): boolean; info(key: string): { shape: readonly number[] } }, patch: P): { key: string; patch: P } | undefined {
  const at = locateOpenClip({ has: (k) => file.has(k), shapeOf: (k) => file.info(k).shape }, patch.component, patch.target);
  if (!at) return undefined;
  if (!at.rows) return { key: at.key, patch };
  const rows: RowSlice = [at.rows[0] + (patch.rows?.[0] ?? 0), patch.rows?.[1] ?? at.rows[1]];
  return { key: at.key, patch: { ...patch, rows } };
}

const LABELS: Readonly<Record<Architecture, string>> = { flux: 'FLUX.1', sdxl: 'SDXL', sd1: 'SD1.5', sd2: 'SD2', sd3: 'SD3', unknown: 'unrecognised model' };

/** How messages name a model family. */
export function architectureLabel(a: Architecture): string {
  return LABELS[a];
}

/** The label with its article ("an SDXL", "a FLUX.1"). */
function withArticle(a: Architecture): string {
  return `${/^[SU]/i.test(LABELS[a]) ? 'an' : 'a'} ${LABELS[a]}`;
}

/**
 * Why LoRAs cannot go into a checkpoint of another model (an SDXL LoRA into a FLUX base, an SD1.5
 * LoRA into SDXL), or undefined when every LoRA fits or either side is unrecognised.
 */
export function crossArchitectureProblem(
  base: { path: string; keys: readonly CheckpointKey[] },
  loras: readonly { architecture: Architecture; format: string; path?: string; patches?: readonly Pick<Patch, 'source'>[] }[],
): string | undefined {
  const guess = checkpointArchitecture(base.keys);
  if (guess.architecture === 'unknown') return undefined;
  const describe = (l: (typeof loras)[number], i: number) => {
    const first = l.patches?.[0]?.source.module;
    const where = [l.path, first ? `modules such as ${first}` : ''].filter(Boolean).join(', ');
    return `LoRA ${i + 1} is a ${l.format} LoRA for ${architectureLabel(l.architecture)}${where ? ` (${where})` : ''}`;
  };
  const foreign = loras.flatMap((l, i) => (l.architecture !== 'unknown' && l.architecture !== guess.architecture ? [describe(l, i)] : []));
  if (foreign.length === 0) return undefined;
  return `${base.path} is ${withArticle(guess.architecture)} checkpoint (${guess.evidence}), but ${foreign.join('; ')}: a LoRA only fits the model it was trained for`;
}
