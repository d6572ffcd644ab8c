/**
 * Where a module of a Stable Diffusion LoRA lands: UNet names (either naming, either spelling) on
 * their LDM module (component `unet`), CLIP names on their Hugging Face module (`clip_l`, `clip_g`).
 * Anything else (FLUX or T5 names in an SD file, names the family's UNet does not have) has no
 * place, so the reader reports its keys by name.
 */
import type { Component } from '../../adapter/model.ts';
import { isResolved, type ResolvedModule, type UnresolvedModule } from '../keys/resolve.ts';
import { findUnetModule } from './lookup.ts';
import type { SdArchitecture } from './unet.ts';

export interface SdPlace {
  component: Component;
  module: string;
  kind: 'linear';
}

export function sdPlace(r: ResolvedModule | UnresolvedModule, arch: SdArchitecture): SdPlace | undefined {
  if (isResolved(r)) {
    return r.component === 'clip_l' || r.component === 'clip_g' ? { component: r.component, module: r.module, kind: 'linear' } : undefined;
  }
  if (r.generic !== 'denoiser') return undefined;
  const m = findUnetModule(arch, r.rest);
  return m && { component: 'unet', module: m.ldm, kind: 'linear' };
}
