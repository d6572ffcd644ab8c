/**
 * One base weight with its patches applied, in f32: W ← W + Σ wᵢ·ΔWᵢ. Replacements (`set`) come
 * first and become the weight the deltas are added to (their LoRA weight does not apply, as in
 * ComfyUI). Without DoRA the LoRA patches of each row slice are stacked into one up/down pair and
 * multiplied on the backend in row chunks, so ΔW never exists whole; other kinds add their dense
 * ΔW. With DoRA on the weight, patches apply one after another in LoRA order, each DoRA patch
 * renormalising the weight as it stands after its own update.
 */
import { matmul } from '../tensor/linalg.ts';
import type { PlannedPatch } from './apply-plan.ts';
import { denseDelta } from './dense-delta.ts';
import { applyDora } from './dora.ts';
import { readFactorPart, stackFactors } from './factors.ts';

/** Elements of ΔW computed per matmul call (16 MiB of f32): bounds memory for the widest weights. */
const CHUNK_ELEMENTS = 1 << 22;

function addScaled(w: Float32Array, offset: number, delta: Float32Array, weight: number): void {
  if (weight === 1) for (let i = 0; i < delta.length; i++) w[offset + i]! += delta[i]!;
  else for (let i = 0; i < delta.length; i++) w[offset + i]! += weight * delta[i]!;
}

/** w[rows rowStart.., :] += up [rows, R] @ down [R, cols], a chunk of rows at a time. */
async function addProduct(w: Float32Array, cols: number, rowStart: number, up: Float32Array, down: Float32Array, rows: number, rank: number): Promise<void> {
  const step = Math.max(1, Math.floor(CHUNK_ELEMENTS / Math.max(1, cols)));
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step);
    const delta = await matmul(up.subarray(r0 * rank, r1 * rank), [r1 - r0, rank], down, [rank, cols]);
    addScaled(w, (rowStart + r0) * cols, delta, 1);
  }
}

async function addLinear(w: Float32Array, cols: number, planned: readonly PlannedPatch[]): Promise<void> {
  const slices = new Map<string, PlannedPatch[]>();
  for (const p of planned) {
    if (p.patch.adapter.kind === 'lora' && !p.patch.adapter.mid) {
      const key = `${p.rowStart}:${p.rowLen}`;
      slices.set(key, [...(slices.get(key) ?? []), p]);
    } else {
      const delta = await denseDelta(p.patch.adapter, p.patch.source.module);
      addScaled(w, p.rowStart * cols, delta.data, p.weight);
    }
  }
  for (const group of slices.values()) {
    const { rowStart, rowLen } = group[0]!;
    const parts = await Promise.all(group.map((p) => readFactorPart(p.patch, p.weight, rowStart)));
    const stacked = stackFactors(parts, rowLen, cols);
    await addProduct(w, cols, rowStart, stacked.up, stacked.down, rowLen, stacked.rank);
  }
}

/** Applies `planned` (all on one weight of `cols` columns) to `w` in place. */
export async function patchWeight(w: Float32Array, cols: number, planned: readonly PlannedPatch[]): Promise<void> {
  for (const p of planned) {
    if (p.patch.adapter.kind === 'set') w.set(await p.patch.adapter.value.f32(), p.rowStart * cols);
  }
  const deltas = planned.filter((p) => p.patch.adapter.kind !== 'set');
  if (!deltas.some((p) => p.patch.dora)) return addLinear(w, cols, deltas);
  for (const p of [...deltas].sort((a, b) => a.input - b.input)) {
    if (!p.patch.dora) {
      await addLinear(w, cols, [p]);
      continue;
    }
    const delta = await denseDelta(p.patch.adapter, p.patch.source.module);
    applyDora(w, cols, p.rowStart, p.rowLen, delta.data, await p.patch.dora.magnitude.f32(), p.patch.dora.axis, p.weight);
  }
}
