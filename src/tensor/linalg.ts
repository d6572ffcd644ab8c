/**
 * loraflow's linear algebra: the public surface. Large products run on the compute backend chosen
 * in backend.ts; factorizations of the thin and small matrices run in float64 JavaScript, where
 * they are accurate whatever the conditioning.
 *
 * All matrices are row-major. Every result is a fresh array; no tfjs tensor outlives a call.
 */
export { matmul, type MatmulOptions } from './matmul.ts';
export { qr, type QrResult } from './qr.ts';
export { svdSmall, type SmallSvd } from './svd.ts';
export { lowRankSvd, type LowRankSvd, type RankChooser } from './low-rank-svd.ts';
export {
  randomizedSvd,
  randomizedSvdByEnergy,
  type RandomizedSvd,
  type RandomizedSvdOptions,
  type EnergySvd,
  type EnergySvdOptions,
} from './randomized-svd.ts';
export { rankForEnergy, frobeniusNorm, relativeError, sumOfSquares, keptEnergy, energyFraction } from './energy.ts';
export { LinalgError } from './linalg-error.ts';
