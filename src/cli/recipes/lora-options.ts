/**
 * The options of the commands that read LoRAs (convert, merge, apply, resize), shared the way
 * LOW_RANK_OPTIONS are: one spelling, one help text, one mapping to the load-lora node's params.
 */

import { MEMBER_NAMES } from '../../formats/members.ts';

export const LORA_INPUT_OPTIONS = {
  'allow-non-finite': { type: 'boolean', default: false },
  member: { type: 'string' },
} as const;

export const LORA_INPUT_OPTIONS_HELP = `  --allow-non-finite  use LoRAs whose tensors hold NaN or ±Inf (by default refused with exit 2,
                      naming the file, the key and the count); the result then reports the
                      non-finite values it holds, by tensor
  --member NAME       of a file holding both models of a pair (ai-toolkit's combined
                      experts): read that member's keys (${MEMBER_NAMES.join(', ')})`;

/** The load-lora params the options set (absent when left at their defaults, so recipes stay minimal). */
export interface LoraInputArgs {
  allowNonFinite?: boolean;
  member?: string;
}

export function loraInputArgs(values: { 'allow-non-finite'?: boolean; member?: string }): LoraInputArgs {
  return { ...(values['allow-non-finite'] ? { allowNonFinite: true } : {}), ...(values.member !== undefined ? { member: values.member } : {}) };
}

/** Params of a load-lora node for `path` with these options. */
export function loadLoraParams(path: string, a: LoraInputArgs): Record<string, unknown> {
  return { path, allowNonFinite: a.allowNonFinite || undefined, member: a.member };
}
