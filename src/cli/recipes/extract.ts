import { node, recipeDoc } from './build.ts';

export interface ExtractArgs {
  base: string;
  tuned: string;
  output: string;
  rank?: number;
  energy?: number;
  to?: string;
  dtype?: string;
  /** keepBiases of extract-lora (absent: the node's default, keep). */
  keepBiases?: boolean;
}

/** load-model ×2 → extract-lora → save-lora. */
export function extractRecipe(a: ExtractArgs): Record<string, unknown> {
  return recipeDoc('extract', `extract a LoRA from ${a.tuned} − ${a.base}`, {
    base: node('load-model', { path: a.base }),
    tuned: node('load-model', { path: a.tuned }),
    extract: node('extract-lora', { rank: a.rank, energy: a.energy, keepBiases: a.keepBiases }, { base: 'base.model', tuned: 'tuned.model' }),
    save: node('save-lora', { path: a.output, format: a.to, dtype: a.dtype }, { lora: 'extract.lora' }),
  });
}
