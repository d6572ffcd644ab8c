/**
 * Linear algebra against independent float64 references, run once per compute backend
 * (LORAFLOW_BACKEND=<name> restricts the run to one). WebGPU here is Mesa lavapipe in CI; a missing
 * adapter fails the suite rather than skipping it.
 *
 * Tolerances. Inputs and outputs are float32 (unit roundoff u = 6e-8). Products on the backend
 * accumulate in float32 on both wasm and WebGPU; we allow 2e-6 relative Frobenius error for
 * products (≈ √k·u for k ≤ 4000). Factorizations run in float64 and are rounded once to float32,
 * so orthonormality and reconstruction get 1e-6, and a low-rank SVD of stacked factors matches the
 * float64 truncated SVD of the dense product within 1e-5 relative.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { activeBackend, tf, useBackend, type BackendChoice } from '../src/tensor/backend.ts';
import {
  LinalgError,
  frobeniusNorm,
  lowRankSvd,
  matmul,
  qr,
  randomizedSvd,
  randomizedSvdByEnergy,
  rankForEnergy,
  relativeError,
  svdSmall,
} from '../src/tensor/linalg.ts';
import { DenseOperand, readAndDispose } from '../src/tensor/matmul.ts';
import { orthonormalBasis } from '../src/tensor/sketch-basis.ts';
import {
  frob,
  orthonormalityError,
  randomF32,
  reconstruct,
  refMatmul,
  refSingularValues,
  refTranspose,
  refTruncated,
  relErr,
  rng,
  withSpectrum,
} from './linalg-reference.ts';

const BACKENDS: BackendChoice[] = process.env.LORAFLOW_BACKEND
  ? [process.env.LORAFLOW_BACKEND as BackendChoice]
  : ['wasm', 'webgpu'];

describe.each(BACKENDS)('linalg on %s', (backend) => {
  let tensorsBefore = 0;
  beforeAll(async () => {
    expect(await useBackend(backend)).toBe(backend);
  });
  beforeEach(() => {
    tensorsBefore = tf.memory().numTensors;
  });
  afterEach(() => {
    // Every routine disposes what it created, on success and on error.
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(activeBackend()).toBe(backend);
  });

  describe('matmul', () => {
    const n = 37;
    const k = 23;
    const m = 19;
    const a = randomF32(n * k, 1);
    const b = randomF32(k * m, 2);
    const expected = refMatmul(a, n, k, b, m);

    it.each([
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ])('odd sizes, transposeA=%s transposeB=%s', async (tA, tB) => {
      const aArg = tA ? Float32Array.from(refTranspose(a, n, k)) : a;
      const bArg = tB ? Float32Array.from(refTranspose(b, k, m)) : b;
      const aShape: [number, number] = tA ? [k, n] : [n, k];
      const bShape: [number, number] = tB ? [m, k] : [k, m];
      const aCopy = aArg.slice();
      const out = await matmul(aArg, aShape, bArg, bShape, { transposeA: tA, transposeB: tB });
      expect(out).toBeInstanceOf(Float32Array);
      expect(out.length).toBe(n * m);
      expect(relErr(out, expected)).toBeLessThan(2e-6);
      expect(aArg).toEqual(aCopy);
    });

    it('splits a product into row blocks with the same result (all transposes)', async () => {
      // 200 elements per block: 8 rows of the 23-wide operand, so 5 blocks.
      for (const [tA, tB] of [[false, false], [true, true]]) {
        const aArg = tA ? Float32Array.from(refTranspose(a, n, k)) : a;
        const bArg = tB ? Float32Array.from(refTranspose(b, k, m)) : b;
        const out = await matmul(aArg, tA ? [k, n] : [n, k], bArg, tB ? [m, k] : [k, m], { transposeA: tA, transposeB: tB, blockElements: 200 });
        expect(relErr(out, expected)).toBeLessThan(2e-6);
      }
      await expect(matmul(a, [n, k], b, [k, m], { blockElements: 0 })).rejects.toThrow(/blockElements must be a positive integer/);
    });

    it('returns a fresh array every call', async () => {
      const eye = Float32Array.from([1, 0, 0, 1]);
      const x = Float32Array.from([1, 2, 3, 4]);
      const out = await matmul(x, [2, 2], eye, [2, 2]);
      expect(Array.from(out)).toEqual([1, 2, 3, 4]);
      out[0] = 99;
      expect(x[0]).toBe(1);
      expect(Array.from(await matmul(x, [2, 2], eye, [2, 2]))).toEqual([1, 2, 3, 4]);
    });

    it('rejects mismatched shapes with a message naming both operands', async () => {
      await expect(matmul(a, [n, k], b, [m, k])).rejects.toThrow(/inner dimensions differ: op\(a\) is 37×23, op\(b\) is 19×23/);
      await expect(matmul(a, [n, k + 1], b, [k, m])).rejects.toThrow(/matmul: a: expected 37×24 = 888 elements, got 851/);
    });
  });

  describe('DenseOperand (row-blocked W for W·X and Wᵀ·Y)', () => {
    it('matches references across several row blocks', async () => {
      const m = 230;
      const n = 170;
      const l = 5;
      const w = randomF32(m * n, 5);
      const x = randomF32(n * l, 6);
      const y = randomF32(m * l, 7);
      // 50 rows per block: five blocks, the last one partial; Wᵀ·Y sums the blocks.
      const op = await DenseOperand.upload(w, m, n, { blockElements: 50 * n });
      try {
        const xt = tf.tensor2d(x, [n, l]);
        const yt = tf.tensor2d(y, [m, l]);
        const wx = await readAndDispose(await op.times(xt));
        const wty = await readAndDispose(await op.transposeTimes(yt));
        xt.dispose();
        yt.dispose();
        expect(relErr(wx, refMatmul(w, m, n, x, l))).toBeLessThan(2e-6);
        expect(relErr(wty, refMatmul(refTranspose(w, m, n), n, m, y, l))).toBeLessThan(2e-6);
        const wrong = tf.zeros([n + 1, l]) as tf.Tensor2D;
        await expect(op.times(wrong)).rejects.toThrow(/expected 170 rows, got 171/);
        wrong.dispose();
      } finally {
        op.dispose();
      }
    });
  });

  describe('sketch bases (randomized SVD range finder)', () => {
    /** max |QᵀQ − I| and ‖Y − Q·QᵀY‖/‖Y‖ for a basis of the sketch y. */
    async function basisOf(y: Float32Array, rows: number, cols: number): Promise<{ method: string; orth: number; residual: number }> {
      const { basis, method } = await orthonormalBasis(tf.tensor2d(y, [rows, cols]));
      const q = await readAndDispose(basis);
      const qty = refMatmul(refTranspose(q, rows, cols), cols, rows, y, cols);
      const projected = refMatmul(q, rows, cols, qty, cols);
      return { method, orth: orthonormalityError(q, rows, cols), residual: relErr(projected, y) };
    }

    it('uses CholeskyQR2 on a well-conditioned sketch (κ = 1e3)', async () => {
      // 303 rows: the Gram accumulation's four-row passes plus a remainder of three.
      const y = Float32Array.from(withSpectrum(303, 12, Array.from({ length: 12 }, (_, i) => 10 ** (-3 * i / 11)), 95));
      const r = await basisOf(y, 303, 12);
      expect(r.method).toBe('cholesky-qr2');
      expect(r.orth).toBeLessThan(1e-6);
      expect(r.residual).toBeLessThan(1e-6);
    });

    it('falls back to Householder when the sketch is rank-deficient', async () => {
      const y = Float32Array.from(refMatmul(randomF32(300 * 4, 96), 300, 4, randomF32(4 * 12, 97), 12));
      const r = await basisOf(y, 300, 12);
      expect(r.method).toBe('householder');
      expect(r.orth).toBeLessThan(1e-6);
      expect(r.residual).toBeLessThan(1e-6);
    });
  });

  describe('qr', () => {
    function checkQr(a: Float32Array, m: number, n: number, q: Float32Array, r: Float32Array): void {
      expect(q.length).toBe(m * n);
      expect(r.length).toBe(n * n);
      expect(orthonormalityError(q, m, n)).toBeLessThan(1e-6);
      for (let i = 0; i < n; i++) {
        expect(r[i * n + i]).toBeGreaterThanOrEqual(0);
        for (let j = 0; j < i; j++) expect(r[i * n + j]).toBe(0);
      }
      expect(relErr(refMatmul(q, m, n, r, n), a)).toBeLessThan(1e-6);
    }

    it('factors a random tall matrix', async () => {
      const a = randomF32(61 * 13, 10);
      const { q, r } = await qr(a, [61, 13]);
      checkQr(a, 61, 13, q, r);
    });

    it('factors a rank-deficient matrix (dependent columns) with Q still orthonormal', async () => {
      // Columns 5..11 are combinations of columns 0..4: rank 5 of 12, like a LoRA stacked with itself.
      const m = 80;
      const basis = randomF32(m * 5, 11);
      const mix = randomF32(5 * 7, 12);
      const dependent = refMatmul(basis, m, 5, mix, 7);
      const a = new Float32Array(m * 12);
      for (let i = 0; i < m; i++) {
        a.set(basis.subarray(i * 5, i * 5 + 5), i * 12);
        for (let j = 0; j < 7; j++) a[i * 12 + 5 + j] = dependent[i * 7 + j];
      }
      const { q, r } = await qr(a, [m, 12]);
      checkQr(a, m, 12, q, r);
      // The trailing diagonal of R reveals the rank: float32 rounding of A is all that is left.
      const rDiag = Array.from({ length: 12 }, (_, i) => r[i * 12 + i]);
      expect(Math.min(...rDiag.slice(0, 5))).toBeGreaterThan(0.1);
      expect(Math.max(...rDiag.slice(5))).toBeLessThan(1e-5 * rDiag[0]);
    });

    it('keeps Q orthonormal for an ill-conditioned matrix (cond 1e7) and exact zero columns', async () => {
      const m = 50;
      const n = 8;
      const a = Float32Array.from(withSpectrum(m, n, [1, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7], 13));
      const { q, r } = await qr(a, [m, n]);
      checkQr(a, m, n, q, r);
      const zeros = new Float32Array(m * 3);
      for (let i = 0; i < m; i++) zeros[i * 3 + 1] = i + 1; // columns 0 and 2 are all zero
      const z = await qr(zeros, [m, 3]);
      checkQr(zeros, m, 3, z.q, z.r);
    });

    it('rejects a wide matrix and a wrong length', async () => {
      await expect(qr(new Float32Array(6), [2, 3])).rejects.toThrow(/qr: needs a tall matrix \(rows ≥ cols\), got 2×3/);
      await expect(qr(new Float32Array(5), [3, 2])).rejects.toThrow(LinalgError);
    });

    it('hands the event loop back during a long factorization', async () => {
      const m = 12000;
      const n = 64;
      const a = randomF32(m * n, 14);
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      const started = performance.now();
      await qr(a, [m, n]);
      const elapsed = performance.now() - started;
      clearInterval(timer);
      // A blocking implementation would let no tick through at all.
      expect(elapsed).toBeGreaterThan(60);
      expect(ticks).toBeGreaterThanOrEqual(2);
    });
  });

  describe('svdSmall', () => {
    function checkSvd(a: Float64Array, m: number, n: number): Float64Array {
      const { u, s, vt } = svdSmall(a, m, n);
      const k = Math.min(m, n);
      expect(u.length).toBe(m * k);
      expect(s.length).toBe(k);
      expect(vt.length).toBe(k * n);
      for (let i = 1; i < k; i++) expect(s[i]).toBeLessThanOrEqual(s[i - 1]);
      expect(s[k - 1]).toBeGreaterThanOrEqual(0);
      expect(orthonormalityError(u, m, k)).toBeLessThan(1e-12);
      expect(orthonormalityError(refTranspose(vt, k, n), n, k)).toBeLessThan(1e-12);
      expect(relErr(reconstruct(u, s, vt, m, k, n), a)).toBeLessThan(1e-13);
      // The reference takes square roots of eigenvalues of AᵀA, which resolves singular values
      // only to √eps·σ₁ ≈ 1.5e-8·σ₁; exact spectra below check the SVD itself to 1e-14.
      const expected = refSingularValues(a, m, n).slice(0, k);
      for (let i = 0; i < k; i++) expect(Math.abs(s[i] - expected[i])).toBeLessThan(1e-7 * expected[0]);
      return s;
    }

    it.each([
      [40, 25],
      [25, 40],
      [33, 33],
      [1, 7],
      [7, 1],
    ])('%i×%i: A = UΣVᵀ, orthonormal factors, descending values', (m, n) => {
      const r = rng(m * 100 + n);
      checkSvd(Float64Array.from({ length: m * n }, () => r.normal()), m, n);
    });

    it('recovers a known spectrum exactly', () => {
      const sigma = [5, 3, 3, 1e-3, 1e-9];
      const s = checkSvd(withSpectrum(12, 9, sigma, 21), 12, 9);
      for (let i = 0; i < sigma.length; i++) expect(Math.abs(s[i] - sigma[i])).toBeLessThan(1e-14 * 5 + 1e-12 * sigma[i]);
      for (let i = sigma.length; i < 9; i++) expect(s[i]).toBeLessThan(1e-14);
    });

    it('handles a rank-deficient matrix and the zero matrix (U completed to orthonormal)', () => {
      const a = refMatmul(randomF32(20 * 2, 22), 20, 2, randomF32(2 * 15, 23), 15);
      const s = checkSvd(a, 20, 15);
      expect(s[2]).toBeLessThan(1e-13 * s[0]);
      const zero = svdSmall(new Float64Array(6 * 4), 6, 4);
      expect(Array.from(zero.s)).toEqual([0, 0, 0, 0]);
      expect(orthonormalityError(zero.u, 6, 4)).toBeLessThan(1e-15);
    });

    it('rejects NaN with the position', () => {
      const a = new Float64Array(6);
      a[4] = Number.NaN;
      expect(() => svdSmall(a, 2, 3)).toThrow(/svdSmall: a contains a non-finite value \(NaN\)/);
    });
  });

  describe('lowRankSvd', () => {
    /** Three LoRAs (ranks 4, 8, 6) with strengths folded into up, stacked: R = 18. */
    function stackedLoras(m: number, n: number, seed: number): { up: Float32Array; down: Float32Array; R: number } {
      const ranks = [4, 8, 6];
      const strengths = [0.8, -0.5, 1.3];
      const R = ranks.reduce((x, y) => x + y, 0);
      const up = new Float32Array(m * R);
      const down = new Float32Array(R * n);
      let col = 0;
      ranks.forEach((r, i) => {
        const u = randomF32(m * r, seed + 2 * i, 0.05);
        const d = randomF32(r * n, seed + 2 * i + 1, 0.05);
        for (let row = 0; row < m; row++) for (let c = 0; c < r; c++) up[row * R + col + c] = strengths[i] * u[row * r + c];
        down.set(d, col * n);
        col += r;
      });
      return { up, down, R };
    }

    it('equals the truncated SVD of the dense product (3 stacked random LoRAs)', async () => {
      const m = 96;
      const n = 80;
      const { up, down, R } = stackedLoras(m, n, 30);
      const dense = refMatmul(up, m, R, down, n);
      const refS = refSingularValues(dense, m, n);
      for (const k of [10, R]) {
        const res = await lowRankSvd(up, down, m, R, n, k);
        expect(res.k).toBe(k);
        expect(orthonormalityError(res.u, m, k)).toBeLessThan(1e-6);
        expect(orthonormalityError(refTranspose(res.vt, k, n), n, k)).toBeLessThan(1e-6);
        for (let i = 0; i < k; i++) expect(Math.abs(res.s[i] - refS[i])).toBeLessThan(1e-5 * refS[i]);
        expect(relErr(reconstruct(res.u, res.s, res.vt, m, k, n), refTruncated(dense, m, n, k))).toBeLessThan(1e-5);
        let kept = 0;
        let total = 0;
        refS.forEach((x, i) => {
          total += x * x;
          if (i < k) kept += x * x;
        });
        expect(Math.abs(res.energyKept - kept / total)).toBeLessThan(1e-9);
      }
    });

    it('is exact for a LoRA stacked with itself (rank-deficient factors)', async () => {
      const m = 64;
      const n = 48;
      const r = 6;
      const u = randomF32(m * r, 40);
      const d = randomF32(r * n, 41);
      const up = new Float32Array(m * 2 * r);
      const down = new Float32Array(2 * r * n);
      for (let i = 0; i < m; i++) {
        up.set(u.subarray(i * r, i * r + r), i * 2 * r);
        up.set(u.subarray(i * r, i * r + r), i * 2 * r + r);
      }
      down.set(d, 0);
      down.set(d, r * n);
      const res = await lowRankSvd(up, down, m, 2 * r, n);
      expect(res.k).toBe(2 * r);
      expect(res.energyKept).toBe(1);
      const dense = refMatmul(up, m, 2 * r, down, n);
      expect(relErr(reconstruct(res.u, res.s, res.vt, m, res.k, n), dense)).toBeLessThan(1e-6);
      expect(res.s[r]).toBeLessThan(1e-5 * res.s[0]);
      expect(orthonormalityError(res.u, m, res.k)).toBeLessThan(1e-6);
      const trunc = await lowRankSvd(up, down, m, 2 * r, n, r);
      expect(relErr(reconstruct(trunc.u, trunc.s, trunc.vt, m, r, n), dense)).toBeLessThan(1e-6);
      expect(trunc.energyKept).toBeGreaterThan(1 - 1e-10);
    });

    it('stays accurate on an ill-conditioned stack (factor singular values 1 down to 1e-7)', async () => {
      const m = 72;
      const n = 56;
      const R = 8;
      const up = randomF32(m * R, 70).map((v, i) => v * 10 ** -(i % R));
      const down = randomF32(R * n, 71);
      const dense = refMatmul(up, m, R, down, n);
      const refS = refSingularValues(dense, m, n);
      for (const k of [2, 4, 6, R]) {
        const res = await lowRankSvd(up, down, m, R, n, k);
        expect(relErr(reconstruct(res.u, res.s, res.vt, m, k, n), refTruncated(dense, m, n, k)), `rank ${k}`).toBeLessThan(1e-5);
        expect(orthonormalityError(res.u, m, k), `rank ${k}`).toBeLessThan(1e-6);
        expect(orthonormalityError(refTranspose(res.vt, k, n), n, k), `rank ${k}`).toBeLessThan(1e-6);
        // Relative accuracy down to 1e-5·σ₁; below that, float32 resolution of the product (1e-7·σ₁).
        for (let i = 0; i < k; i++) {
          const bound = refS[i] > 1e-5 * refS[0] ? 1e-5 * refS[i] : 1e-7 * refS[0];
          expect(Math.abs(res.s[i] - refS[i]), `σ${i} at rank ${k}`).toBeLessThan(bound);
        }
      }
    });

    it('lets a rank chooser pick k from the spectrum before any singular vector is formed', async () => {
      const m = 96;
      const n = 80;
      const { up, down, R } = stackedLoras(m, n, 30);
      const refS = refSingularValues(refMatmul(up, m, R, down, n), m, n);
      let seen: Float64Array = new Float64Array(0);
      const res = await lowRankSvd(up, down, m, R, n, (s) => {
        seen = s;
        return 7;
      });
      expect(seen.length).toBe(R);
      seen.forEach((x, i) => expect(Math.abs(x - refS[i]), `σ${i}`).toBeLessThan(1e-5 * refS[i]));
      expect(res.k).toBe(7);
      expect(Array.from(res.s)).toEqual(Array.from(seen.subarray(0, 7), Math.fround));
      expect(orthonormalityError(res.u, m, 7)).toBeLessThan(1e-6);
      expect((await lowRankSvd(up, down, m, R, n, () => 1000)).k).toBe(R);
      await expect(lowRankSvd(up, down, m, R, n, () => 2.5)).rejects.toThrow(/lowRankSvd: chosen rank must be a non-negative integer, got 2.5/);
    });

    it('gives zero singular values and orthonormal U, V for a zero product', async () => {
      let seen: Float64Array | undefined;
      const res = await lowRankSvd(new Float32Array(30 * 4), randomF32(4 * 20, 53), 30, 4, 20, (s) => {
        seen = s;
        return 3;
      });
      expect(seen!.length).toBe(0);
      expect([res.k, ...res.s, res.energyKept]).toEqual([3, 0, 0, 0, 1]);
      expect(orthonormalityError(res.u, 30, 3)).toBeLessThan(1e-6);
      expect(orthonormalityError(refTranspose(res.vt, 3, 20), 20, 3)).toBeLessThan(1e-6);
    });

    it('caps the rank at min(m, n, R) and validates its inputs', async () => {
      const res = await lowRankSvd(randomF32(5 * 8, 50), randomF32(8 * 30, 51), 5, 8, 30, 20);
      expect(res.k).toBe(5);
      expect(res.u.length).toBe(25);
      await expect(lowRankSvd(new Float32Array(10), new Float32Array(10), 5, 2, 5, -1)).rejects.toThrow(/rank must be a non-negative integer/);
      const bad = randomF32(10, 52);
      bad[3] = Number.POSITIVE_INFINITY;
      await expect(lowRankSvd(bad, new Float32Array(10), 5, 2, 5)).rejects.toThrow(/lowRankSvd: up contains a non-finite value \(Infinity\) at flat index/);
      await expect(lowRankSvd(new Float32Array(9), new Float32Array(10), 5, 2, 5)).rejects.toThrow(/lowRankSvd: up: expected 5×2 = 10 elements, got 9/);
    });
  });

  describe('randomizedSvd', () => {
    function optimalError(sigma: number[], k: number): number {
      return Math.sqrt(sigma.slice(k).reduce((acc, x) => acc + x * x, 0));
    }

    it.each([
      ['geometric 0.8^i', (i: number) => 0.8 ** i],
      ['power law 1/(i+1)', (i: number) => 1 / (i + 1)],
    ])('error within 1.05× the optimal rank-k error (%s spectrum)', async (_name, spectrum) => {
      const m = 180;
      const n = 140;
      const sigma = Array.from({ length: n }, (_, i) => spectrum(i));
      const w = Float32Array.from(withSpectrum(m, n, sigma, 60));
      const k = 12;
      const res = await randomizedSvd(w, m, n, { rank: k, seed: 7 });
      expect(res.k).toBe(k);
      expect(orthonormalityError(res.u, m, k)).toBeLessThan(1e-6);
      expect(orthonormalityError(refTranspose(res.vt, k, n), n, k)).toBeLessThan(1e-6);
      const residual = new Float64Array(reconstruct(res.u, res.s, res.vt, m, k, n)).map((x, i) => w[i] - x);
      expect(frob(residual)).toBeLessThan(1.05 * optimalError(sigma, k));
      expect(Math.abs(res.s[0] - sigma[0])).toBeLessThan(1e-4);
    });

    it('is exact at full rank (tall and wide) and reproducible for a seed', async () => {
      for (const [m, n] of [[60, 40], [40, 60]]) {
        const w = randomF32(m * n, 61 + m);
        const k = Math.min(m, n);
        const res = await randomizedSvd(w, m, n, { rank: k, seed: 3 });
        expect(res.k).toBe(k);
        expect(relErr(reconstruct(res.u, res.s, res.vt, m, k, n), w)).toBeLessThan(1e-5);
        const again = await randomizedSvd(w, m, n, { rank: k, seed: 3 });
        expect(again.s).toEqual(res.s);
        expect(again.u).toEqual(res.u);
      }
    });

    it('recovers an exactly low-rank W when asked for more rank than it has', async () => {
      const m = 70;
      const n = 50;
      const w = Float32Array.from(refMatmul(randomF32(m * 5, 70), m, 5, randomF32(5 * n, 71), n));
      const res = await randomizedSvd(w, m, n, { rank: 10 });
      expect(relErr(reconstruct(res.u, res.s, res.vt, m, 10, n), w)).toBeLessThan(1e-5);
      expect(res.s[5]).toBeLessThan(1e-5 * res.s[0]);
      expect(orthonormalityError(res.u, m, 10)).toBeLessThan(1e-6);
    });

    it('chooses the rank by retained energy, growing the sketch', async () => {
      const m = 160;
      const n = 120;
      const sigma = Array.from({ length: n }, (_, i) => 0.8 ** i);
      const w = Float32Array.from(withSpectrum(m, n, sigma, 80));
      const total = sigma.reduce((acc, x) => acc + x * x, 0);
      const keptAt = (k: number) => sigma.slice(0, k).reduce((acc, x) => acc + x * x, 0) / total;
      // 1 − 0.64^k ≥ 0.99 first at k = 11 (0.9926; k = 10 gives 0.9885).
      const res = await randomizedSvdByEnergy(w, m, n, { energy: 0.99, maxRank: 64, startRank: 4 });
      expect(res.k).toBe(11);
      expect(Math.abs(res.totalEnergy - total)).toBeLessThan(1e-5 * total);
      expect(Math.abs(res.energyKept - keptAt(11))).toBeLessThan(1e-4);
      expect(res.u.length).toBe(m * 11);
      expect(res.vt.length).toBe(11 * n);
      const capped = await randomizedSvdByEnergy(w, m, n, { energy: 0.99, maxRank: 6 });
      expect(capped.k).toBe(6);
      expect(Math.abs(capped.energyKept - keptAt(6))).toBeLessThan(1e-4);
    });

    it('rejects bad options and non-finite input', async () => {
      const w = randomF32(12, 90);
      await expect(randomizedSvd(w, 3, 4, { rank: 1.5 })).rejects.toThrow(/rank must be a non-negative integer, got 1.5/);
      await expect(randomizedSvd(w, 3, 4, { rank: 2, oversample: -1 })).rejects.toThrow(/oversample must be a non-negative integer/);
      await expect(randomizedSvdByEnergy(w, 3, 4, { energy: 1.5, maxRank: 2 })).rejects.toThrow(/energy must be in \(0, 1\]/);
      w[7] = Number.NaN;
      await expect(randomizedSvd(w, 3, 4, { rank: 2 })).rejects.toThrow(/randomizedSvd: w contains a non-finite value \(NaN\) at flat index 7/);
    });
  });
});

