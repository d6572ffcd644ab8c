import { node, recipeDoc } from './build.ts';
import { loadLoraParams, type LoraInputArgs } from './lora-options.ts';

export interface ConvertArgs extends LoraInputArgs {
  input: string;
  output: string;
  to: string;
  dtype?: string;
}

/** load-lora → convert → save-lora. */
export function convertRecipe(a: ConvertArgs): Record<string, unknown> {
  return recipeDoc('convert', `convert ${a.input} to ${a.to}`, {
    load: node('load-lora', loadLoraParams(a.input, a)),
    convert: node('convert', { to: a.to, dtype: a.dtype }, { lora: 'load.lora' }),
    save: node('save-lora', { path: a.output }, { lora: 'convert.lora' }),
  });
}
