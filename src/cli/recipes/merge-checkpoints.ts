import { node, recipeDoc, type RecipeNodeDoc } from './build.ts';
import type { CheckpointMethod } from '../../lora/checkpoint-methods.ts';

export interface MergeCheckpointsArgs {
  output: string;
  models: string[];
  base?: string;
  method: CheckpointMethod;
  alpha?: number;
  weights?: number[];
  density?: number;
  drop?: number;
  seed?: number;
  blocks?: string;
  dtype?: string;
}

/** load-model ×N (+ the base) → merge-checkpoints. */
export function mergeCheckpointsRecipe(a: MergeCheckpointsArgs): Record<string, unknown> {
  const nodes: Record<string, RecipeNodeDoc> = {};
  a.models.forEach((path, i) => (nodes[`model_${i + 1}`] = node('load-model', { path })));
  if (a.base !== undefined) nodes.base = node('load-model', { path: a.base });
  nodes.merge = node(
    'merge-checkpoints',
    { path: a.output, method: a.method, alpha: a.alpha, weights: a.weights, density: a.density, drop: a.drop, seed: a.seed, blocks: a.blocks, dtype: a.dtype },
    { models: a.models.map((_, i) => `model_${i + 1}.model`), ...(a.base !== undefined ? { base: 'base.model' } : {}) },
  );
  return recipeDoc('merge-checkpoints', `${a.method} merge of ${a.models.join(', ')}`, nodes, { expose: { output: 'merge.params.path' } });
}
