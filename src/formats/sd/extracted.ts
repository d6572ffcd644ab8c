/**
 * An extraction from Stable Diffusion checkpoints names its patches by checkpoint key; LoRAs name
 * them canonically (LDM UNet names, Hugging Face text-encoder names). This moves every patch onto
 * its canonical target without arithmetic: an OpenCLIP `in_proj_weight` LoRA becomes three LoRAs
 * (q, k, v) sharing its down, each with its third of the up's rows, which is the same ΔW.
 */
import type { Adapter, Patch } from '../../adapter/model.ts';
import { rowSlice } from '../../adapter/tensor-ops.ts';
import { canonicalTargets } from './checkpoint.ts';
import { unetModuleByLdm } from './lookup.ts';
import type { SdArchitecture } from './unet.ts';

function rowsOf(adapter: Adapter, start: number, len: number): Adapter {
  switch (adapter.kind) {
    case 'lora':
      return { ...adapter, up: rowSlice(adapter.up, start, len) };
    case 'full':
      return { kind: 'full', diff: rowSlice(adapter.diff, start, len) };
    default:
      throw new Error(`extracted ${adapter.kind} patches are not split by rows`);
  }
}

const paramOf = (target: string) => target.slice(target.lastIndexOf('.') + 1);

/** Patches named by checkpoint key (UNet prefix removed) → canonical patches, and what has no canonical target, with why. */
export function canonicalExtraction(arch: SdArchitecture, patches: readonly Patch[], shapeOf: (name: string) => readonly number[]): { patches: Patch[]; skipped: { key: string; reason: string }[] } {
  const out: Patch[] = [];
  const skipped: { key: string; reason: string }[] = [];
  for (const p of patches) {
    const places = canonicalTargets(arch, p.target, shapeOf(p.target));
    if (!Array.isArray(places)) {
      skipped.push({ key: p.target, reason: places.reason });
      continue;
    }
    for (const place of places) {
      if (place.component === 'unet') {
        const path = place.target.slice(0, place.target.lastIndexOf('.'));
        if (!unetModuleByLdm(arch, path) || !['weight', 'bias'].includes(paramOf(place.target))) {
          skipped.push({ key: p.target, reason: `not a parameter of the ${arch.toUpperCase()} UNet` });
          continue;
        }
      }
      const adapter = place.rows ? rowsOf(p.adapter, place.rows[0], place.rows[1]) : p.adapter;
      const module = place.rows ? `${p.source.module}[${place.rows[0]}:${place.rows[0] + place.rows[1]}]` : p.source.module;
      out.push({ component: place.component, target: place.target, adapter, source: { module, keys: p.source.keys } });
    }
  }
  return { patches: out, skipped };
}
