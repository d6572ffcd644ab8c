/**
 * Members of a model pair (Wan 2.2's high-noise and low-noise experts) are two models with one
 * key set: a LoRA trained for one does not fit the other, and nothing but the file says which.
 * These checks keep a merge or an apply to one member.
 */
import type { AdapterSet } from '../adapter/model.ts';
import { familyOf } from './families.ts';

/** Where loraflow's outputs say which member they are for. */
export const VARIANT_METADATA = 'loraflow.variant';

/** The member a file is for: as an output of loraflow states it, else as its family reads the name and metadata (undefined: no pairs, or the file does not say). */
export function variantOf(architecture: string, source: { path?: string; metadata?: Readonly<Record<string, string>> }): string | undefined {
  const family = familyOf(architecture);
  if (!family?.variantOf) return undefined;
  return source.metadata?.[VARIANT_METADATA] ?? family.variantOf(source);
}

/** The one member all named items are for, or a message naming the items that disagree. */
export function commonVariant(items: readonly { what: string; variant?: string }[]): { variant?: string } | { problem: string } {
  const named = items.filter((i) => i.variant !== undefined);
  const variants = [...new Set(named.map((i) => i.variant))];
  if (variants.length <= 1) return { variant: variants[0] };
  return {
    problem: `${named.map((i) => `${i.what} is for the ${i.variant} model`).join(', ')}: these are two models of one pair (the same key names, different weights), and a LoRA of one does not fit the other; merge or apply each member with its own`,
  };
}

/** The variants of sets, for a merge's inputs. */
export function inputVariants(sets: readonly Pick<AdapterSet, 'variant'>[]): { what: string; variant?: string }[] {
  return sets.map((s, i) => ({ what: `input ${i + 1}`, variant: s.variant }));
}
