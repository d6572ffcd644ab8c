import { node, recipeDoc } from './build.ts';

export interface ConvertArgs {
  input: string;
  output: string;
  to: string;
  dtype?: string;
}

/** load-lora → convert → save-lora. */
export function convertRecipe(a: ConvertArgs): Record<string, unknown> {
  return recipeDoc('convert', `convert ${a.input} to ${a.to}`, {
    load: node('load-lora', { path: a.input }),
    convert: node('convert', { to: a.to, dtype: a.dtype }, { lora: 'load.lora' }),
    save: node('save-lora', { path: a.output }, { lora: 'convert.lora' }),
  });
}
