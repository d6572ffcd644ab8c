/**
 * FLUX block ids and block-weight vectors, with the same 61 ids as the LoRA Block Weight
 * extension and supermerger: CLIP, T5, IN, D00–D18, S00–S37, OUT.
 */
import type { Patch } from '../../adapter/model.ts';
import type { BlockScheme } from '../family.ts';
import { blockWeightError, pad2, parseWeightSpec, setInOrder, type BlockWeights, type BlockWeightSpec } from '../block-scheme.ts';

export const FLUX_DOUBLE_BLOCKS = 19;
export const FLUX_SINGLE_BLOCKS = 38;

/** The 61 slots in vector order. */
export const FLUX_BLOCK_IDS: readonly string[] = [
  'CLIP',
  'T5',
  'IN',
  ...Array.from({ length: FLUX_DOUBLE_BLOCKS }, (_, i) => `D${pad2(i)}`),
  ...Array.from({ length: FLUX_SINGLE_BLOCKS }, (_, i) => `S${pad2(i)}`),
  'OUT',
];

const BLOCK_INDEX = new Map(FLUX_BLOCK_IDS.map((id, i) => [id, i]));

export function isFluxBlockId(id: string): boolean {
  return BLOCK_INDEX.has(id);
}

/** Patch → block id, first match wins. Text encoders by component; the transformer by BFL target name. */
const COMPONENT_BLOCKS: Partial<Record<Patch['component'], string>> = { clip_l: 'CLIP', clip_g: 'CLIP', t5: 'T5' };

const TARGET_BLOCKS: readonly { pattern: RegExp; block: (m: RegExpMatchArray) => string }[] = [
  { pattern: /^double_blocks\.(\d+)\./, block: (m) => `D${pad2(Number(m[1]))}` },
  { pattern: /^single_blocks\.(\d+)\./, block: (m) => `S${pad2(Number(m[1]))}` },
  { pattern: /^(img_in|txt_in|time_in|vector_in|guidance_in)\./, block: () => 'IN' },
  { pattern: /^final_layer\./, block: () => 'OUT' },
];

/**
 * The block a patch belongs to, or undefined when its target is in none of the 61 slots
 * (e.g. double block 19 of a model with more blocks than FLUX.1).
 */
export function blockOf(patch: Pick<Patch, 'component' | 'target'>): string | undefined {
  const byComponent = COMPONENT_BLOCKS[patch.component];
  if (byComponent) return byComponent;
  for (const { pattern, block } of TARGET_BLOCKS) {
    const m = patch.target.match(pattern);
    if (m) {
      const id = block(m);
      return BLOCK_INDEX.has(id) ? id : undefined;
    }
  }
  return undefined;
}

/** `D03` or a range of one kind, `D00-D18` / `S10-S37`; returns the ids it covers. */
function expandId(token: string): string[] {
  const id = token.trim().toUpperCase();
  if (BLOCK_INDEX.has(id)) return [id];
  const range = id.match(/^([DS])(\d{2})-([DS])?(\d{2})$/);
  if (range && (!range[3] || range[3] === range[1])) {
    const from = Number(range[2]);
    const to = Number(range[4]);
    const ids = [];
    for (let i = Math.min(from, to); i <= Math.max(from, to); i++) ids.push(`${range[1]}${pad2(i)}`);
    const missing = ids.find((x) => !BLOCK_INDEX.has(x));
    if (!missing) return ids;
    throw blockWeightError(`range ${token.trim()} goes past the last block (${missing} is not a FLUX block id)`);
  }
  throw blockWeightError(`unknown block id "${token.trim()}" (expected one of CLIP, T5, IN, D00–D18, S00–S37, OUT, or a range like D00-D18)`);
}

/**
 * Reads a block-weight vector: 61 numbers (array or comma/space separated text, in the order of
 * FLUX_BLOCK_IDS), or `ID=value` pairs (`"D00-D18=0.5, OUT=0"`, or an object) where unnamed
 * blocks keep weight 1.
 */
export function parseBlockWeights(spec: BlockWeightSpec): BlockWeights {
  return parseWeightSpec(spec, {
    ids: FLUX_BLOCK_IDS,
    expand: expandId,
    fromList: (weights, values) => {
      if (values.length !== FLUX_BLOCK_IDS.length) {
        throw blockWeightError(`a weight list needs ${FLUX_BLOCK_IDS.length} values (CLIP, T5, IN, D00–D18, S00–S37, OUT), got ${values.length}`);
      }
      setInOrder(weights, values, FLUX_BLOCK_IDS);
    },
  });
}


export const FLUX_BLOCKS: BlockScheme = {
  ids: FLUX_BLOCK_IDS,
  blockOf,
  parse: (spec) => new Map(parseBlockWeights(spec)),
  describe: 'FLUX (61: CLIP, T5, IN, D00–D18, S00–S37, OUT)',
};
