/**
 * Chunk tasks in encodings of their own (src/lora/chunk-task.ts, chunk-codec.ts): a tensor cut into
 * row chunks comes out byte for byte as one whole task, inline and on a pool worker, and equal to
 * the whole-tensor reference (dequantize → add → quantize; q · scale → add; values / scale → fp8).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseScales, rowAmax } from '../src/checkpoint/scaled-fp8.ts';
import { dequantize, quantize } from '../src/gguf/codec.ts';
import { runChunk, type ChunkTask, type DeltaGroup } from '../src/lora/chunk-task.ts';
import { ComputePool } from '../src/lora/compute-pool.ts';
import { useBackend } from '../src/tensor/backend.ts';
import { decodeToF32, encodeFromF32 } from '../src/tensor/dtype.ts';

const ROWS = 24;
const COLS = 64;
const RANK = 4;

function values(n: number, seed: number, amp: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * amp);
}

const group = (): DeltaGroup => ({ rowStart: 4, rows: 16, rank: RANK, up: values(16 * RANK, 3, 0.25), down: values(RANK * COLS, 4, 0.25) });

/** The task over all rows at once. */
async function whole(task: Omit<ChunkTask, 'rowStart' | 'rows'>): Promise<Uint8Array> {
  const output = new Uint8Array(task.output.byteLength);
  await runChunk({ ...task, output, rowStart: 0, rows: ROWS });
  return output;
}

/** The same task cut at rows 5, 11 and 19 (inside and at the edges of the group). */
async function cut(task: Omit<ChunkTask, 'rowStart' | 'rows'>, run: (t: ChunkTask) => Promise<unknown>, perRowScale?: (s: Float32Array, r0: number, n: number) => Float32Array): Promise<Uint8Array> {
  const output = new Uint8Array(new SharedArrayBuffer(task.output.byteLength));
  const input = new Uint8Array(new SharedArrayBuffer(task.input.byteLength));
  input.set(task.input);
  const inRow = task.input.byteLength / ROWS;
  const outRow = output.byteLength / ROWS;
  const bounds = [0, 5, 11, 19, ROWS];
  await Promise.all(bounds.slice(1).map((end, k) => {
    const r0 = bounds[k]!;
    const n = end - r0;
    const slice = (s: Float32Array | undefined) => (s && s.length > 1 ? (perRowScale ?? ((x, a, b) => x.slice(a, a + b)))(s, r0, n) : s);
    return run({ ...task, input: input.subarray(r0 * inRow, end * inRow), output: output.subarray(r0 * outRow, end * outRow), rowStart: r0, rows: n, inScale: slice(task.inScale), outScale: slice(task.outScale) });
  }));
  return output;
}

let pool: ComputePool;
beforeAll(async () => {
  await useBackend('wasm');
  pool = await ComputePool.start(1, 'wasm');
});
afterAll(async () => {
  await pool.close();
});

describe('Q8_0 in and out', () => {
  const base = quantize('Q8_0', values(ROWS * COLS, 1, 2));
  const task = { input: base, inDtype: 'Q8_0', output: new Uint8Array(base.byteLength), outDtype: 'Q8_0', cols: COLS, groups: [group()], norms: true };

  it('equals dequantize → the F32 task → quantize, and sums ‖W‖² of the dequantized base', async () => {
    const f32 = dequantize('Q8_0', base);
    const sum = new Uint8Array(f32.byteLength);
    await runChunk({ input: new Uint8Array(f32.buffer), inDtype: 'F32', output: sum, outDtype: 'F32', cols: COLS, rowStart: 0, rows: ROWS, groups: [group()] });
    const want = quantize('Q8_0', new Float32Array(sum.buffer));
    const got = new Uint8Array(base.byteLength);
    const counts = await runChunk({ ...task, output: got, rowStart: 0, rows: ROWS });
    expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
    expect(counts.base2).toBeCloseTo(f32.reduce((s, v) => s + v * v, 0), 6);
  });

  it('comes out the same cut into row chunks, inline and on a worker', async () => {
    const want = await whole(task);
    expect(Buffer.from(await cut(task, runChunk)).equals(Buffer.from(want))).toBe(true);
    expect(Buffer.from(await cut(task, (t) => pool.run(t))).equals(Buffer.from(want))).toBe(true);
  });
});

describe('scaled fp8', () => {
  const scale = values(ROWS, 7, 0.01).map((v) => Math.abs(v) + 0.001);
  const q = encodeFromF32(values(ROWS * COLS, 2, 800), 'F8_E4M3');

  it('decodes q · scale per row, patches, and gives the row maxima of the result', async () => {
    const f32 = decodeToF32(q, 'F8_E4M3');
    for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) f32[r * COLS + c]! *= scale[r]!;
    const sum = new Uint8Array(f32.byteLength);
    await runChunk({ input: new Uint8Array(f32.buffer), inDtype: 'F32', output: sum, outDtype: 'F32', cols: COLS, rowStart: 0, rows: ROWS, groups: [group()] });
    const got = new Uint8Array(f32.byteLength);
    const c = await runChunk({ input: q, inDtype: 'F8_E4M3', inScale: scale, output: got, outDtype: 'F32', cols: COLS, rowStart: 0, rows: ROWS, groups: [group()], amax: true });
    expect(Buffer.from(got).equals(Buffer.from(sum))).toBe(true);
    expect([...c.amax!]).toEqual([...rowAmax(new Float32Array(sum.buffer), ROWS)]);
  });

  it('encodes values / stored scale to fp8 as the whole-tensor encoder does, cut or not, on a worker too', async () => {
    const v = values(ROWS * COLS, 5, 3);
    const { scales } = chooseScales(rowAmax(v, ROWS), { perRow: true, scaleDtype: 'F32' }, 'F8_E4M3');
    const want = encodeFromF32(Float32Array.from(v, (x, i) => x / scales[Math.floor(i / COLS)]!), 'F8_E4M3');
    const task = { input: new Uint8Array(v.buffer), inDtype: 'F32', outScale: scales, output: new Uint8Array(ROWS * COLS), outDtype: 'F8_E4M3', cols: COLS, groups: [] };
    expect(Buffer.from(await whole(task)).equals(Buffer.from(want))).toBe(true);
    expect(Buffer.from(await cut(task, (t) => pool.run(t))).equals(Buffer.from(want))).toBe(true);
  });
});
