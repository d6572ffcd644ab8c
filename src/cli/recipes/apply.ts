import { node, recipeDoc, type RecipeNodeDoc } from './build.ts';

export interface ApplyArgs {
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
  a.loras.forEach((l, i) => (nodes[`lora_${i + 1}`] = node('load-lora', { path: l.path })));
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
    },
    { base: 'base.model', loras: a.loras.map((_, i) => `lora_${i + 1}.lora`) },
  );
  return recipeDoc('apply', `merge ${a.loras.length} LoRA(s) into ${a.base}`, nodes, { expose: { weights: 'apply.params.weights', output: 'apply.params.path' } });
}
