/**
 * FLUX.2 block ids, in FLUX.1's style (docs/model-families.md §3.2): IN (embedders and the three
 * shared modulations), D00–D07 (double blocks), S00–S47 (single blocks), OUT (`final_layer`).
 * No text-encoder ids: no FLUX.2 trainer trains its text encoder. A full vector has one value per
 * id of one size, in that order: dev 8 double + 48 single (58 values), klein-9B 8 + 24 (34),
 * klein-4B 5 + 20 (27).
 */
import type { Patch } from '../../adapter/model.ts';
import type { BlockScheme } from '../family.ts';
import { blockWeightError, doubleSingleExpand, doubleSingleIds, pad2, parseWeightSpec, setInOrder } from '../block-scheme.ts';

export const FLUX2_DOUBLE_BLOCKS = 8;
export const FLUX2_SINGLE_BLOCKS = 48;

/** [double, single] blocks of dev, klein-9B, klein-4B. */
export const FLUX2_SIZES: readonly (readonly [number, number, string])[] = [
  [8, 48, 'dev'],
  [8, 24, 'klein-9B'],
  [5, 20, 'klein-4B'],
];

export const FLUX2_BLOCK_IDS: readonly string[] = doubleSingleIds(FLUX2_DOUBLE_BLOCKS, FLUX2_SINGLE_BLOCKS);
const KNOWN = new Set(FLUX2_BLOCK_IDS);
const SUMMARY = 'IN, D00–D07, S00–S47, OUT';
const LENGTHS = FLUX2_SIZES.map(([d, s, name]) => `${d + s + 2} (${name})`).join(', ');

const IN = /^(?:img_in|txt_in|time_in|guidance_in|double_stream_modulation_img|double_stream_modulation_txt|single_stream_modulation)\./;

export function flux2BlockOf(patch: Pick<Patch, 'component' | 'target'>): string | undefined {
  if (patch.component !== 'transformer') return undefined;
  const m = /^(double|single)_blocks\.(\d+)\./.exec(patch.target);
  if (m) {
    const id = `${m[1] === 'double' ? 'D' : 'S'}${pad2(Number(m[2]))}`;
    return KNOWN.has(id) ? id : undefined;
  }
  if (IN.test(patch.target)) return 'IN';
  return /^final_layer\./.test(patch.target) ? 'OUT' : undefined;
}

const expand = doubleSingleExpand(KNOWN, 'FLUX.2', SUMMARY, 'D00-D07');

function fromList(weights: Map<string, number>, values: readonly number[]): void {
  const size = FLUX2_SIZES.find(([d, s]) => d + s + 2 === values.length);
  if (!size) throw blockWeightError(`a FLUX.2 weight list has ${LENGTHS} values (IN, D…, S…, OUT), got ${values.length}`);
  setInOrder(weights, values, doubleSingleIds(size[0], size[1]));
}

export const FLUX2_BLOCKS: BlockScheme = {
  ids: FLUX2_BLOCK_IDS,
  blockOf: flux2BlockOf,
  describe: `FLUX.2 (${FLUX2_SIZES.map(([d, s]) => d + s + 2).join(', ')}: ${SUMMARY})`,
  parse: (spec) => parseWeightSpec(spec, { ids: FLUX2_BLOCK_IDS, expand, fromList }),
};
