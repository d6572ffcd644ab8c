/**
 * A LoRA file passed where a base or fine-tuned checkpoint belongs (`apply BASE`, `extract BASE
 * TUNED`): its header has lora_up/lora_down (or LoHa/LoKr/DoRA) keys. Said plainly, before any
 * weight is looked up, instead of a list of every weight it lacks.
 */
import { adapterOnlyKeys } from './keys/roles.ts';

/** Why `path`, given as a `what` (e.g. "base checkpoint"), cannot be one; undefined when it may be. */
export function loraAsCheckpointProblem(path: string, names: Iterable<string>, what: string): string | undefined {
  const found = adapterOnlyKeys(names);
  if (found.length === 0) return undefined;
  return (
    `${path} is a LoRA, not a ${what}: its header has ${found.length} adapter tensor${found.length === 1 ? '' : 's'} ` +
    `(such as ${found.slice(0, 2).join(', ')}); give the model checkpoint there, and the LoRA as a LoRA`
  );
}
