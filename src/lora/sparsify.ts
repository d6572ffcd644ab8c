/**
 * The two ways the interference-aware merges (merge-methods.ts) thin out a task vector τ, in place
 * on its dense f32 values:
 *
 *  - keepTopK: keep the k entries of largest |τ|, zero the rest (TIES' trim, magnitude-prune). The
 *    threshold comes from an O(n) radix selection on the IEEE-754 bit patterns (with the sign bit
 *    cleared they order like the magnitudes), two histogram passes and no copy of the values; entries
 *    tied at the threshold are kept lowest index first, so the result never depends on the platform.
 *  - dropAndRescale: DARE's Bernoulli mask, keeping each entry with probability 1 − p and scaling
 *    what is kept by 1/(1 − p). The mask is drawn on the CPU from mulberry32 in index order, seeded by
 *    dareSeed(seed, input, module), so it is the same on every backend, in every run, and differs for
 *    another seed.
 */
import { seedFromName } from './seed.ts';

const HIGH_BINS = 1 << 15;
const LOW_BINS = 1 << 16;

/** k = round(density · n), at least 1 when there is anything (a tiny density keeps the largest entry, never nothing). */
export function topKCount(density: number, n: number): number {
  if (n <= 0) return 0;
  return Math.min(n, Math.max(1, Math.round(density * n)));
}

/**
 * Zeroes every entry of `values` but the k of largest magnitude; of the entries whose magnitude
 * equals the k-th largest, the lowest indices are kept. NaN counts as larger than ±Inf.
 */
export function keepTopK(values: Float32Array, k: number): void {
  const n = values.length;
  if (k >= n) return;
  if (k <= 0) {
    values.fill(0);
    return;
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  // Pass 1: histogram of the high 15 bits of |x| (sign cleared): the bin holding the k-th largest.
  const high = new Uint32Array(HIGH_BINS);
  for (let j = 0; j < n; j++) high[(bits[j]! & 0x7fffffff) >>> 16]!++;
  const { bin: h, above } = binHolding(high, k);
  // Pass 2: the low 16 bits inside that bin give the exact threshold pattern.
  const low = new Uint32Array(LOW_BINS);
  for (let j = 0; j < n; j++) {
    const a = bits[j]! & 0x7fffffff;
    if (a >>> 16 === h) low[a & 0xffff]!++;
  }
  const need = k - above;
  const { bin: l, above: within } = binHolding(low, need);
  const threshold = ((h << 16) | l) >>> 0;
  let ties = need - within;
  // Pass 3: keep what is above the threshold and the first `ties` entries at it.
  for (let j = 0; j < n; j++) {
    const a = bits[j]! & 0x7fffffff;
    if (a > threshold) continue;
    if (a === threshold && ties > 0) {
      ties--;
      continue;
    }
    values[j] = 0;
  }
}

/** The 32-bit seed of one input's DARE mask on one module: FNV-1a of "seed:input:module" (input 0-based). */
export function dareSeed(seed: number, input: number, module: string): number {
  return seedFromName(`${seed >>> 0}:${input}:${module}`);
}

/** u32 draws below this keep an entry: round((1 − p)·2³²), so p = 0 keeps everything. */
function keepThreshold(drop: number): number {
  return Math.round((1 - drop) * 2 ** 32);
}

/**
 * DARE on `values` in place: entry j is kept when the j-th mulberry32 draw of the stream `seed` is
 * below (1 − p)·2³², and kept entries are multiplied by 1/(1 − p); the others become 0.
 */
export function dropAndRescale(values: Float32Array, drop: number, seed: number): void {
  if (drop <= 0) return;
  const threshold = keepThreshold(drop);
  const rescale = 1 / (1 - drop);
  let state = seed >>> 0;
  for (let j = 0; j < values.length; j++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = (t ^ (t >>> 14)) >>> 0;
    values[j] = u < threshold ? values[j]! * rescale : 0;
  }
}

/** The keep mask dropAndRescale applies (1 = kept), for inspection and tests. */
export function dareMask(n: number, drop: number, seed: number): Uint8Array {
  const ones = new Float32Array(n).fill(1);
  dropAndRescale(ones, drop, seed);
  return Uint8Array.from(ones, (v) => (v !== 0 ? 1 : 0));
}

/** Walking down from the top bin: the bin that holds the k-th largest entry, and how many lie above it. */
function binHolding(histogram: Uint32Array, k: number): { bin: number; above: number } {
  let above = 0;
  let bin = histogram.length - 1;
  for (; bin > 0; bin--) {
    const c = histogram[bin]!;
    if (above + c >= k) break;
    above += c;
  }
  return { bin, above };
}
