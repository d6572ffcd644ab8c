/**
 * Errors about LoRA layouts: a file that cannot be read as any adapter layout, a module whose
 * tensors do not fit together, or an adapter a target format cannot express. The message always
 * names the file and/or module, so the user can find what is wrong.
 */
import { LoraflowError } from '../errors.ts';
export type LoraFormatErrorCode =
  | 'BAD_SHAPES'
  | 'NOT_FLUX'
  | 'INEXPRESSIBLE'
  | 'UNKNOWN_FORMAT'
  | 'SAME_PATH'
  /** An adapter tensor stored as an integer or boolean dtype. */
  | 'BAD_DTYPE'
  /** A module with half its factors (a lora_down without its lora_up, three of LoHa's four). */
  | 'INCOMPLETE'
  /** A file none of whose keys forms an adapter module (only alphas, only unknown keys, none at all). */
  | 'NO_MODULES'
  /** A file holding both members of a model pair (combined experts), read without choosing one. */
  | 'COMBINED_MEMBERS'
  /** A member asked for that the file does not hold, or that no family has. */
  | 'BAD_MEMBER';

export class LoraFormatError extends LoraflowError {
  declare readonly code: LoraFormatErrorCode;
  constructor(
    code: LoraFormatErrorCode,
    message: string,
    /** The module (as the file spells it, or the canonical target) the problem is about. */
    readonly module?: string,
  ) {
    super('input', code, message);
    this.name = 'LoraFormatError';
  }
}
