/**
 * Z-Image block ids in the order the forward pass runs them (docs/model-families.md §4.2): IN
 * (x / t / caption embedders), NR0–NR1 (the noise refiners, on the image tokens), CR0–CR1 (the
 * context refiners, on the caption tokens), B00–B29 (`layers`), OUT (`final_layer`). No
 * text-encoder ids: no Z-Image trainer trains its text encoder. A full vector has 36 values.
 */
import type { BlockScheme } from '../family.ts';
import { indexedBlockScheme } from '../block-scheme.ts';

export const Z_IMAGE_LAYERS = 30;
export const Z_IMAGE_REFINERS = 2;

const pad2 = (i: number) => String(i).padStart(2, '0');
const refiners = (prefix: string) => Array.from({ length: Z_IMAGE_REFINERS }, (_, i) => `${prefix}${i}`);

/** Block container → how its index becomes an id (`undefined` past the model's count). */
const CONTAINERS: Readonly<Record<string, (i: number) => string | undefined>> = {
  layers: (i) => (i < Z_IMAGE_LAYERS ? `B${pad2(i)}` : undefined),
  noise_refiner: (i) => (i < Z_IMAGE_REFINERS ? `NR${i}` : undefined),
  context_refiner: (i) => (i < Z_IMAGE_REFINERS ? `CR${i}` : undefined),
};
const BLOCK = /^(layers|noise_refiner|context_refiner)\.(\d+)\./;
const IN = /^(?:x_embedder|t_embedder|cap_embedder)\./;

export const Z_IMAGE_BLOCKS: BlockScheme = indexedBlockScheme({
  label: 'Z-Image',
  head: ['IN', ...refiners('NR'), ...refiners('CR')],
  tail: ['OUT'],
  prefix: 'B',
  sizes: [Z_IMAGE_LAYERS],
  blockOf: (patch) => {
    if (patch.component !== 'transformer') return undefined;
    const m = BLOCK.exec(patch.target);
    if (m) return CONTAINERS[m[1]!]!(Number(m[2]));
    if (IN.test(patch.target)) return 'IN';
    return patch.target.startsWith('final_layer.') ? 'OUT' : undefined;
  },
});
