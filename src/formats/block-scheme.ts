/**
 * Block-weight vectors in general: one weight per block id of a family's scheme, and the error
 * every scheme's parser throws. The schemes themselves live with their families.
 */
import { inputError, type LoraflowError } from '../errors.ts';

/** One weight per block id (every id of the scheme present). */
export type BlockWeights = ReadonlyMap<string, number>;

export type BlockWeightSpec = string | readonly number[] | Readonly<Record<string, number>>;

export function blockWeightError(message: string): LoraflowError {
  return inputError('BLOCK_WEIGHTS', `block weights: ${message}`);
}
