import { node, recipeDoc, type RecipeNodeDoc } from './build.ts';
import { loadLoraParams, type LoraInputArgs } from './lora-options.ts';
import type { MethodArgs } from './method-options.ts';
import type { MergeMethod } from '../../lora/merge.ts';

export interface MergeArgs extends LoraInputArgs, MethodArgs {
  output: string;
  inputs: { path: string; weight: number }[];
  method: MergeMethod;
  /** Dense methods: write the merged ΔW as full diffs (merge-loras output diff). */
  exact?: boolean;
  rank?: number;
  energy?: number;
  to?: string;
  dtype?: string;
  /** Applied to every input before merging (same spec for all). */
  blockWeights?: string;
}

/** load-lora ×N (→ block-weights) → merge-loras → save-lora. */
export function mergeRecipe(a: MergeArgs): Record<string, unknown> {
  const nodes: Record<string, RecipeNodeDoc> = {};
  const links: string[] = [];
  a.inputs.forEach((input, i) => {
    const id = `lora_${i + 1}`;
    nodes[id] = node('load-lora', loadLoraParams(input.path, a));
    if (a.blockWeights !== undefined) {
      nodes[`${id}_blocks`] = node('block-weights', { weights: a.blockWeights }, { lora: `${id}.lora` });
      links.push(`${id}_blocks.lora`);
    } else links.push(`${id}.lora`);
  });
  nodes.merge = node(
    'merge-loras',
    { method: a.method, weights: a.inputs.map((x) => x.weight), rank: a.rank, energy: a.energy, density: a.density, drop: a.drop, seed: a.seed, output: a.exact ? 'diff' : undefined },
    { loras: links },
  );
  nodes.save = node('save-lora', { path: a.output, format: a.to, dtype: a.dtype }, { lora: 'merge.lora' });
  return recipeDoc('merge', `${a.method} merge of ${a.inputs.length} LoRAs`, nodes, {
    expose: { method: 'merge.params.method', weights: 'merge.params.weights', rank: 'merge.params.rank', output: 'save.params.path' },
  });
}
