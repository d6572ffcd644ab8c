/**
 * LyCORIS modules for the family tests: random factors under one key prefix, the tensors a file
 * stores them as, and the float64 ΔW they mean, computed here from the LyCORIS formulas (not from
 * the code under test).
 */
import type { TensorEntry } from '../../src/safetensors/writer.ts';
import { f32 } from './table-family.ts';

/** A module's tensors and its ΔW [out, in] in row-major order. */
export interface LycorisModule {
  entries: TensorEntry[];
  delta: Float64Array;
}

/** `n` values in [-0.5, 0.5) from `rnd`. */
const draw = (rnd: () => number, n: number) => Float32Array.from({ length: n }, () => rnd() - 0.5);

/**
 * LoKr `<key>.lokr_w1` [f, f], `.lokr_w2_a` [out/f, r], `.lokr_w2_b` [r, in/f] and `.alpha`, drawn
 * from `rnd` in that order: ΔW = w1 ⊗ (w2a·w2b) · alpha/r, its output row i stored at `rowOf(i)`.
 */
export function lokrModule(key: string, rnd: () => number, m: { f: number; r: number; out: number; inp: number; alpha?: number; rowOf?: (i: number) => number }): LycorisModule {
  const { f, r, out, inp, alpha = 1, rowOf = (i: number) => i } = m;
  const [o2, i2] = [out / f, inp / f];
  const [w1, w2a, w2b] = [draw(rnd, f * f), draw(rnd, o2 * r), draw(rnd, r * i2)];
  const entries = [f32(`${key}.lokr_w1`, [f, f], w1), f32(`${key}.lokr_w2_a`, [o2, r], w2a), f32(`${key}.lokr_w2_b`, [r, i2], w2b), f32(`${key}.alpha`, [], Float32Array.of(alpha))];
  const delta = new Float64Array(out * inp);
  for (let a = 0; a < f; a++) for (let b = 0; b < f; b++) for (let i = 0; i < o2; i++) for (let j = 0; j < i2; j++) {
    let w2 = 0;
    for (let q = 0; q < r; q++) w2 += w2a[i * r + q]! * w2b[q * i2 + j]!;
    delta[rowOf(a * o2 + i) * inp + b * i2 + j] = w1[a * f + b]! * w2 * (alpha / r);
  }
  return { entries, delta };
}

/**
 * LoHa `<key>.hada_w1_a` [out, rank], `.hada_w1_b` [rank, in], `.hada_w2_a`, `.hada_w2_b` and
 * `.alpha`, drawn from `rnd` in that order: ΔW = (w1a·w1b) ⊙ (w2a·w2b) · alpha/rank.
 */
export function lohaModule(key: string, rnd: () => number, m: { rank: number; out: number; inp: number; alpha: number }): LycorisModule {
  const { rank, out, inp, alpha } = m;
  const [w1a, w1b, w2a, w2b] = [draw(rnd, out * rank), draw(rnd, rank * inp), draw(rnd, out * rank), draw(rnd, rank * inp)];
  const entries = [f32(`${key}.hada_w1_a`, [out, rank], w1a), f32(`${key}.hada_w1_b`, [rank, inp], w1b), f32(`${key}.hada_w2_a`, [out, rank], w2a), f32(`${key}.hada_w2_b`, [rank, inp], w2b), f32(`${key}.alpha`, [], Float32Array.of(alpha))];
  const delta = new Float64Array(out * inp);
  for (let i = 0; i < out; i++)
    for (let j = 0; j < inp; j++) {
      let p1 = 0;
      let p2 = 0;
      for (let q = 0; q < rank; q++) {
        p1 += w1a[i * rank + q]! * w1b[q * inp + j]!;
        p2 += w2a[i * rank + q]! * w2b[q * inp + j]!;
      }
      delta[i * inp + j] = p1 * p2 * (alpha / rank);
    }
  return { entries, delta };
}
