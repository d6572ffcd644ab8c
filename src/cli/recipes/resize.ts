import { node, recipeDoc } from './build.ts';
import { loadLoraParams, type LoraInputArgs } from './lora-options.ts';

export interface ResizeArgs extends LoraInputArgs {
  input: string;
  output: string;
  rank?: number;
  energy?: number;
  to?: string;
  dtype?: string;
}

/** load-lora → resize-lora → save-lora. */
export function resizeRecipe(a: ResizeArgs): Record<string, unknown> {
  return recipeDoc('resize', `resize ${a.input}`, {
    load: node('load-lora', loadLoraParams(a.input, a)),
    resize: node('resize-lora', { rank: a.rank, energy: a.energy }, { lora: 'load.lora' }),
    save: node('save-lora', { path: a.output, format: a.to, dtype: a.dtype }, { lora: 'resize.lora' }),
  });
}
