/**
 * The SD1.5 / SD2 / SDXL UNets' diffusers names ⇄ the LDM names loraflow's SD families use as
 * canonical (`down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight` ⇄
 * `input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight`). Every UNet weight is one tensor in
 * both layouts (no fused or swapped rows), so the map is a rename, built from the UNet module lists
 * (src/formats/sd/unet.ts: the walk of the LDM constructor that pairs the names). The two
 * layouts differ per family in a few names (an upsampler's index depends on whether its level has
 * attention), so each family has its own map.
 */
import { SD_ARCHITECTURES, sdUnetModules, type SdArchitecture } from '../formats/sd/unet.ts';

export interface UnetNames {
  arch: SdArchitecture;
  /** diffusers tensor name → LDM tensor name (no `model.diffusion_model.` prefix). */
  toLdm: ReadonlyMap<string, string>;
  /** LDM tensor name → diffusers tensor name. */
  toDiffusers: ReadonlyMap<string, string>;
}

function build(arch: SdArchitecture): UnetNames {
  const toLdm = new Map<string, string>();
  const toDiffusers = new Map<string, string>();
  for (const m of sdUnetModules(arch)) {
    for (const param of m.bias ? ['weight', 'bias'] : ['weight']) {
      toLdm.set(`${m.diffusers}.${param}`, `${m.ldm}.${param}`);
      toDiffusers.set(`${m.ldm}.${param}`, `${m.diffusers}.${param}`);
    }
  }
  return { arch, toLdm, toDiffusers };
}

const cache = new Map<SdArchitecture, UnetNames>();

export function unetNames(arch: SdArchitecture): UnetNames {
  let names = cache.get(arch);
  if (!names) cache.set(arch, (names = build(arch)));
  return names;
}

/**
 * The UNet map that knows the most of `names` as diffusers names, when at least half of them
 * are (a diffusers `unet/` folder), else undefined. SD1.5 and SD2 share every name: the first of
 * them is returned, and the family is told apart afterwards by shapes, as for a single file.
 */
export function unetNamesOf(names: readonly string[]): UnetNames | undefined {
  let best: { names: UnetNames; hits: number } | undefined;
  for (const arch of SD_ARCHITECTURES) {
    const map = unetNames(arch);
    const hits = names.filter((n) => map.toLdm.has(n)).length;
    if (!best || hits > best.hits) best = { names: map, hits };
  }
  return best && best.hits > 0 && 2 * best.hits >= names.length ? best.names : undefined;
}
