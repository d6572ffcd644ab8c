/**
 * DoRA (weight-decomposed LoRA): after the low-rank update the weight is renormalised
 * to a learned magnitude, W'' = m · (W + ΔW) / ‖W + ΔW‖, the norm taken per output row (PEFT
 * `lora_magnitude_vector`) or per input column (LyCORIS `dora_scale` [1, in]). A strength w blends:
 * W ← W + w·(W'' − W), so w = 1 is the trained result and w = 0 leaves the weight alone.
 */
import type { DoraMagnitude } from '../adapter/model.ts';

/**
 * Applies one DoRA patch in place to rows [rowStart, rowStart + rows) of `w` ([·, cols], f32).
 * `delta` is the patch's own ΔW over those rows (scale included, strength not).
 */
export function applyDora(
  w: Float32Array,
  cols: number,
  rowStart: number,
  rows: number,
  delta: Float32Array,
  magnitude: Float32Array,
  axis: DoraMagnitude['axis'],
  strength: number,
): void {
  const base = rowStart * cols;
  const updated = new Float32Array(rows * cols);
  for (let i = 0; i < updated.length; i++) updated[i] = w[base + i]! + delta[i]!;
  const norms = new Float64Array(axis === 'out' ? rows : cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      const v = updated[i * cols + j]!;
      norms[axis === 'out' ? i : j]! += v * v;
    }
  // A zero row/column stays zero: its direction is undefined and m·0 is the only sensible result.
  const factors = Float64Array.from(norms, (n, k) => (n > 0 ? magnitude[k]! / Math.sqrt(n) : 0));
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      const at = i * cols + j;
      const target = updated[at]! * factors[axis === 'out' ? i : j]!;
      const old = w[base + at]!;
      w[base + at] = old + strength * (target - old);
    }
}
