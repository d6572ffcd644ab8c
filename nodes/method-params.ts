/** Params of the interference-aware merge methods (ties, dare, …), shared by merge-loras and merge-into-base. */
import { z } from 'zod';
import type { NodeProblemSpec } from '../src/graph/node.ts';
import { DEFAULT_DENSITY, DEFAULT_DROP, DEFAULT_SEED, DENSE_METHODS, isDenseMethod, resolveMethod, type MethodParams } from '../src/lora/merge-methods.ts';

export const densityParam = z.number().gt(0).max(1).optional()
  .describe(`ties, magnitude-prune: fraction of each input's entries kept per module, by magnitude (default ${DEFAULT_DENSITY}).`);
export const dropParam = z.number().min(0).lt(1).optional()
  .describe(`dare, dare-ties: probability of dropping each entry; kept ones are scaled by 1/(1 − drop) (default ${DEFAULT_DROP}; PEFT's density is 1 − drop).`);
export const seedParam = z.number().int().min(0).max(2 ** 32 - 1).optional()
  .describe(`dare, dare-ties: seed of the masks; the same seed gives the same masks on every backend (default ${DEFAULT_SEED}).`);

const NAMES = ['density', 'drop', 'seed'] as const;

/** density / drop / seed given where the method does not use them, or out of range, as node problems naming the param. */
export function methodParamProblems(method: string, p: MethodParams): NodeProblemSpec[] {
  if (!isDenseMethod(method)) {
    return NAMES.filter((k) => p[k] !== undefined).map((k) => ({ param: k, message: `${k} applies to the methods ${DENSE_METHODS.filter((m) => m !== 'linear').join(', ')}, not ${method}` }));
  }
  try {
    resolveMethod(method, p, 'method');
    return [];
  } catch (e) {
    const message = (e as Error).message.replace(/^method \([^)]*\): /, '');
    return [{ param: NAMES.find((k) => message.startsWith(`${k} `)) ?? 'method', message }];
  }
}
