/**
 * Block weights: each patch scaled by the weight of its block, with the block ids of the set's
 * family (FLUX's 61, SDXL's 20, …; the LoRA Block Weight extension's and supermerger's ids).
 */
import type { AdapterSet } from '../adapter/model.ts';
import type { BlockScheme } from '../formats/family.ts';
import { blockSchemes, familiesWith, familyOf, withArticle } from '../formats/families.ts';
import { blockWeightError, type BlockWeights, type BlockWeightSpec } from '../formats/block-scheme.ts';
import { scalePatches } from './scale.ts';

// the FLUX scheme's own exports, where callers (and tests) have always found them
export { blockWeightError, type BlockWeights, type BlockWeightSpec };

export interface BlockWeightReport {
  /** Blocks whose weight is not 1, with that weight. */
  weights: Record<string, number>;
  /** Patches per block that were weighted (weight ≠ 1, ≠ 0). */
  scaled: number;
  /** Modules removed because their block's weight is 0. */
  dropped: string[];
  /** Modules in none of the scheme's blocks: left at weight 1. */
  unassigned: string[];
  notes: string[];
}

/** The block scheme of a set's family; refused for a family without block ids. */
function schemeOf(set: AdapterSet): BlockScheme {
  const family = familyOf(set.architecture);
  if (!family?.blocks) {
    throw blockWeightError(`block weights apply to ${familiesWith((f) => f.blocks !== undefined)} LoRAs, not to ${withArticle(set.architecture)} LoRA (format ${set.format})`);
  }
  return family.blocks;
}

/** Undefined when `spec` is a block-weight spec for some family's scheme, else why not for each. */
export function checkBlockWeightSpec(spec: BlockWeightSpec): string | undefined {
  const problems: string[] = [];
  for (const scheme of blockSchemes()) {
    try {
      scheme.parse(spec);
      return undefined;
    } catch (e) {
      problems.push(`${scheme.describe.replace(/ \(.*$/, '')}: ${(e as Error).message.replace(/^block weights: /, '')}`);
    }
  }
  return problems.join('; ');
}

/** Weights each patch of a set by the weight of its block in the set's family's scheme. */
export function applyBlockWeights(set: AdapterSet, spec: BlockWeightSpec | BlockWeights): { set: AdapterSet; report: BlockWeightReport } {
  const scheme = schemeOf(set);
  const weights = spec instanceof Map ? (spec as BlockWeights) : scheme.parse(spec as BlockWeightSpec);
  const foreign = [...weights.keys()].filter((id) => !scheme.ids.includes(id));
  if (foreign.length) throw blockWeightError(`${foreign.slice(0, 5).join(', ')} are not block ids of a ${set.architecture} LoRA (${scheme.ids[0]}, …, ${scheme.ids.at(-1)})`);
  const unassigned: string[] = [];
  const { set: out, report } = scalePatches(set, (patch) => {
    const block = scheme.blockOf(patch);
    if (block === undefined) {
      unassigned.push(patch.source.module);
      return 1;
    }
    return weights.get(block) ?? 1;
  });
  const changed = Object.fromEntries([...weights].filter(([, w]) => w !== 1));
  return { set: out, report: { weights: changed, scaled: report.scaled, dropped: report.dropped, unassigned, notes: report.notes } };
}
