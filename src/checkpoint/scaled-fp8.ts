/**
 * ComfyUI's scaled fp8 checkpoints: a `scaled_fp8` marker tensor (its dtype names the fp8 format;
 * under the model's prefix in a full checkpoint), and beside each fp8 weight `NAME.weight` a
 * `NAME.scale_weight` (one value, or one per output row) so that W = q · scale, plus an optional
 * `NAME.scale_input` for fp8 matmuls. The marker and the scales are the encoding, not the model:
 * the canonical view shows W, and a patched weight is written with a new scale chosen from its
 * largest magnitude, so the result uses the whole fp8 range and never saturates.
 */
import { decodeInto, encodeFromF32, isCodecDType, isFloatDType, type DType } from '../tensor/dtype.ts';
import { encodeFp8, encodeFp8Stochastic, isFp8, type Fp8DType } from '../tensor/fp8-round.ts';
import { CheckpointError } from './errors.ts';
import type { StoredTensor } from './form.ts';

const MARKER = 'scaled_fp8';
const SCALE = '.scale_weight';
const INPUT = '.scale_input';
/** Companion tensors of ComfyUI's newer quant formats (`comfy_quant`, `weight_scale`, NVFP4's second scale). */
const NEWER_QUANT = ['.comfy_quant', '.weight_scale', '.weight_scale_2'];

/** Largest finite value per fp8 format. */
export const FP8_MAX: Record<Fp8DType, number> = { F8_E4M3: 448, F8_E5M2: 57344 };

export interface ScaledWeight {
  weight: string;
  scale: string;
  /** Per output row (the scale holds one value per row) or per tensor (one value). */
  perRow: boolean;
  scaleDtype: DType;
}

export interface ScaledFp8 {
  markers: readonly string[];
  /** The fp8 format the marker names (ComfyUI reads an F32 marker as e4m3fn). */
  fp8: Fp8DType;
  weights: ReadonlyMap<string, ScaledWeight>;
  /** Every tensor of the encoding (markers, scales, input scales): hidden from the canonical view. */
  companions: ReadonlySet<string>;
  /** `NAME.scale_input` per weight, where the file has one. */
  inputs: ReadonlyMap<string, string>;
}

const isMarker = (name: string) => name === MARKER || name.endsWith(`.${MARKER}`);

/**
 * The scaled fp8 encoding of a file, or undefined when it has neither marker nor scales. Refuses
 * (naming the file and the tensor) a scale without its weight, a scale of the wrong size, and,
 * in a file marked scaled_fp8, an fp8 weight without a scale or a marker with no scales at all.
 */
export function findScaledFp8(path: string, tensors: readonly StoredTensor[]): ScaledFp8 | undefined {
  // ComfyUI's newer per-layer quant formats keep their scales under other names: read as plain
  // fp8 (or int8) their weights would be silently wrong, so they are refused by name
  const newer = tensors.find((t) => NEWER_QUANT.some((s) => t.name.endsWith(s)));
  if (newer) throw new CheckpointError('UNSUPPORTED_FORM', path, `a ComfyUI quantized layer (${NEWER_QUANT.join(', ')}); loraflow reads the legacy scaled_fp8 layout (.scale_weight) only`, newer.name);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const markers = tensors.filter((t) => isMarker(t.name));
  const scales = tensors.filter((t) => t.name.endsWith(SCALE));
  if (markers.length === 0 && scales.length === 0) return undefined;
  const fail = (tensor: string, why: string): never => {
    throw new CheckpointError('BAD_SCALES', path, why, tensor);
  };
  const markerDtype = markers[0]?.dtype;
  const fp8: Fp8DType = markerDtype && isFp8(markerDtype) ? markerDtype : 'F8_E4M3';
  const weights = new Map<string, ScaledWeight>();
  const companions = new Set<string>(markers.map((t) => t.name));
  const inputs = new Map<string, string>();
  for (const s of scales) {
    const base = s.name.slice(0, -SCALE.length);
    const w = byName.get(`${base}.weight`);
    if (!w) fail(s.name, `a scale without its weight (${base}.weight is not in the file)`);
    if (!isFp8(w!.dtype)) fail(w!.name, `has a ${SCALE} but is ${w!.dtype}, not fp8`);
    if (!isCodecDType(s.dtype) || !isFloatDType(s.dtype)) fail(s.name, `a scale stored as ${s.dtype}, not a floating-point dtype`);
    const count = s.shape.reduce((a, b) => a * b, 1);
    const rows = w!.shape[0] ?? 1;
    if (count !== 1 && count !== rows) fail(s.name, `holds ${count} values; a scale has one value, or one per row of ${w!.name} [${w!.shape}]`);
    weights.set(w!.name, { weight: w!.name, scale: s.name, perRow: count !== 1, scaleDtype: s.dtype as DType });
    companions.add(s.name);
    const input = byName.get(`${base}${INPUT}`);
    if (input) {
      companions.add(input.name);
      inputs.set(w!.name, input.name);
    }
  }
  for (const t of tensors) {
    if (!t.name.endsWith(INPUT) || companions.has(t.name)) continue;
    fail(t.name, `an input scale without a ${SCALE} beside it`);
  }
  if (markers.length > 0) {
    if (weights.size === 0) fail(markers[0]!.name, `the file is marked scaled_fp8 but has no ${SCALE} tensors: its fp8 values cannot be read without their scales`);
    const prefixes = markers.map((m) => m.name.slice(0, -MARKER.length));
    const unscaled = tensors.find((t) => isFp8(t.dtype) && t.shape.length >= 2 && !weights.has(t.name) && prefixes.some((p) => t.name.startsWith(p)));
    if (unscaled) fail(unscaled.name, `an fp8 weight of a scaled_fp8 checkpoint without its ${SCALE} (${unscaled.name.replace(/\.weight$/, '')}${SCALE})`);
  }
  return { markers: markers.map((t) => t.name), fp8, weights, companions, inputs };
}

