/**
 * Matrix products on the compute backend.
 *
 * The wasm backend (XNNPACK) has one fast path: A·B with neither operand transposed. Any transpose
 * flag sends it to a naive triple loop about 40× slower (9 s instead of 0.2 s for 21504×3072 ·
 * 3072×40 on this project's 2-core dev machine), and its own transpose kernel is 3× slower than a
 * blocked JavaScript one. So on wasm, operands are transposed in JavaScript and products run
 * untransposed; the other backends take transposeB natively.
 *
 * Large products are split into row blocks of op(a) (and DenseOperand keeps W as row blocks) with
 * a turn of the event loop between blocks, so a 264 MB FLUX weight never holds the loop for more
 * than a few tens of milliseconds on wasm and is never one GPU buffer larger than the WebGPU
 * default binding limit (128 MiB). The second operand of matmul() is uploaded whole.
 */
import { activeBackend, tf, useBackend } from './backend.ts';
import { yieldToEventLoop } from './cooperative.ts';
import { assertShape, transposeColumns, transposeF32 } from './layout.ts';
import { LinalgError } from './linalg-error.ts';

/** Elements per row block of a large operand (32 MiB of float32). */
const BLOCK_ELEMENTS = 1 << 23;

export interface MatmulOptions {
  /** Use aᵀ: `a` is stored row-major with shape aShape and the product uses its transpose. */
  transposeA?: boolean;
  transposeB?: boolean;
  /**
   * Most elements of one operand block sent to the backend at once (default 2^23 = 32 MiB of
   * float32); smaller blocks hand the event loop back more often and need less backend memory.
   */
  blockElements?: number;
}

/** Starts the default backend (LORAFLOW_BACKEND, else auto) when nothing has chosen one yet. */
export async function ensureBackend(): Promise<string> {
  const name = activeBackend();
  return name === 'none' ? useBackend() : name;
}

/** Whether the active backend multiplies transposed operands at full speed. */
function transposesNatively(): boolean {
  return activeBackend() !== 'wasm';
}

/**
 * op(a)·op(b) for row-major float32 matrices. `aShape` and `bShape` are the shapes of the arrays as
 * stored; with transposeA the product uses aᵀ (so a [k, n] array contributes an n×k operand).
 * Returns a fresh row-major array of op(a).rows × op(b).cols.
 */
export async function matmul(
  a: Float32Array,
  aShape: readonly [number, number],
  b: Float32Array,
  bShape: readonly [number, number],
  opts: MatmulOptions = {},
): Promise<Float32Array> {
  assertShape(a, aShape[0], aShape[1], 'matmul: a');
  assertShape(b, bShape[0], bShape[1], 'matmul: b');
  const [n, k] = opts.transposeA ? [aShape[1], aShape[0]] : [aShape[0], aShape[1]];
  const [kb, m] = opts.transposeB ? [bShape[1], bShape[0]] : [bShape[0], bShape[1]];
  if (k !== kb) {
    throw new LinalgError(`matmul: inner dimensions differ: op(a) is ${n}×${k}, op(b) is ${kb}×${m}` +
      ` (transposeA=${Boolean(opts.transposeA)}, transposeB=${Boolean(opts.transposeB)})`);
  }
  const rowsPerBlock = Math.max(1, Math.floor(blockElements(opts.blockElements) / Math.max(k, m, 1)));
  if (n === 0 || m === 0 || k === 0) return new Float32Array(n * m);
  await ensureBackend();

  const nativeB = Boolean(opts.transposeB) && transposesNatively();
  const bArg = opts.transposeB && !nativeB ? transposeF32(b, bShape[0], bShape[1]) : b;
  const out = new Float32Array(n * m);
  const bt = tf.tensor2d(bArg, nativeB ? [m, k] : [k, m]);
  try {
    for (let r0 = 0; r0 < n; r0 += rowsPerBlock) {
      const r1 = Math.min(n, r0 + rowsPerBlock);
      // Rows r0..r1 of op(a); with transposeA they are columns of the stored a, transposed here in
      // JavaScript (one pass over the block, against m passes for its product).
      const rows = opts.transposeA ? transposeColumns(a, k, n, r0, r1) : a.subarray(r0 * k, r1 * k);
      const ablock = tf.tensor2d(rows, [r1 - r0, k]);
      const product = tf.matMul(ablock, bt, false, nativeB);
      ablock.dispose();
      out.set(await readAndDispose(product), r0 * m);
      if (r1 < n) await yieldToEventLoop();
    }
  } finally {
    bt.dispose();
  }
  return out;
}

/**
 * A large matrix W (m×n) resident on the backend for repeated W·X and Wᵀ·Y products, as randomized
 * SVD needs. Stored as row blocks, once. On wasm, where only untransposed products are fast, Wᵀ·Y
 * is computed as (Yᵀ·W)ᵀ: only the thin Y and the thin result are transposed, never W, so there is
 * neither a second resident copy of W nor a transpose of it per product.
 */
