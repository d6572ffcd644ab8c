/**
 * Randomized truncated SVD (Halko, Martinsson & Tropp 2011, Algorithms 4.4 and 5.1) for extracting
 * LoRAs from checkpoint differences. W stays on the compute backend; every product with it
 * (2·powerIters + 2 of them, each m·n·(rank+oversample) multiply-adds) runs there. The thin m×l
 * and n×l sketches are re-orthonormalised between power iterations (sketch-basis.ts); without that,
 * float32 power iterates collapse onto the top singular vectors.
 */
import { tf } from './backend.ts';
import { runCooperatively } from './cooperative.ts';
import { svdColMajor } from './jacobi-svd.ts';
import { orthonormalBasis } from './sketch-basis.ts';
import { assertFinite, assertShape, colMajorToRowMajorF32, toColMajorF64 } from './layout.ts';
import { DenseOperand, readAndDispose } from './matmul.ts';
import { energyFraction, keptEnergy, rankForEnergy, sumOfSquares } from './energy.ts';
import { LinalgError } from './linalg-error.ts';

export interface RandomizedSvdOptions {
  /** Singular triplets wanted; capped at min(m, n). */
  rank: number;
  /** Extra sketch columns beyond rank (default 8). */
  oversample?: number;
  /** Power (subspace) iterations (default 2); each costs two more products with W. */
  powerIters?: number;
  /** Seed of the Gaussian test matrix; the same seed gives the same result on the same backend. */
  seed?: number;
}

export interface RandomizedSvd {
  /** m×k row-major, orthonormal columns. */
  u: Float32Array;
  /** k singular values, descending. */
  s: Float32Array;
  /** k×n row-major, orthonormal rows. */
  vt: Float32Array;
  k: number;
}

export interface EnergySvdOptions extends Omit<RandomizedSvdOptions, 'rank'> {
  /** Fraction of ‖W‖²_F to retain, in (0, 1]. */
  energy: number;
  /** Largest rank to return (the result keeps less energy when this is reached first). */
  maxRank: number;
  /** First sketch rank tried (default min(maxRank, 32)); doubled until the energy is reached. */
  startRank?: number;
}

export interface EnergySvd extends RandomizedSvd {
  /** Σ_{i<k}σᵢ² / ‖W‖²_F, with ‖W‖_F computed exactly. */
  energyKept: number;
  /** ‖W‖²_F. */
  totalEnergy: number;
}

const DEFAULT_OVERSAMPLE = 8;
const DEFAULT_POWER_ITERS = 2;
const DEFAULT_SEED = 0x10f1;

/** Rank-k approximation W ≈ U·diag(s)·Vᵀ of a row-major m×n float32 matrix. */
export async function randomizedSvd(w: Float32Array, m: number, n: number, opts: RandomizedSvdOptions): Promise<RandomizedSvd> {
  checkMatrix(w, m, n, 'randomizedSvd');
  const settings = resolve(opts, 'randomizedSvd');
  if (!(Number.isSafeInteger(opts.rank) && opts.rank >= 0)) {
    throw new LinalgError(`randomizedSvd: rank must be a non-negative integer, got ${opts.rank}`);
  }
  const operand = await DenseOperand.upload(w, m, n);
  try {
    return await sketchSvd(operand, opts.rank, settings);
  } finally {
    operand.dispose();
  }
}

/**
 * Randomized SVD whose rank is the smallest that keeps `energy` of ‖W‖²_F (at most maxRank). The
 * sketch starts at startRank and doubles until the kept energy reaches the target, reusing the
 * uploaded W.
 */
export async function randomizedSvdByEnergy(w: Float32Array, m: number, n: number, opts: EnergySvdOptions): Promise<EnergySvd> {
  const totalEnergy = checkMatrix(w, m, n, 'randomizedSvdByEnergy');
  const settings = resolve(opts, 'randomizedSvdByEnergy');
  if (!(opts.energy > 0 && opts.energy <= 1)) {
    throw new LinalgError(`randomizedSvdByEnergy: energy must be in (0, 1], got ${opts.energy}`);
  }
  if (!(Number.isSafeInteger(opts.maxRank) && opts.maxRank >= 1)) {
    throw new LinalgError(`randomizedSvdByEnergy: maxRank must be a positive integer, got ${opts.maxRank}`);
  }
  const limit = Math.min(opts.maxRank, m, n);
  if (totalEnergy === 0 || limit === 0) {
    const k = 0;
    return { u: new Float32Array(0), s: new Float32Array(0), vt: new Float32Array(0), k, energyKept: 1, totalEnergy };
  }
  let rank = Math.min(limit, Math.max(1, opts.startRank ?? 32));
  const operand = await DenseOperand.upload(w, m, n);
  try {
    for (;;) {
      const full = await sketchSvd(operand, rank, settings);
      const k = rankForEnergy(full.s, opts.energy, totalEnergy);
      const reached = keptEnergy(full.s, k) >= opts.energy * totalEnergy;
      if (reached || rank === limit) {
        return { ...truncate(full, k, m, n), energyKept: energyFraction(full.s, k, totalEnergy), totalEnergy };
      }
      rank = Math.min(limit, rank * 2);
    }
  } finally {
    operand.dispose();
  }
}