describe('energy helpers', () => {
  it('rankForEnergy picks the smallest k reaching the target', () => {
    const s = Float64Array.from([3, 2, 1, 0.5]); // energies 9, 4, 1, 0.25 of 14.25
    expect(rankForEnergy(s, 9 / 14.25)).toBe(1);
    expect(rankForEnergy(s, 0.64)).toBe(2);
    expect(rankForEnergy(s, 0.99)).toBe(4);
    expect(rankForEnergy(s, 1)).toBe(4);
    // With an external total (a truncated spectrum) the target can be out of reach.
    expect(rankForEnergy(s, 0.9, 100)).toBe(4);
    expect(rankForEnergy(Float32Array.from([0, 0]), 0.5)).toBe(0);
    expect(() => rankForEnergy(s, 1.01)).toThrow(/energy must be a fraction in \[0, 1\]/);
  });

  it('frobeniusNorm and relativeError in float64', () => {
    expect(frobeniusNorm(Float32Array.from([3, 4]))).toBe(5);
    expect(relativeError(Float64Array.from([3, 4]), Float64Array.from([3, 5]))).toBeCloseTo(1 / Math.sqrt(34), 15);
    expect(() => relativeError(new Float64Array(2), new Float64Array(3))).toThrow(/lengths differ/);
  });
});
