/**
 * Which family a base checkpoint is, from its key names (every family's checkpoint signals, in
 * registration order, then the families' own looks at keys and shapes), and why LoRAs of another
 * family cannot go into it.
 */
import type { Patch } from '../adapter/model.ts';
import type { KeyInfo } from './keys/group.ts';
import { FAMILIES, labelOf, withArticle } from './families.ts';

export type CheckpointKey = KeyInfo;

export interface CheckpointGuess {
  architecture: string;
  evidence: string;
}

// computed on first use: the family modules and this one import each other
const fallbacks = () => [...new Set(FAMILIES.flatMap((f) => (f.checkpoint.fallback ? [f.checkpoint.fallback] : [])))];

export function checkpointArchitecture(keys: readonly CheckpointKey[]): CheckpointGuess {
  for (const f of FAMILIES) {
    for (const s of f.checkpoint.signals) {
      const hit = keys.find((k) => s.re.test(k.name));
      if (hit) return { architecture: f.id, evidence: `${s.what} (${hit.name})` };
    }
  }
  for (const fallback of fallbacks()) {
    const guess = fallback(keys);
    if (guess) return guess;
  }
  return { architecture: 'unknown', evidence: `no key names of a ${FAMILIES.map((f) => f.label).join(', ')} checkpoint` };
}

/**
 * Why LoRAs cannot go into a checkpoint of another model (an SDXL LoRA into a FLUX base, an SD1.5
 * LoRA into SDXL), or undefined when every LoRA fits or either side is unrecognised.
 */
export function crossArchitectureProblem(
  base: { path: string; keys: readonly CheckpointKey[] },
  loras: readonly { architecture: string; format: string; path?: string; patches?: readonly Pick<Patch, 'source'>[] }[],
): string | undefined {
  const guess = checkpointArchitecture(base.keys);
  if (guess.architecture === 'unknown') return undefined;
  const describe = (l: (typeof loras)[number], i: number) => {
    const first = l.patches?.[0]?.source.module;
    const where = [l.path, first ? `modules such as ${first}` : ''].filter(Boolean).join(', ');
    return `LoRA ${i + 1} is a ${l.format} LoRA for ${labelOf(l.architecture)}${where ? ` (${where})` : ''}`;
  };
  const foreign = loras.flatMap((l, i) => (l.architecture !== 'unknown' && l.architecture !== guess.architecture ? [describe(l, i)] : []));
  if (foreign.length === 0) return undefined;
  return `${base.path} is ${withArticle(guess.architecture)} checkpoint (${guess.evidence}), but ${foreign.join('; ')}: a LoRA only fits the model it was trained for`;
}
