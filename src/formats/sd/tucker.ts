/**
 * LoCon's Tucker-decomposed conv LoRA (`lora_mid`, research/lora-formats.md §1.8): down [r, in, 1, 1],
 * mid [r, r, kh, kw], up [out, r, 1, 1] with ΔW[o, c, s] = Σᵢⱼ up[o, i] · mid[i, j, s] · down[j, c]
 * (LyCORIS `einsum("i j ..., i p, j r -> p r ...")`, ComfyUI folds mid into down the same way).
 * Folding the core into the down gives an ordinary conv LoRA of the same rank, down' [r, in, kh, kw],
 * exact up to f32 rounding: what PEFT files and the dense operations need.
 */
import type { LoraAdapter } from '../model.ts';
import { LoraFormatError } from '../errors.ts';
import { encodeFromF32 } from '../../tensor/dtype.ts';
import { numel, type LazyTensor } from '../../tensor/lazy.ts';

/** down'[i, c, s] = Σⱼ mid[i, j, s] · down[j, c]. */
export function foldTuckerDown(down: LazyTensor, mid: LazyTensor, module = down.origin): LazyTensor {
  const [rMid, rDown, ...kernel] = mid.shape as number[];
  const rank = down.shape[0]!;
  const inputs = numel(down.shape) / rank;
  if (mid.shape.length !== 4 || rDown !== rank || numel(down.shape.slice(1)) !== down.shape[1]) {
    throw new LoraFormatError('BAD_SHAPES', `${module}: Tucker core [${mid.shape}] does not fit down [${down.shape}] (expected mid [r, ${rank}, kh, kw] and a 1×1 down)`, module);
  }
  const k = numel(kernel);
  const shape = [rMid!, inputs, ...kernel];
  const compute = async () => {
    const [m, d] = await Promise.all([mid.f32(), down.f32()]);
    const out = new Float32Array(rMid! * inputs * k);
    for (let i = 0; i < rMid!; i++)
      for (let j = 0; j < rank; j++) {
        const core = (i * rank + j) * k;
        for (let c = 0; c < inputs; c++) {
          const v = d[j * inputs + c]!;
          if (v === 0) continue;
          const at = (i * inputs + c) * k;
          for (let s = 0; s < k; s++) out[at + s]! += m[core + s]! * v;
        }
      }
    return out;
  };
  return { shape, dtype: down.dtype, origin: `${down.origin} ⊗ ${mid.origin} (Tucker folded)`, f32: compute, bytes: async () => encodeFromF32(await compute(), down.dtype) };
}

/** The same LoRA without a Tucker core (unchanged when it has none). */
export function plainLora(adapter: LoraAdapter, module?: string): LoraAdapter {
  if (!adapter.mid) return adapter;
  const { mid, ...rest } = adapter;
  return { ...rest, down: foldTuckerDown(adapter.down, mid, module) };
}
