/**
 * LyCORIS's Tucker-decomposed conv adapters (`lycoris/modules/locon.py`, `loha.py`, `lokr.py`).
 * LoCon: down [r, in, 1, 1], `lora_mid` [r, r, kh, kw], up [out, r, 1, 1] with ΔW[o, c, s] = Σᵢⱼ up[o, i] · mid[i, j, s] · down[j, c]
 * (LyCORIS `einsum("i j ..., i p, j r -> p r ...")`; ComfyUI folds mid into down the same way).
 * LoHa (`hada_t1`/`hada_t2`) and LoKr (`lokr_t2`) use the same product with their `_a` factor
 * stored transposed ([r, out]). Folding the core into the `_b`/down factor gives the ordinary
 * adapter of the same rank, exact up to f32 rounding: what PEFT files and the dense operations need.
 */
import type { LohaAdapter, LokrAdapter, LoraAdapter } from './model.ts';
import { LoraFormatError } from './errors.ts';
import { dtypeBytes, encodeFromF32 } from '../tensor/dtype.ts';
import { numel, type LazyTensor } from '../tensor/lazy.ts';

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

/** A 2-D tensor transposed (bytes moved, no arithmetic). */
function transposed(t: LazyTensor): LazyTensor {
  const [rows, cols] = t.shape as [number, number];
  const es = dtypeBytes(t.dtype);
  const bytes = async () => {
    const src = await t.bytes();
    const out = new Uint8Array(src.byteLength);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out.set(src.subarray((r * cols + c) * es, (r * cols + c + 1) * es), (c * rows + r) * es);
    return out;
  };
  const f32 = async () => {
    const v = await t.f32();
    const out = new Float32Array(v.length);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c]!;
    return out;
  };
  return { shape: [cols, rows], dtype: t.dtype, origin: `${t.origin}ᵀ`, f32, bytes };
}

/** A Tucker pair (a [r, out], b [r, in], core [r, r, kh, kw]) as plain factors a' [out, r] @ b' [r, in·kh·kw]. */
function foldPair(a: LazyTensor, b: LazyTensor, core: LazyTensor, module: string): { a: LazyTensor; b: LazyTensor } {
  if (a.shape.length !== 2 || a.shape[0] !== core.shape[0]) {
    throw new LoraFormatError('BAD_SHAPES', `${module}: Tucker core [${core.shape}] does not fit factor [${a.shape}] (expected [${core.shape[0]}, out])`, module);
  }
  const folded = foldTuckerDown(b, core, module);
  return { a: transposed(a), b: { ...folded, shape: [folded.shape[0]!, numel(folded.shape) / folded.shape[0]!] } };
}

/** A LoHa without its Tucker cores (hada_t1/t2); unchanged when it has none. */
export function foldLoha(adapter: LohaAdapter, module = 'adapter'): LohaAdapter {
  if (!adapter.t1 && !adapter.t2) return adapter;
  const { t1, t2, ...rest } = adapter;
  const out: LohaAdapter = { ...rest };
  if (t1) ({ a: out.w1a, b: out.w1b } = foldPair(adapter.w1a, adapter.w1b, t1, module));
  if (t2) ({ a: out.w2a, b: out.w2b } = foldPair(adapter.w2a, adapter.w2b, t2, module));
  return out;
}

/** A LoKr without its Tucker core (lokr_t2); unchanged when it has none. */
export function foldLokr(adapter: LokrAdapter, module = 'adapter'): LokrAdapter {
  if (!adapter.t2) return adapter;
  if (!adapter.w2a || !adapter.w2b) throw new LoraFormatError('BAD_SHAPES', `${module}: lokr_t2 without lokr_w2_a / lokr_w2_b`, module);
  const { t2, ...rest } = adapter;
  const { a, b } = foldPair(adapter.w2a, adapter.w2b, t2, module);
  return { ...rest, w2a: a, w2b: b };
}
