/**
 * The options of the interference-aware merge methods (ties, dare, …) for `merge` and `apply`: one
 * spelling, one help text, one mapping to the merge-loras / merge-into-base params.
 */
import { DEFAULT_DENSITY, DEFAULT_DROP, DEFAULT_SEED } from '../../lora/merge-methods.ts';
import { UsageError } from '../command.ts';
import { numberOption } from './args.ts';

export const METHOD_OPTIONS = {
  density: { type: 'string' },
  drop: { type: 'string' },
  seed: { type: 'string' },
} as const;

export const METHOD_OPTIONS_HELP = `  --density D           ties, magnitude-prune: fraction of each input's entries kept per
                        module, by magnitude, in (0, 1] (default ${DEFAULT_DENSITY})
  --drop P              dare, dare-ties: probability of dropping each entry, in [0, 1); kept
                        entries are scaled by 1/(1 − P) (default ${DEFAULT_DROP}; PEFT's density is 1 − P)
  --seed S              dare, dare-ties: seed of the masks, an integer (default ${DEFAULT_SEED}); the same
                        seed gives the same file on every backend`;

export const METHODS_HELP = `  linear           Σ τᵢ, where τᵢ = wᵢ·ΔWᵢ (the weighted sum)
  ties             trim each τᵢ to its top --density by magnitude, elect the sign of Σ τᵢ per entry,
                   average the entries that agree with it (TIES-Merging, Yadav et al. 2023)
  dare             drop each entry of τᵢ with probability --drop, rescale by 1/(1 − drop), sum
                   (DARE, Yu et al. 2023); seeded by --seed
  dare-ties        dare's drop and rescale, then ties' sign election and disjoint mean
  magnitude-prune  trim each τᵢ to its top --density by magnitude, sum`;

export interface MethodArgs {
  density?: number;
  drop?: number;
  seed?: number;
}

export function methodArgs(values: { density?: string; drop?: string; seed?: string }): MethodArgs {
  const seed = numberOption(values.seed, 'seed', true);
  if (seed !== undefined && (seed < 0 || seed >= 2 ** 32)) throw new UsageError(`--seed must be an integer in [0, 2^32), got ${values.seed}`);
  return { density: numberOption(values.density, 'density'), drop: numberOption(values.drop, 'drop'), seed };
}