/** q · scale into `out` (q: stored fp8 bytes of `rows` rows; scale: one value, or one per row). */
export function decodeScaled(q: Uint8Array, dtype: Fp8DType, scale: Float32Array, rows: number, out: Float32Array): Float32Array {
  decodeInto(q, dtype, out);
  if (scale.length === 1) {
    const s = scale[0]!;
    for (let i = 0; i < out.length; i++) out[i] = out[i]! * s;
    return out;
  }
  const cols = rows === 0 ? 0 : out.length / rows;
  for (let r = 0; r < rows; r++) {
    const s = scale[r]!;
    for (let i = r * cols, end = i + cols; i < end; i++) out[i] = out[i]! * s;
  }
  return out;
}

/** Largest finite |value| of each of `rows` rows (0 for a row of zeros, NaN or Inf only). */
export function rowAmax(values: Float32Array, rows: number): Float32Array {
  const cols = rows === 0 ? 0 : values.length / rows;
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let i = r * cols, end = i + cols; i < end; i++) {
      const a = Math.abs(values[i]!);
      if (a > amax && a !== Infinity) amax = a;
    }
    out[r] = amax;
  }
  return out;
}

/**
 * New scales from the largest finite magnitude of each row (`amax`): per row, or their maximum
 * for a per-tensor scale; amax over the fp8 maximum, 1 where all are zero. Stored as `scaleDtype`
 * and read back: values are divided by what the file will hold. A scale its dtype cannot hold (a
 * bf16 scale of a tiny weight rounding to 0) falls back to 1.
 */
export function chooseScales(amax: Float32Array, w: Pick<ScaledWeight, 'perRow' | 'scaleDtype'>, dtype: Fp8DType): { scale: Uint8Array; scales: Float32Array } {
  const groups = w.perRow ? amax.length : 1;
  const wanted = new Float32Array(groups);
  if (w.perRow) for (let g = 0; g < groups; g++) wanted[g] = amax[g]! > 0 ? amax[g]! / FP8_MAX[dtype] : 1;
  else {
    const top = amax.reduce((m, a) => (a > m ? a : m), 0);
    wanted[0] = top > 0 ? top / FP8_MAX[dtype] : 1;
  }
  let scale = encodeFromF32(wanted, w.scaleDtype);
  const stored = new Float32Array(groups);
  decodeInto(scale, w.scaleDtype, stored);
  if (stored.some((v) => !(v > 0 && Number.isFinite(v)))) {
    for (let g = 0; g < groups; g++) if (!(stored[g]! > 0 && Number.isFinite(stored[g]!))) wanted[g] = 1;
    scale = encodeFromF32(wanted, w.scaleDtype);
    decodeInto(scale, w.scaleDtype, stored);
  }
  return { scale, scales: stored };
}

/**
 * A new scale for `values` (chooseScales), and the values divided by that stored scale and
 * rounded to fp8 (saturating, so a scale rounded down by its dtype costs at most the top value's
 * last bit). Returns both encodings. `inPlace`: `values` is scratch and may be overwritten.
 */
export function encodeScaled(values: Float32Array, rows: number, w: Pick<ScaledWeight, 'perRow' | 'scaleDtype'>, dtype: Fp8DType, stochasticSeed?: number, opts: { inPlace?: boolean } = {}): { bytes: Uint8Array; scale: Uint8Array; scales: Float32Array } {
  const { scale, scales } = chooseScales(rowAmax(values, rows), w, dtype);
  const groups = scales.length;
  const per = groups === 0 ? 0 : values.length / groups;
  // a scratch input is divided in place (a whole weight's floats are the largest allocation here)
  const q = opts.inPlace ? values : new Float32Array(values.length);
  for (let g = 0; g < groups; g++) {
    const s = scales[g]!;
    for (let i = g * per, end = i + per; i < end; i++) q[i] = values[i]! / s;
  }
  const bytes = stochasticSeed === undefined ? encodeFp8(q, dtype) : encodeFp8Stochastic(q, dtype, stochasticSeed);
  return { bytes, scale, scales };
}
