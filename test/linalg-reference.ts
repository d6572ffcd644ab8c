/**
 * Independent float64 references for the linear-algebra tests: naive loops and the classic
 * two-sided Jacobi eigenvalue method, deliberately sharing no code with src/tensor.
 */

/** Seeded uniform/normal generator (xorshift32) so failures reproduce. */
export function rng(seed: number): { uniform(): number; normal(): number } {
  let x = seed >>> 0 || 1;
  const uniform = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x + 0.5) / 4294967296;
  };
  return {
    uniform,
    normal: () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()),
  };
}

export function randomF32(count: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: count }, () => r.normal() * scale);
}

/** Row-major (rows×inner)·(inner×cols) in float64. */
export function refMatmul(a: ArrayLike<number>, rows: number, inner: number, b: ArrayLike<number>, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let t = 0; t < inner; t++) {
      const av = a[i * inner + t];
      for (let j = 0; j < cols; j++) out[i * cols + j] += av * b[t * cols + j];
    }
  }
  return out;
}

export function refTranspose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/** U·diag(s)·Vᵀ from row-major U (m×k) and Vᵀ (k×n). */
export function reconstruct(u: ArrayLike<number>, s: ArrayLike<number>, vt: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < k; t++) {
      const coef = u[i * k + t] * s[t];
      for (let j = 0; j < n; j++) out[i * n + j] += coef * vt[t * n + j];
    }
  }
  return out;
}

export function frob(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

export function relErr(approx: ArrayLike<number>, exact: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < exact.length; i++) d += (approx[i] - exact[i]) ** 2;
  return Math.sqrt(d) / frob(exact);
}

/** max |XᵀX − I| for the columns of a row-major rows×cols matrix. */
export function orthonormalityError(x: ArrayLike<number>, rows: number, cols: number): number {
  let worst = 0;
  for (let p = 0; p < cols; p++) {
    for (let q = p; q < cols; q++) {
      let dot = 0;
      for (let i = 0; i < rows; i++) dot += x[i * cols + p] * x[i * cols + q];
      worst = Math.max(worst, Math.abs(dot - (p === q ? 1 : 0)));
    }
  }
  return worst;
}

/** A rows×cols matrix with orthonormal columns (modified Gram–Schmidt, twice, on Gaussians). */
export function randomOrthonormal(rows: number, cols: number, seed: number): Float64Array {
  const r = rng(seed);
  const q = new Float64Array(rows * cols);
  for (let c = 0; c < cols; c++) {
    const v = Float64Array.from({ length: rows }, () => r.normal());
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < c; p++) {
        let dot = 0;
        for (let i = 0; i < rows; i++) dot += q[i * cols + p] * v[i];
        for (let i = 0; i < rows; i++) v[i] -= dot * q[i * cols + p];
      }
    }
    const norm = frob(v);
    for (let i = 0; i < rows; i++) q[i * cols + c] = v[i] / norm;
  }
  return q;
}

/** U·diag(sigma)·Vᵀ with random orthonormal U, V: a matrix whose singular values are known exactly. */
export function withSpectrum(m: number, n: number, sigma: number[], seed: number): Float64Array {
  const k = sigma.length;
  return reconstruct(randomOrthonormal(m, k, seed), sigma, refTranspose(randomOrthonormal(n, k, seed + 1), n, k), m, k, n);
}

/**
 * Eigen-decomposition of a symmetric n×n matrix by cyclic two-sided Jacobi rotations.
 * Returns eigenvalues descending and eigenvectors as the columns of a row-major n×n matrix.
 */
export function symmetricEigen(sym: ArrayLike<number>, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(sym);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off < 1e-30 * (frob(a) ** 2 + 1e-300)) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (apq === 0) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y] - a[x * n + x]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors[k * n + dst] = v[k * n + src];
  });
  return { values, vectors };
}

/** Singular values of a row-major m×n matrix, descending (from the eigenvalues of WᵀW). */
export function refSingularValues(w: ArrayLike<number>, m: number, n: number): Float64Array {
  const gram = refMatmul(refTranspose(w, m, n), n, m, w, n);
  return symmetricEigen(gram, n).values.map((x) => Math.sqrt(Math.max(0, x)));
}

/** The best rank-k approximation W·V_k·V_kᵀ, V_k the top-k eigenvectors of WᵀW. */
export function refTruncated(w: ArrayLike<number>, m: number, n: number, k: number): Float64Array {
  const gram = refMatmul(refTranspose(w, m, n), n, m, w, n);
  const { vectors } = symmetricEigen(gram, n);
  const vk = new Float64Array(n * k);
  for (let i = 0; i < n; i++) for (let t = 0; t < k; t++) vk[i * k + t] = vectors[i * n + t];
  const projector = refMatmul(vk, n, k, refTranspose(vk, n, k), n);
  return refMatmul(w, m, n, projector, n);
}
