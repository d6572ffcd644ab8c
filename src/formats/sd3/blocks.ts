/**
 * SD3 / SD3.5 block ids (docs/model-families.md §5.2): IN (the x / t / y / context embedders and the
 * positional embedding), B00–B37 (joint blocks), OUT (`final_layer`). One scheme for every size: a
 * full weight vector has one value per id of one size, SD3(.5)-medium's 24 blocks (26 values) or
 * SD3.5-large's 38 (40). Text-encoder patches are in no block (block weights leave them at 1).
 */
import type { BlockScheme } from '../family.ts';
import { indexedBlockScheme, numberedBlockOf } from '../block-scheme.ts';

/** Joint blocks of SD3-medium / SD3.5-medium and of SD3.5-large (-turbo). */
export const SD3_SIZES = [24, 38] as const;
const MAX = Math.max(...SD3_SIZES);

const BLOCK = /^joint_blocks\.(\d+)\./;
const IN = /^(?:x_embedder|t_embedder|y_embedder|context_embedder)\.|^pos_embed$/;

export const SD3_BLOCKS: BlockScheme = indexedBlockScheme({
  label: 'SD3.5',
  head: ['IN'],
  tail: ['OUT'],
  prefix: 'B',
  sizes: SD3_SIZES,
  blockOf: numberedBlockOf({ block: BLOCK, count: MAX, head: IN, tail: /^final_layer\./ }),
});
