/**
 * TIES' sign election and disjoint mean (Yadav et al. 2023), as running sums: the task vectors are
 * added one at a time into the total, the sum of the positive entries and the counts of positive
 * and of negative entries, so no more than one of them is ever held (the negative sum is total −
 * positive sum: one dense buffer fewer). The elected sign per entry is the sign of the total; the
 * result is the mean of the entries of that sign, 0 where the total is 0 exactly, NaN where an
 * input held NaN there. Shared by the LoRA merges (merge-methods.ts) and the checkpoint merges
 * (checkpoint-methods.ts).
 */

export type Counts = Uint8Array | Uint16Array;

/** Adds one (trimmed or dropped) task vector `t` into the running sums and counts. */
export function addSigned(t: Float32Array, pos: Float32Array, total: Float32Array, np: Counts, nn: Counts): void {
  for (let j = 0; j < t.length; j++) {
    const v = t[j]!;
    total[j]! += v;
    if (v > 0) {
      pos[j]! += v;
      np[j]!++;
    } else if (v < 0) nn[j]!++;
  }
}

/** The disjoint mean of everything added, written into `pos` (returned). */
export function disjointMean(pos: Float32Array, total: Float32Array, np: Counts, nn: Counts): Float32Array {
  for (let j = 0; j < pos.length; j++) {
    const s = total[j]!;
    pos[j] = s > 0 ? pos[j]! / np[j]! : s < 0 ? (s - pos[j]!) / nn[j]! : s === 0 ? 0 : s;
  }
  return pos;
}
