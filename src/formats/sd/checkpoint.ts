/**
 * Stable Diffusion single-file checkpoints: where a canonical text-encoder target sits in one when
 * that is not a plain prefix away (OpenCLIP's fused `in_proj_weight`: q, k and v are its row thirds), and the
 * canonical target of each checkpoint key (for extraction).
 */
import type { Component, Patch, RowSlice } from '../../adapter/model.ts';
import { hfToOpenClip, OPENCLIP_UNMAPPED, openClipToHf, SD_TEXT_ENCODERS } from './text-encoders.ts';
import type { SdArchitecture } from './unet.ts';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

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

// where callers have always found it; the checkpoint detection itself covers every family
export { checkpointArchitecture } from '../checkpoint-family.ts';