interface Settings {
  oversample: number;
  powerIters: number;
  seed: number;
}

function resolve(opts: Omit<RandomizedSvdOptions, 'rank'>, fn: string): Settings {
  const oversample = opts.oversample ?? DEFAULT_OVERSAMPLE;
  const powerIters = opts.powerIters ?? DEFAULT_POWER_ITERS;
  const seed = opts.seed ?? DEFAULT_SEED;
  for (const [name, value] of [['oversample', oversample], ['powerIters', powerIters], ['seed', seed]] as const) {
    if (!(Number.isSafeInteger(value) && value >= 0)) {
      throw new LinalgError(`${fn}: ${name} must be a non-negative integer, got ${value}`);
    }
  }
  return { oversample, powerIters, seed };
}

/** Validates W and returns ‖W‖²_F (one pass: a NaN or infinity makes the sum non-finite). */
function checkMatrix(w: Float32Array, m: number, n: number, fn: string): number {
  assertShape(w, m, n, `${fn}: w`);
  const total = sumOfSquares(w);
  if (!Number.isFinite(total)) assertFinite(w, `${fn}: w`);
  return total;
}

async function sketchSvd(op: DenseOperand, rank: number, { oversample, powerIters, seed }: Settings): Promise<RandomizedSvd> {
  const { m, n } = op;
  const k = Math.min(rank, m, n);
  if (k === 0) return { u: new Float32Array(0), s: new Float32Array(0), vt: new Float32Array(0), k };
  const l = Math.min(k + oversample, m, n);

  // Tensors this call owns; whatever is still here when it ends (normally or not) is disposed.
  const owned = new Set<tf.Tensor>();
  const own = <T extends tf.Tensor>(t: T): T => (owned.add(t), t);
  const handOver = <T extends tf.Tensor>(t: T): T => (owned.delete(t), t);
  const drop = (t: tf.Tensor): void => {
    owned.delete(t);
    t.dispose();
  };
  try {
    const omega = own(tf.tensor2d(gaussian(n * l, seed), [n, l]));
    const firstSketch = own(await op.times(omega));
    drop(omega);
    let basis = own((await orthonormalBasis(handOver(firstSketch))).basis);
    for (let it = 0; it < powerIters; it++) {
      const rowSketch = own(await op.transposeTimes(basis));
      drop(basis);
      const rowBasis = own((await orthonormalBasis(handOver(rowSketch))).basis);
      const colSketch = own(await op.times(rowBasis));
      drop(rowBasis);
      basis = own((await orthonormalBasis(handOver(colSketch))).basis);
    }
    // Bᵀ = Wᵀ·Q (n×l); Bᵀ = Ub·Σ·Vbᵀ gives W ≈ Q·B = (Q·Vb)·Σ·Ubᵀ.
    const bt = await readAndDispose(handOver(own(await op.transposeTimes(basis))));
    const svd = await runCooperatively(svdColMajor(toColMajorF64(bt, n, l, 'randomizedSvd: projection'), n, l));
    const vbk = own(tf.tensor2d(colMajorToRowMajorF32(svd.v.subarray(0, l * k), l, k), [l, k]));
    const u = await readAndDispose(handOver(own(tf.matMul(basis, vbk))));
    return {
      u,
      s: Float32Array.from(svd.s.subarray(0, k)),
      // Ub column-major n×l: its first k columns are Vᵀ row-major k×n.
      vt: Float32Array.from(svd.u.subarray(0, k * n)),
      k,
    };
  } finally {
    for (const t of owned) t.dispose();
  }
}

function truncate(svd: RandomizedSvd, k: number, m: number, n: number): RandomizedSvd {
  if (k === svd.k) return svd;
  const u = new Float32Array(m * k);
  for (let i = 0; i < m; i++) u.set(svd.u.subarray(i * svd.k, i * svd.k + k), i * k);
  return { u, s: svd.s.slice(0, k), vt: svd.vt.slice(0, k * n), k };
}

/**
 * Standard normal samples from a seeded generator (mulberry32 + Box–Muller): extraction results
 * must be reproducible run to run.
 */
export function gaussian(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(uniform()));
    const angle = 2 * Math.PI * uniform();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < count) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}
