/**
 * HunyuanVideo block ids, in FLUX.1's style (docs/model-families.md §6.2): IN (img_in, txt_in with
 * its token refiner, time_in, vector_in, guidance_in), D00–D19 (double blocks), S00–S39 (single
 * blocks), OUT (`final_layer`). No text-encoder ids: no HunyuanVideo trainer trains its text
 * encoders. A full vector has 62 values in that order.
 */
import type { Patch } from '../../adapter/model.ts';
import type { BlockScheme } from '../family.ts';
import { blockWeightError, doubleSingleExpand, doubleSingleIds, pad2, parseWeightSpec, setInOrder } from '../block-scheme.ts';
import { HUNYUAN_VIDEO_DOUBLE_BLOCKS, HUNYUAN_VIDEO_SINGLE_BLOCKS } from './detection.ts';

export const HUNYUAN_VIDEO_BLOCK_IDS: readonly string[] = doubleSingleIds(HUNYUAN_VIDEO_DOUBLE_BLOCKS, HUNYUAN_VIDEO_SINGLE_BLOCKS);
const KNOWN = new Set(HUNYUAN_VIDEO_BLOCK_IDS);
const SUMMARY = 'IN, D00–D19, S00–S39, OUT';

/** Patch → block id by the canonical (or Tencent: same prefixes) target name, first match wins. */
const TARGET_BLOCKS: readonly { re: RegExp; id: (m: RegExpExecArray) => string }[] = [
  { re: /^double_blocks\.(\d+)\./, id: (m) => `D${pad2(Number(m[1]))}` },
  { re: /^single_blocks\.(\d+)\./, id: (m) => `S${pad2(Number(m[1]))}` },
  { re: /^(?:img_in|txt_in|time_in|vector_in|guidance_in)\./, id: () => 'IN' },
  { re: /^final_layer\./, id: () => 'OUT' },
];

export function hunyuanVideoBlockOf(patch: Pick<Patch, 'component' | 'target'>): string | undefined {
  if (patch.component !== 'transformer') return undefined;
  for (const { re, id } of TARGET_BLOCKS) {
    const m = re.exec(patch.target);
    if (m) {
      const block = id(m);
      return KNOWN.has(block) ? block : undefined;
    }
  }
  return undefined;
}

const expand = doubleSingleExpand(KNOWN, 'HunyuanVideo', SUMMARY, 'D00-D19');

function fromList(weights: Map<string, number>, values: readonly number[]): void {
  if (values.length !== HUNYUAN_VIDEO_BLOCK_IDS.length) {
    throw blockWeightError(`a HunyuanVideo weight list has ${HUNYUAN_VIDEO_BLOCK_IDS.length} values (${SUMMARY}), got ${values.length}`);
  }
  setInOrder(weights, values, HUNYUAN_VIDEO_BLOCK_IDS);
}

export const HUNYUAN_VIDEO_BLOCKS: BlockScheme = {
  ids: HUNYUAN_VIDEO_BLOCK_IDS,
  blockOf: hunyuanVideoBlockOf,
  describe: `HunyuanVideo (${HUNYUAN_VIDEO_BLOCK_IDS.length}: ${SUMMARY})`,
  parse: (spec) => parseWeightSpec(spec, { ids: HUNYUAN_VIDEO_BLOCK_IDS, expand, fromList }),
};