export class DenseOperand {
  private constructor(
    readonly m: number,
    readonly n: number,
    private readonly rowStarts: number[],
    private readonly blocks: tf.Tensor2D[],
  ) {}

  static async upload(w: Float32Array, m: number, n: number, opts: { blockElements?: number } = {}): Promise<DenseOperand> {
    assertShape(w, m, n, 'DenseOperand: w');
    await ensureBackend();
    const rowsPerBlock = Math.max(1, Math.floor(blockElements(opts.blockElements) / Math.max(1, n)));
    const rowStarts: number[] = [];
    const blocks: tf.Tensor2D[] = [];
    try {
      for (let r0 = 0; r0 < m; r0 += rowsPerBlock) {
        const r1 = Math.min(m, r0 + rowsPerBlock);
        rowStarts.push(r0);
        blocks.push(tf.tensor2d(w.subarray(r0 * n, r1 * n), [r1 - r0, n]));
        if (r1 < m) await yieldToEventLoop();
      }
    } catch (error) {
      for (const t of blocks) t.dispose();
      throw error;
    }
    return new DenseOperand(m, n, rowStarts, blocks);
  }

  /** W·x for x n×l; returns a new m×l tensor (the caller disposes it). */
  async times(x: tf.Tensor2D): Promise<tf.Tensor2D> {
    if (x.shape[0] !== this.n) throw new LinalgError(`DenseOperand.times: expected ${this.n} rows, got ${x.shape[0]}`);
    const parts: tf.Tensor2D[] = [];
    let result: tf.Tensor2D | undefined;
    try {
      for (let i = 0; i < this.blocks.length; i++) {
        parts.push(tf.matMul(this.blocks[i], x));
        if (i + 1 < this.blocks.length) await yieldToEventLoop();
      }
      result = parts.length === 1 ? parts[0] : tf.concat2d(parts, 0);
      return result;
    } finally {
      for (const t of parts) if (t !== result) t.dispose();
    }
  }

  /** Wᵀ·y for y m×l; returns a new n×l tensor (the caller disposes it). */
  async transposeTimes(y: tf.Tensor2D): Promise<tf.Tensor2D> {
    if (y.shape[0] !== this.m) throw new LinalgError(`DenseOperand.transposeTimes: expected ${this.m} rows, got ${y.shape[0]}`);
    const native = transposesNatively();
    // Σ over row blocks i of Wᵢᵀ·yᵢ, natively; on wasm the same sum as (Σ yᵢᵀ·Wᵢ)ᵀ
    const yt = native ? y : (tf.transpose(y) as tf.Tensor2D);
    let sum: tf.Tensor2D | undefined;
    try {
      for (let i = 0; i < this.blocks.length; i++) {
        const part = this.blockPart(i, yt, native);
        if (sum) {
          const next = tf.add(sum, part) as tf.Tensor2D;
          sum.dispose();
          part.dispose();
          sum = next;
        } else {
          sum = part;
        }
        if (i + 1 < this.blocks.length) await yieldToEventLoop();
      }
      if (native) return sum as tf.Tensor2D;
      const result = tf.transpose(sum as tf.Tensor2D) as tf.Tensor2D;
      sum?.dispose();
      return result;
    } catch (error) {
      sum?.dispose();
      throw error;
    } finally {
      if (yt !== y) yt.dispose();
    }
  }

  /** Block i's share of Wᵀ·y: Wᵢᵀ·yᵢ natively, yᵢᵀ·Wᵢ (l×n) from yᵀ on wasm. */
  private blockPart(i: number, yOrYt: tf.Tensor2D, native: boolean): tf.Tensor2D {
    const r0 = this.rowStarts[i];
    const rows = this.blocks[i].shape[0];
    const whole = this.blocks.length === 1;
    const l = native ? yOrYt.shape[1] : yOrYt.shape[0];
    const slice = whole ? yOrYt : native ? tf.slice(yOrYt, [r0, 0], [rows, l]) : tf.slice(yOrYt, [0, r0], [l, rows]);
    try {
      return native ? tf.matMul(this.blocks[i], slice, true, false) : tf.matMul(slice, this.blocks[i]);
    } finally {
      if (slice !== yOrYt) slice.dispose();
    }
  }

  dispose(): void {
    for (const t of this.blocks) t.dispose();
  }
}

function blockElements(requested: number | undefined): number {
  if (requested === undefined) return BLOCK_ELEMENTS;
  if (!(Number.isSafeInteger(requested) && requested >= 1)) {
    throw new LinalgError(`blockElements must be a positive integer, got ${requested}`);
  }
  return requested;
}

/** Reads a tensor into a Float32Array that no tensor shares, then disposes the tensor. */
export async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  try {
    return await readFresh(t);
  } finally {
    t.dispose();
  }
}

async function readFresh(t: tf.Tensor): Promise<Float32Array> {
  const data = (await t.data()) as Float32Array;
  // The cpu backend hands out its own storage, which an identity op may share with an input.
  return activeBackend() === 'cpu' ? data.slice() : data;
}
