/**
 * The [rows, cols] an adapter's ΔW covers, from tensor shapes alone (no data read), so that every
 * patch can be checked against the base weight's header before anything is computed or written.
 * Conv weights count as [out, in·kh·kw].
 */
import type { Adapter } from '../adapter/model.ts';
import { numel, type LazyTensor } from '../tensor/lazy.ts';
import { adapterShapeError, loraDims, withoutTucker } from '../adapter/kinds.ts';

export interface Geometry {
  rows: number;
  cols: number;
}

export function matrixOf(shape: readonly number[]): Geometry {
  const rows = shape.length === 0 ? 1 : shape[0]!;
  return { rows, cols: rows === 0 ? 0 : numel(shape) / rows };
}

function factorGeometry(whole: LazyTensor | undefined, a: LazyTensor | undefined, b: LazyTensor | undefined, module: string, what: string): Geometry {
  if (whole) return matrixOf(whole.shape);
  if (!a || !b) throw adapterShapeError(module, `${what} has neither a whole factor nor both halves`);
  const A = matrixOf(a.shape);
  const B = matrixOf(b.shape);
  if (A.cols !== B.rows) throw adapterShapeError(module, `${what}: [${a.shape}] @ [${b.shape}] do not multiply`);
  return { rows: A.rows, cols: B.cols };
}

/** The ΔW shape of `adapter`; for `full` and `set`, the shape of their values. */
export function adapterGeometry(tucker: Adapter, module: string): Geometry {
  const adapter = withoutTucker(tucker, module);
  switch (adapter.kind) {
    case 'lora': {
      const { rows, cols } = loraDims(adapter, module);
      return { rows, cols };
    }
    case 'loha': {
      const a = factorGeometry(undefined, adapter.w1a, adapter.w1b, module, 'hada_w1');
      const b = factorGeometry(undefined, adapter.w2a, adapter.w2b, module, 'hada_w2');
      if (a.rows !== b.rows || a.cols !== b.cols) throw adapterShapeError(module, `LoHa halves are [${a.rows},${a.cols}] and [${b.rows},${b.cols}]`);
      return a;
    }
    case 'lokr': {
      const a = factorGeometry(adapter.w1, adapter.w1a, adapter.w1b, module, 'lokr_w1');
      const b = factorGeometry(adapter.w2, adapter.w2a, adapter.w2b, module, 'lokr_w2');
      return { rows: a.rows * b.rows, cols: a.cols * b.cols };
    }
    case 'full':
      return matrixOf(adapter.diff.shape);
    case 'set':
      return matrixOf(adapter.value.shape);
  }
}
