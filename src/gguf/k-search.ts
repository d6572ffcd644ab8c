/**
 * The scale searches of ggml's reference K-quantizers (ggml-quants.c `make_qkx2_quants`,
 * `make_qx_quants`), in float32 arithmetic operation by operation so they pick the same codes.
 */
import { nearestInt } from './half.ts';

const f = Math.fround;
/** ggml-quants.c GROUP_MAX_EPS. */
export const GROUP_MAX_EPS = f(1e-15);

/**
 * Asymmetric search (x ≈ scale·L − theMin, L in [0, nmax]) over `nstep + 1` trial inverse
 * scales; writes the codes to `L[lo…]` and returns [scale, theMin].
 */
export function makeQkx2Quants(
  n: number, nmax: number, x: Float32Array, xo: number, weights: Float32Array, L: Uint8Array, lo: number, Laux: Uint8Array,
  rmin: number, rdelta: number, nstep: number,
): [scale: number, theMin: number] {
  let min = x[xo]!;
  let max = x[xo]!;
  let sumW = weights[0]!;
  let sumX = f(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const v = x[xo + i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    const w = weights[i]!;
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * v));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return [0, -min];
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestInt(f(iscale * f(x[xo + i]! - min)));
    const q = Math.max(0, Math.min(nmax, l));
    L[lo + i] = q;
    const diff = f(f(f(scale * q) + min) - x[xo + i]!);
    bestError = f(bestError + f(weights[i]! * f(diff * diff)));
  }
  if (nstep < 1) return [scale, -min];
  for (let is = 0; is <= nstep; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[xo + i]! - min)))));
      Laux[i] = l;
      const w = weights[i]!;
      sumL = f(sumL + f(w * l));
      sumL2 = f(sumL2 + f(f(w * l) * l));
      sumXL = f(sumXL + f(f(w * l) * x[xo + i]!));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = f(f(f(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        curError = f(curError + f(weights[i]! * f(diff * diff)));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/**
 * Symmetric search (x ≈ scale·(L − nmax), L in [0, 2·nmax)) with rmse_type 1 (weights x²) and
 * no importance weights, as quantize_row_q6_K_ref calls it; writes codes to `L[lo…]`.
 */
export function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  const clamp = (l: number) => Math.max(-nmax, Math.min(nmax - 1, l));
  let iscale = f(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i]!;
    const l = clamp(nearestInt(f(iscale * v)));
    L[lo + i] = l + nmax;
    const w = f(v * v);
    sumlx = f(sumlx + f(f(w * v) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i]!;
      const l = clamp(nearestInt(f(iscale * v)));
      const w = f(v * v);
      sumlx = f(sumlx + f(f(w * v) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + clamp(nearestInt(f(iscale * x[xo + i]!)));
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}
