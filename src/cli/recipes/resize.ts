import { node, recipeDoc } from './build.ts';

export interface ResizeArgs {
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
    load: node('load-lora', { path: a.input }),
    resize: node('resize-lora', { rank: a.rank, energy: a.energy }, { lora: 'load.lora' }),
    save: node('save-lora', { path: a.output, format: a.to, dtype: a.dtype }, { lora: 'resize.lora' }),
  });
}
