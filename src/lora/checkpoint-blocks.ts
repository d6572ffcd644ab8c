/**
 * Block ids of checkpoint tensors, for the per-block α of checkpoint merges (the supermerger /
 * ComfyUI `ModelMergeBlocks` idea), from the checkpoint family's block scheme (FLUX's CLIP, T5,
 * IN, D00–D18, S00–S37, OUT; SD's BASE, INnn, MID, OUTnn; Wan's IN, B00–B39, OUT; …).
 */
import { blockWeightError } from '../formats/block-scheme.ts';
import { familiesWith, familyOf } from '../formats/families.ts';

/** The UNet / transformer prefixes single-file checkpoints put before the diffusion model's keys. */
export const DIFFUSION_PREFIXES = ['model.diffusion_model.', 'diffusion_model.'] as const;

/** A key without its diffusion-model prefix (`model.diffusion_model.x` → `x`), and whether it had one. */
export function stripDiffusionPrefix(name: string): { key: string; prefixed: boolean } {
  for (const p of DIFFUSION_PREFIXES) if (name.startsWith(p)) return { key: name.slice(p.length), prefixed: true };
  return { key: name, prefixed: false };
}

/** Text encoders and the VAE inside FLUX (ComfyUI) and SD single files: not diffusion-model tensors. */
const CLIP_PREFIX = /^(?:text_encoders\.clip_[lg]\.|cond_stage_model\.|conditioner\.embedders\.)/;
const T5_PREFIX = /^text_encoders\.t5xxl\./;
const OTHER_PREFIX = /^(?:first_stage_model\.|vae\.|model_ema\.)/;

/**
 * The component and canonical target one checkpoint tensor belongs to, as the LoRA code names them
 * (`transformer:double_blocks.3.img_attn.qkv.weight`, `unet:input_blocks.4.1.proj_in.weight`), or the
 * bare name for tensors outside the diffusion model. Also the module name of DARE's seeds, so a DARE
 * checkpoint merge draws, per tensor, the masks the LoRA methods draw for the same base weight.
 */
export function checkpointModuleName(architecture: string, name: string): string {
  const { key, prefixed } = stripDiffusionPrefix(name);
  if (!prefixed && (CLIP_PREFIX.test(name) || T5_PREFIX.test(name) || OTHER_PREFIX.test(name))) return name;
  const family = familyOf(architecture);
  return family ? `${family.denoiser}:${key}` : key;
}

/** The block id of one checkpoint tensor (any prefix), or undefined when it is in no block (VAE, embeddings of no slot). */
export function blockOfCheckpointTensor(architecture: string, name: string): string | undefined {
  const { key, prefixed } = stripDiffusionPrefix(name);
  if (!prefixed && OTHER_PREFIX.test(name)) return undefined;
  const textEncoder = prefixed ? undefined : CLIP_PREFIX.test(name) ? 'clip_l' : T5_PREFIX.test(name) ? 't5' : undefined;
  const family = familyOf(architecture);
  return family?.blocks?.blockOf({ component: textEncoder ?? family.denoiser, target: key });
}

/** Every block id of the family (for messages and reports). */
export function checkpointBlockIds(architecture: string): readonly string[] {
  return familyOf(architecture)?.blocks?.ids ?? [];
}

function parseFull(architecture: string, spec: string): ReadonlyMap<string, number> {
  const scheme = familyOf(architecture)?.blocks;
  if (!scheme) throw blockWeightError(`per-block α needs a checkpoint of a family with block ids (${familiesWith((f) => f.blocks !== undefined)}); these are ${architecture}`);
  return scheme.parse(spec);
}

/**
 * α per block id from a spec: `ID=value` pairs with ranges (`"D00-D18=0.3,OUT=1"`, `"IN04-IN08=0,MID=0.5"`)
 * name only some blocks (the others are left out of the map: they take the merge's global α), a
 * full vector of the family's length names them all. Throws naming the id or value that does not fit.
 */
export function parseCheckpointBlocks(architecture: string, spec: string): Map<string, number> {
  const full = parseFull(architecture, spec);
  const parts = spec.split(/[,\s]+/).filter((p) => p !== '');
  if (!parts.some((p) => p.includes('='))) return new Map(full);
  const named = new Map<string, number>();
  for (const part of parts) {
    const lhs = part.slice(0, part.indexOf('='));
    // the ids one pair covers: those a spec of that pair alone sets to 0 (every other id stays 1)
    for (const [id, w] of parseFull(architecture, `${lhs}=0`)) if (w === 0) named.set(id, full.get(id)!);
  }
  return named;
}
