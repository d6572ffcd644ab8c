/**
 * What an apply changed, per tensor, collected while it streams (no second pass over the file):
 * ‖W‖_F of the base tensor, from the bytes already in memory, decoded a chunk at a time into one
 * scratch buffer, and ‖ΔW‖_F of the change. For LoRA-only weights the change comes from the
 * stacked factors the apply multiplies anyway (‖U D‖² = trace((UᵀU)(DDᵀ)), block-strength.ts), so it
 * is the exact Σ wᵢ·ΔWᵢ before rounding to the output dtype; for weights patched densely (DoRA,
 * replacements, LoHa/LoKr) it is the patched f32 weight minus the base.
 */
import { sumSquaresBF16Simd } from '../tensor/bf16-simd.ts';
import { decodeInto, dtypeBytes, type DType } from '../tensor/dtype.ts';
import { lowRankNorm2 } from './block-strength.ts';
import type { DeltaGroup } from './chunk-task.ts';

export interface TensorChange {
  tensor: string;
  /** The patched module's component and canonical target (for its block id). */
  component: string;
  target: string;
  /** ‖W‖_F of the base tensor. */
  baseNorm: number;
  /** ‖W' − W‖_F (before rounding to the output dtype, for LoRA-only weights). */
  changeNorm: number;
}

const CHUNK = 1 << 18;
let scratch: Float32Array | undefined;

/** Calls `fn` with consecutive decoded chunks of `bytes` and the index of each chunk's first value. */
function eachChunk(bytes: Uint8Array, dtype: DType, fn: (values: Float32Array, first: number) => void): void {
  const per = dtypeBytes(dtype);
  const n = bytes.byteLength / per;
  scratch ??= new Float32Array(CHUNK);
  for (let i = 0; i < n; i += CHUNK) {
    const count = Math.min(CHUNK, n - i);
    const values = decodeInto(bytes.subarray(i * per, (i + count) * per), dtype, scratch.subarray(0, count));
    fn(values, i);
  }
}

/** ‖W‖²_F of a stored tensor. */
export function storedNorm2(bytes: Uint8Array, dtype: DType): number {
  // bf16 (most bases) by the SIMD kernel; its remainder, and other dtypes, decoded a chunk at a time
  const simd = dtype === 'BF16' ? sumSquaresBF16Simd(bytes) : { sum: 0, count: 0 };
  let s = simd.sum;
  eachChunk(bytes.subarray(simd.count * 2), dtype, (v) => {
    let a = 0;
    for (let j = 0; j < v.length; j++) a += v[j]! * v[j]!;
    s += a;
  });
  return s;
}

/** ‖w − stored‖²_F: a patched f32 weight against the base bytes it came from. */
export function changeNorm2(w: Float32Array, bytes: Uint8Array, dtype: DType): number {
  let s = 0;
  eachChunk(bytes, dtype, (v, first) => {
    let a = 0;
    for (let j = 0; j < v.length; j++) {
      const d = w[first + j]! - v[j]!;
      a += d * d;
    }
    s += a;
  });
  return s;
}

/** ‖ΔW‖²_F of LoRA delta groups over disjoint rows (their squares add). */
export function groupsNorm2(groups: readonly DeltaGroup[], cols: number): number {
  return groups.reduce((s, g) => s + lowRankNorm2(g.up, g.down, g.rows, g.rank, cols), 0);
}
