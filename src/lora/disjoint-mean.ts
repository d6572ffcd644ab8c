/**
 * TIES' sign election and disjoint mean (Yadav et al. 2023), as running sums: the task vectors are
 * added one at a time into the sums and counts of their positive and of their negative entries, so
 * no more than one of them is ever held. The elected sign per entry is the sign of the total
 * (Σ pos + Σ neg); the result is the mean of the entries of that sign, 0 where the total is 0
 * exactly, NaN where an input held NaN there. Shared by the LoRA merges (merge-methods.ts) and the
 * checkpoint merges (checkpoint-methods.ts).
 */

export type Counts = Uint8Array | Uint16Array;

/** Adds one (trimmed or dropped) task vector `t` into the running sums and counts. */
export function addSigned(t: Float32Array, pos: Float32Array, neg: Float32Array, np: Counts, nn: Counts): void {
  for (let j = 0; j < t.length; j++) {
    const v = t[j]!;
    if (v > 0) {
      pos[j]! += v;
      np[j]!++;
    } else if (v < 0) {
      neg[j]! += v;
      nn[j]!++;
    } else if (v !== v) pos[j] = Number.NaN;
  }
}

/** The disjoint mean of everything added, written into `pos` (returned). */
export function disjointMean(pos: Float32Array, neg: Float32Array, np: Counts, nn: Counts): Float32Array {
  for (let j = 0; j < pos.length; j++) {
    const p = pos[j]!;
    const q = neg[j]!;
    const s = p + q;
    pos[j] = s > 0 ? p / np[j]! : s < 0 ? q / nn[j]! : s === 0 ? 0 : s;
  }
  return pos;
}
