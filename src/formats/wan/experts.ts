/**
 * Wan 2.2 A14B ships two experts with one architecture and key set: the high-noise model (early
 * steps; diffusers `transformer`, ai-toolkit `transformer_1`) and the low-noise model (`transformer_2`).
 * Nothing in a LoRA's keys says which it was trained for (docs/model-families.md §1.7); the file
 * name does by convention (ai-toolkit's `_high_noise` / `_low_noise`, `…_HIGH…` / `…_LOW…`).
 */
import { basename } from 'node:path';

const MARKS: readonly { re: RegExp; expert: string }[] = [
  { re: /(?:^|[^a-z])high[_\- ]?noise(?:[^a-z]|$)/i, expert: 'high-noise' },
  { re: /(?:^|[^a-z])low[_\- ]?noise(?:[^a-z]|$)/i, expert: 'low-noise' },
  { re: /(?:^|[_\-. ])high(?:[_\-. ]|$)/i, expert: 'high-noise' },
  { re: /(?:^|[_\-. ])low(?:[_\-. ]|$)/i, expert: 'low-noise' },
];

/** `high-noise` / `low-noise` when the file name says so. */
export function wanExpert(source: { path?: string }): string | undefined {
  if (!source.path) return undefined;
  const name = basename(source.path).replace(/\.(?:safetensors|gguf|ckpt|pt)$/i, '');
  const found = new Set(MARKS.filter((m) => m.re.test(name)).map((m) => m.expert));
  return found.size === 1 ? [...found][0] : undefined;
}
