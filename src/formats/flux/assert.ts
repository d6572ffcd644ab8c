/** The guard of operations that work on FLUX.1 LoRAs only. */
import type { AdapterSet } from '../../adapter/model.ts';
import { LoraFormatError } from '../../adapter/errors.ts';

/** Refuses a set that is not a FLUX LoRA, saying what it is and which operation needs FLUX. */
export function assertFlux(set: Pick<AdapterSet, 'architecture' | 'format'> & { path?: string }, what: string): void {
  if (set.architecture === 'flux') return;
  const known = set.architecture === 'unknown' ? 'an unrecognised model' : set.architecture.toUpperCase();
  throw new LoraFormatError('NOT_FLUX', `${set.path ? `${set.path}: ` : ''}${what} works on FLUX.1 LoRAs only; this is a ${set.format} LoRA for ${known}`);
}
