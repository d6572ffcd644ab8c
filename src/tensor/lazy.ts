import { inputError, type LoraflowError } from '../errors.ts';
import type { SafetensorsFile } from '../safetensors/reader.ts';
import { decodeToF32, encodeFromF32, type DType } from './dtype.ts';
import { countNonFinite, countNonFiniteStored, describeNonFinite, nonFiniteF32, nonFiniteStored, type NonFiniteCount } from './finite.ts';

/**
 * A tensor whose values are produced on demand. Readers hand these out so that converting or
 * merging a file holds only the tensors currently being worked on. `bytes()` returns the stored
 * encoding unchanged when no arithmetic was applied, which is what makes pure conversions bit-exact.
 */
export interface LazyTensor {
  readonly shape: readonly number[];
  /** The dtype the values are stored in (and would be written in, unless told otherwise). */
  readonly dtype: DType;
  /** Where it came from, for error messages: `file.safetensors:key` or a description. */
  readonly origin: string;
  f32(): Promise<Float32Array>;
  bytes(): Promise<Uint8Array>;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export interface FileTensorOptions {
  /** Let NaN and ±Inf values through instead of refusing the tensor (default false). */
  allowNonFinite?: boolean;
}

/** The input error for a stored tensor holding NaN or ±Inf: names the file, the key and the count. */
export function nonFiniteError(path: string, name: string, found: NonFiniteCount, total: number): LoraflowError {
  return inputError(
    'NON_FINITE',
    `${path}: tensor ${name} holds ${found.count} non-finite value${found.count === 1 ? '' : 's'} of ${total} (${describeNonFinite(found)}; first at index ${found.first}); ` +
      'a LoRA with NaN or Inf poisons every weight it touches. Pass --allow-non-finite (load-lora param allowNonFinite) to use it anyway',
  );
}

/**
 * A tensor stored in a safetensors file, read only when asked. Unless `allowNonFinite`, the first
 * read checks it for NaN and ±Inf (the decoded values, or the stored bytes when they are copied
 * as they are) and refuses it with an input error naming file, key and count; once a read has
 * passed, later reads are not checked again.
 */
export function fileTensor(file: Pick<SafetensorsFile, 'path' | 'info' | 'readF32' | 'readBytes'>, name: string, opts: FileTensorOptions = {}): LazyTensor {
  const info = file.info(name);
  const dtype = info.dtype as DType;
  let checked = opts.allowNonFinite === true;
  const refuse = (found: NonFiniteCount) => nonFiniteError(file.path, name, found, numel(info.shape));
  return {
    shape: info.shape,
    dtype,
    origin: `${file.path}:${name}`,
    f32: async () => {
      const values = await file.readF32(name);
      if (!checked) {
        if (countNonFinite(values) > 0) throw refuse(nonFiniteF32(values));
        checked = true;
      }
      return values;
    },
    bytes: async () => {
      const bytes = await file.readBytes(name);
      if (!checked) {
        if (countNonFiniteStored(bytes, dtype) > 0) throw refuse(nonFiniteStored(bytes, dtype));
        checked = true;
      }
      return bytes;
    },
  };
}

/** A tensor held in memory as Float32 values, stored as `dtype` (rounded once when encoded). */
export function memoryTensor(values: Float32Array, shape: readonly number[], dtype: DType = 'F32', origin = 'computed'): LazyTensor {
  if (values.length !== numel(shape)) throw new Error(`${origin}: ${values.length} values do not fill shape [${shape}]`);
  return {
    shape,
    dtype,
    origin,
    f32: async () => values,
    bytes: async () => encodeFromF32(values, dtype),
  };
}

/** The same values computed from another tensor by `fn` (arithmetic, so bytes are re-encoded). */
export function derivedTensor(
  source: LazyTensor,
  shape: readonly number[],
  fn: (values: Float32Array) => Float32Array,
  origin = source.origin,
  dtype: DType = source.dtype,
): LazyTensor {
  return {
    shape,
    dtype,
    origin,
    f32: async () => fn(await source.f32()),
    bytes: async () => encodeFromF32(fn(await source.f32()), dtype),
  };
}

/** Same values stored as another dtype. Identity when the dtype is unchanged (bytes copied). */
export function castTensor(source: LazyTensor, dtype: DType): LazyTensor {
  if (dtype === source.dtype) return source;
  return {
    shape: source.shape,
    dtype,
    origin: source.origin,
    f32: async () => decodeToF32(encodeFromF32(await source.f32(), dtype), dtype),
    bytes: async () => encodeFromF32(await source.f32(), dtype),
  };
}
