/**
 * Norms and the energy criterion used to choose ranks: the energy of a matrix is ‖W‖²_F = Σσᵢ², and
 * keeping the top k singular triplets retains Σ_{i<k}σᵢ² of it (Eckart–Young).
 */
import { LinalgError } from './linalg-error.ts';

type Vector = Float32Array | Float64Array;

/** Σ aᵢ² accumulated in float64. */
export function sumOfSquares(a: Vector): number {
  let s0 = 0;
  let s1 = 0;
  const n = a.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    s0 += a[i] * a[i];
    s1 += a[i + 1] * a[i + 1];
  }
  if (i < n) s0 += a[i] * a[i];
  return s0 + s1;
}

/** ‖a‖_F of a matrix (or the 2-norm of a vector) given as a flat array, in float64. */
export function frobeniusNorm(a: Vector): number {
  return Math.sqrt(sumOfSquares(a));
}

/** ‖approx − exact‖_F / ‖exact‖_F (the absolute error when exact is zero). */
export function relativeError(approx: Vector, exact: Vector): number {
  if (approx.length !== exact.length) {
    throw new LinalgError(`relativeError: lengths differ (${approx.length} vs ${exact.length})`);
  }
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < exact.length; i++) {
    const d = approx[i] - exact[i];
    diff += d * d;
    ref += exact[i] * exact[i];
  }
  return ref > 0 ? Math.sqrt(diff / ref) : Math.sqrt(diff);
}

/**
 * The smallest k whose leading singular values keep at least `energy` of the total:
 * Σ_{i<k} sᵢ² ≥ energy·totalEnergy. `s` must be descending. totalEnergy defaults to Σsᵢ²; pass
 * ‖W‖²_F when `s` is a truncated spectrum. Returns s.length when the target is out of reach, and 0
 * for a zero matrix.
 */
export function rankForEnergy(s: Vector, energy: number, totalEnergy?: number): number {
  if (!(energy >= 0 && energy <= 1)) {
    throw new LinalgError(`rankForEnergy: energy must be a fraction in [0, 1], got ${energy}`);
  }
  const total = totalEnergy ?? sumOfSquares(s);
  if (!(total >= 0) || !Number.isFinite(total)) {
    throw new LinalgError(`rankForEnergy: totalEnergy must be a finite non-negative number, got ${total}`);
  }
  if (total === 0 || energy === 0) return 0;
  const target = energy * total;
  let kept = 0;
  for (let k = 0; k < s.length; k++) {
    kept += s[k] * s[k];
    if (kept >= target) return k + 1;
  }
  return s.length;
}

/** Σ_{i<k} sᵢ², summed in index order. */
export function keptEnergy(s: Vector, k: number): number {
  let kept = 0;
  for (let i = 0; i < k; i++) kept += s[i] * s[i];
  return kept;
}

/**
 * Σ_{i<k} sᵢ² / total, or 1 when total is 0 (nothing to lose). With total = keptEnergy(s, s.length)
 * the full spectrum gives exactly 1.
 */
export function energyFraction(s: Vector, k: number, total: number): number {
  if (total <= 0) return 1;
  return Math.min(1, keptEnergy(s, k) / total);
}
