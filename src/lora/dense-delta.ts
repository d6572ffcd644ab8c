/**
 * The dense ΔW (f32, [rows, cols], conv weights flattened) of one adapter, with the products on the
 * compute backend. Used where a dense matrix is unavoidable: applying non-LoRA adapters to a base,
 * DoRA renormalisation, and turning LoHa/LoKr/full diffs into LoRAs.
 */
import type { Adapter } from '../adapter/model.ts';
import { numel, type LazyTensor } from '../tensor/lazy.ts';
import { matmul } from '../tensor/linalg.ts';
import { adapterShapeError, loraDims, withoutTucker } from '../adapter/kinds.ts';

export interface DenseMatrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

function dims(t: LazyTensor): { rows: number; cols: number } {
  const rows = t.shape[0] ?? 1;
  return { rows, cols: rows === 0 ? 0 : numel(t.shape) / rows };
}

async function product(a: LazyTensor, b: LazyTensor, module: string, what: string): Promise<DenseMatrix> {
  const A = dims(a);
  const B = dims(b);
  if (A.cols !== B.rows) throw adapterShapeError(module, `${what}: [${a.shape}] @ [${b.shape}] do not multiply`);
  return { rows: A.rows, cols: B.cols, data: await matmul(await a.f32(), [A.rows, A.cols], await b.f32(), [B.rows, B.cols]) };
}

async function wholeOrProduct(w: LazyTensor | undefined, a: LazyTensor | undefined, b: LazyTensor | undefined, module: string, what: string): Promise<DenseMatrix> {
  if (w) return { ...dims(w), data: await w.f32() };
  if (!a || !b) throw adapterShapeError(module, `${what} has neither a whole factor nor both halves`);
  return product(a, b, module, what);
}

function kron(a: DenseMatrix, b: DenseMatrix): DenseMatrix {
  const rows = a.rows * b.rows;
  const cols = a.cols * b.cols;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < a.rows; i++)
    for (let k = 0; k < b.rows; k++) {
      const rowBase = (i * b.rows + k) * cols;
      for (let j = 0; j < a.cols; j++) {
        const av = a.data[i * a.cols + j]!;
        const dst = rowBase + j * b.cols;
        const src = k * b.cols;
        for (let l = 0; l < b.cols; l++) out[dst + l] = av * b.data[src + l]!;
      }
    }
  return { rows, cols, data: out };
}

function scaled(m: DenseMatrix, s: number): DenseMatrix {
  if (s !== 1) for (let i = 0; i < m.data.length; i++) m.data[i]! *= s;
  return m;
}

/** ΔW of `adapter` (for `set`: the replacement values). The returned array is fresh and may be modified. */
export async function denseDelta(tucker: Adapter, module: string): Promise<DenseMatrix> {
  // LyCORIS Tucker cores (conv LoCon/LoHa/LoKr) fold into plain factors of the same rank
  const adapter = withoutTucker(tucker, module);
  switch (adapter.kind) {
    case 'lora': {
      const { rows, rank, cols } = loraDims(adapter, module);
      const data = await matmul(await adapter.up.f32(), [rows, rank], await adapter.down.f32(), [rank, cols]);
      return scaled({ rows, cols, data }, adapter.scale);
    }
    case 'loha': {
      const a = await product(adapter.w1a, adapter.w1b, module, 'hada_w1');
      const b = await product(adapter.w2a, adapter.w2b, module, 'hada_w2');
      if (a.rows !== b.rows || a.cols !== b.cols) throw adapterShapeError(module, `LoHa halves are [${a.rows},${a.cols}] and [${b.rows},${b.cols}]`);
      for (let i = 0; i < a.data.length; i++) a.data[i]! *= b.data[i]!;
      return scaled(a, adapter.scale);
    }
    case 'lokr': {
      const w1 = await wholeOrProduct(adapter.w1, adapter.w1a, adapter.w1b, module, 'lokr_w1');
      const w2 = await wholeOrProduct(adapter.w2, adapter.w2a, adapter.w2b, module, 'lokr_w2');
      return scaled(kron(w1, w2), adapter.scale);
    }
    case 'full':
      return { ...dims(adapter.diff), data: Float32Array.from(await adapter.diff.f32()) };
    case 'set':
      return { ...dims(adapter.value), data: Float32Array.from(await adapter.value.f32()) };
  }
}
