/**
 * applyToBase's patches in the output's coordinates. Patches are planned on canonical (original)
 * weights; an output tensor takes row ranges of canonical ones (itself, a diffusers q/k/v part of a
 * fused weight, one swapped half of a modulation, a fused weight assembled from diffusers parts),
 * so each patch goes to every output tensor whose rows it covers, cut to those rows: a LoRA's up
 * rows, a full diff's or a replacement's rows, a DoRA magnitude's rows (per output row), the dense
 * ΔW rows of LoHa/LoKr. The mapping comes from the output plan (the family's module table), never
 * from names here.
 */
import type { Adapter, Patch } from '../adapter/model.ts';
import type { OutputTensor } from '../checkpoint/output-plan.ts';
import { derivedTensor, numel, type LazyTensor } from '../tensor/lazy.ts';
import { applyError, type PlannedPatch } from './apply-plan.ts';
import { denseDelta } from './dense-delta.ts';
import { adapterGeometry } from './geometry.ts';

/** Rows [from, from + len) of a tensor whose first dimension is its rows. */
function rowsOf(t: LazyTensor, from: number, len: number): LazyTensor {
  const rows = t.shape[0] ?? 1;
  const per = rows === 0 ? 0 : numel(t.shape) / rows;
  return derivedTensor(t, [len, ...t.shape.slice(1)], (v) => v.slice(from * per, (from + len) * per), `${t.origin} rows ${from}..${from + len}`);
}

/** The adapter whose ΔW is rows [from, from + len) of `adapter`'s. */
function sliceAdapter(adapter: Adapter, module: string, from: number, len: number): Adapter {
  switch (adapter.kind) {
    case 'lora':
      return { ...adapter, up: rowsOf(adapter.up, from, len) };
    case 'full':
      return { kind: 'full', diff: rowsOf(adapter.diff, from, len) };
    case 'set':
      return { kind: 'set', value: rowsOf(adapter.value, from, len) };
    default: {
      // LoHa / LoKr rows are no factor's rows: their dense ΔW, cut when it is needed
      const { cols } = adapterGeometry(adapter, module);
      return {
        kind: 'full',
        diff: {
          shape: [len, cols],
          dtype: 'F32',
          origin: `${module} ΔW rows ${from}..${from + len}`,
          f32: async () => (await denseDelta(adapter, module)).data.slice(from * cols, (from + len) * cols),
          bytes: async () => new Uint8Array((await denseDelta(adapter, module)).data.slice(from * cols, (from + len) * cols).buffer),
        },
      };
    }
  }
}

/** `planned` moved to output rows [at, at + len), keeping ΔW rows [from, from + len) of it. */
function placed(planned: PlannedPatch, from: number, len: number, at: number, tensor: string): PlannedPatch {
  const { patch } = planned;
  const whole = from === 0 && len === planned.rowLen;
  if (whole && at === planned.rowStart) return planned;
  if (!whole && patch.dora?.axis === 'in') {
    throw applyError(`${patch.source.module} → ${tensor}: a DoRA patch normalised per input column over the whole of ${patch.target} cannot be split across that weight's parts in this layout`);
  }
  if (!whole && patch.reshape) throw applyError(`${patch.source.module} → ${tensor}: a patch that widens ${patch.target} cannot be split across parts`);
  const moved: Patch = {
    ...patch,
    rows: [at, len],
    adapter: whole ? patch.adapter : sliceAdapter(patch.adapter, patch.source.module, from, len),
    ...(patch.dora && !whole ? { dora: { ...patch.dora, magnitude: rowsOf(patch.dora.magnitude, from, len) } } : {}),
  };
  return { ...planned, patch: moved, rowStart: at, rowLen: len };
}

/** The patches of one output tensor, from the canonical tensors' planned patches (undefined: none). */
export function outputPatches(out: OutputTensor, byKey: ReadonlyMap<string, readonly PlannedPatch[]>): PlannedPatch[] | undefined {
  const list: PlannedPatch[] = [];
  for (const piece of out.pieces) {
    for (const p of byKey.get(piece.canonical) ?? []) {
      const lo = Math.max(p.rowStart, piece.canonRow);
      const hi = Math.min(p.rowStart + p.rowLen, piece.canonRow + piece.rows);
      if (lo >= hi) continue;
      list.push(placed(p, lo - p.rowStart, hi - lo, piece.at + (lo - piece.canonRow), out.name));
    }
  }
  return list.length ? list : undefined;
}
