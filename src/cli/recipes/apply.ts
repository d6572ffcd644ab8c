import { node, recipeDoc, type RecipeNodeDoc } from './build.ts';
import { loadLoraParams, type LoraInputArgs } from './lora-options.ts';
import type { MethodArgs } from './method-options.ts';
import type { DenseMethod } from '../../lora/merge-methods.ts';

export interface ApplyArgs extends LoraInputArgs, MethodArgs {
  /** Absent or linear: today's plain sum (left out of the recipe). */
  method?: DenseMethod;
  base: string;
  output: string;
  loras: { path: string; weight: number }[];
  dtype?: string;
  clipL?: { in: string; out: string };
  t5?: { in: string; out: string };
  ignoreTextEncoders?: boolean;
}

/** load-model + load-lora ×N → merge-into-base. */
export function applyRecipe(a: ApplyArgs): Record<string, unknown> {
  const nodes: Record<string, RecipeNodeDoc> = { base: node('load-model', { path: a.base }) };
  a.loras.forEach((l, i) => (nodes[`lora_${i + 1}`] = node('load-lora', loadLoraParams(l.path, a))));
  nodes.apply = node(
    'merge-into-base',
    {
      path: a.output,
      weights: a.loras.map((l) => l.weight),
      dtype: a.dtype,
      clipLIn: a.clipL?.in,
      clipLOut: a.clipL?.out,
      t5In: a.t5?.in,
      t5Out: a.t5?.out,
      ignoreTextEncoders: a.ignoreTextEncoders || undefined,
      method: a.method === 'linear' ? undefined : a.method,
      density: a.density,
      drop: a.drop,
      seed: a.seed,
    },
    { base: 'base.model', loras: a.loras.map((_, i) => `lora_${i + 1}.lora`) },
  );
  return recipeDoc('apply', `merge ${a.loras.length} LoRA(s) into ${a.base}`, nodes, { expose: { weights: 'apply.params.weights', output: 'apply.params.path' } });
}
