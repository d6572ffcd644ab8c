/**
 * The options of the commands that read LoRAs (convert, merge, apply, resize), shared the way
 * LOW_RANK_OPTIONS are: one spelling, one help text, one mapping to the load-lora node's params.
 */

export const LORA_INPUT_OPTIONS = {
  'allow-non-finite': { type: 'boolean', default: false },
} as const;

export const LORA_INPUT_OPTIONS_HELP = `  --allow-non-finite  use LoRAs whose tensors hold NaN or ±Inf (by default refused with exit 2,
                      naming the file, the key and the count); the result then reports the
                      non-finite values it holds, by tensor`;

/** The load-lora params the options set (absent when left at their defaults, so recipes stay minimal). */
export interface LoraInputArgs {
  allowNonFinite?: boolean;
}

export function loraInputArgs(values: { 'allow-non-finite'?: boolean }): LoraInputArgs {
  return values['allow-non-finite'] ? { allowNonFinite: true } : {};
}

/** Params of a load-lora node for `path` with these options. */
export function loadLoraParams(path: string, a: LoraInputArgs): Record<string, unknown> {
  return { path, allowNonFinite: a.allowNonFinite || undefined };
}
