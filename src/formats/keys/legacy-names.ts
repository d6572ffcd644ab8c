/**
 * Module names of the older diffusers LoRA layouts (what diffusers' `lora_conversion_utils.py`
 * produces from kohya files before its PEFT renaming, and older diffusers saved):
 * attention-processor LoRAs (`…attn1.processor.to_q_lora.down.weight`, `…processor.to_out_lora…`),
 * text-encoder `self_attn.to_q_lora`, and the `lora_linear_layer` / `lora` wrappers, rewritten to
 * the module they patch. The key's role (`down.weight`, `up.weight`) is parsed before this.
 */

const REWRITES: readonly [RegExp, string][] = [
  [/\.processor\.(to_[qkv])_lora$/, '.$1'],
  [/\.processor\.to_out_lora$/, '.to_out.0'],
  [/(\.self_attn)\.to_([qkv])_lora$/, '$1.$2_proj'],
  [/(\.self_attn)\.to_out_lora$/, '$1.out_proj'],
  [/(\.attn[12])\.(to_[qkv])_lora$/, '$1.$2'],
  [/(\.attn[12])\.to_out_lora$/, '$1.to_out.0'],
  [/\.lora_linear_layer$/, ''],
  [/\.lora$/, ''],
];

/** The module an old-diffusers module name patches; other names come back unchanged. */
export function modernModuleName(name: string): string {
  for (const [re, to] of REWRITES) if (re.test(name)) return name.replace(re, to);
  return name;
}

export function isLegacyModuleName(name: string): boolean {
  return modernModuleName(name) !== name;
}
