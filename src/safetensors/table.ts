/**
 * The tensors of a validated header in a compact, columnar form: one names array and a few typed
 * arrays (dtype index, offsets, shape dims), about 30 bytes per tensor beside its name, where an
 * object per tensor costs several hundred (a header of a million tensors is common in hostile
 * files and not unheard of in real ones). `TensorInfo` objects are made on demand.
 */
import { DTYPE_BITS } from '../tensor/dtype.ts';
import type { TensorInfo } from './header.ts';

/** Every dtype the format knows, by index (the `dtypes` column holds these indices). */
export const DTYPE_NAMES: readonly string[] = Object.keys(DTYPE_BITS);
const DTYPE_INDEX = new Map(DTYPE_NAMES.map((d, i) => [d, i]));

export function dtypeIndex(dtype: string): number | undefined {
  return DTYPE_INDEX.get(dtype);
}

/** The columns as plain data. */
export interface TableData {
  names: string[];
  dtypes: Uint8Array;
  begins: Float64Array;
  ends: Float64Array;
  /** Tensor i's dims are `dims[shapeStarts[i]] … dims[shapeStarts[i + 1] - 1]` (length count + 1). */
  shapeStarts: Uint32Array;
  dims: Float64Array;
}

export class TensorTable {
  readonly names: readonly string[];
  readonly dtypes: Uint8Array;
  readonly begins: Float64Array;
  readonly ends: Float64Array;
  readonly shapeStarts: Uint32Array;
  readonly dims: Float64Array;
  private index: Map<string, number> | undefined;

  constructor(data: TableData) {
    this.names = data.names;
    this.dtypes = data.dtypes;
    this.begins = data.begins;
    this.ends = data.ends;
    this.shapeStarts = data.shapeStarts;
    this.dims = data.dims;
    if (this.dtypes.length !== this.names.length || this.begins.length !== this.names.length || this.ends.length !== this.names.length || this.shapeStarts.length !== this.names.length + 1) {
      throw new RangeError('tensor table columns differ in length');
    }
  }

  /** From TensorInfo objects (already validated), in the order given. */
  static fromInfos(tensors: readonly TensorInfo[]): TensorTable {
    const n = tensors.length;
    const shapeStarts = new Uint32Array(n + 1);
    let rankSum = 0;
    for (let i = 0; i < n; i++) {
      shapeStarts[i] = rankSum;
      rankSum += tensors[i]!.shape.length;
    }
    shapeStarts[n] = rankSum;
    const dims = new Float64Array(rankSum);
    const dtypes = new Uint8Array(n);
    const begins = new Float64Array(n);
    const ends = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t = tensors[i]!;
      const d = DTYPE_INDEX.get(t.dtype);
      if (d === undefined) throw new RangeError(`unknown dtype "${t.dtype}" for tensor "${t.name}"`);
      dtypes[i] = d;
      begins[i] = t.begin;
      ends[i] = t.end;
      dims.set(t.shape, shapeStarts[i]!);
    }
    return new TensorTable({ names: tensors.map((t) => t.name), dtypes, begins, ends, shapeStarts, dims });
  }

  get length(): number {
    return this.names.length;
  }

  name(i: number): string {
    return this.names[i]!;
  }

  dtype(i: number): string {
    return DTYPE_NAMES[this.dtypes[i]!]!;
  }

  rank(i: number): number {
    return this.shapeStarts[i + 1]! - this.shapeStarts[i]!;
  }

  shape(i: number): number[] {
    return Array.from(this.dims.subarray(this.shapeStarts[i]!, this.shapeStarts[i + 1]!));
  }

  /** Element count, multiplied left to right as `shape.reduce((a, b) => a * b, 1)` does. */
  numel(i: number): number {
    let n = 1;
    for (let k = this.shapeStarts[i]!, end = this.shapeStarts[i + 1]!; k < end; k++) n *= this.dims[k]!;
    return n;
  }

  begin(i: number): number {
    return this.begins[i]!;
  }

  end(i: number): number {
    return this.ends[i]!;
  }

  bytes(i: number): number {
    return this.ends[i]! - this.begins[i]!;
  }

  /** A fresh TensorInfo for tensor i. */
  info(i: number): TensorInfo {
    return { name: this.names[i]!, dtype: this.dtype(i), shape: this.shape(i), begin: this.begins[i]!, end: this.ends[i]! };
  }

  toInfos(): TensorInfo[] {
    const out = new Array<TensorInfo>(this.length);
    for (let i = 0; i < out.length; i++) out[i] = this.info(i);
    return out;
  }

  /**
   * `{ name, shape }` per tensor for key analysis, with one shared (frozen) array per distinct
   * shape: a million tensors of a few shapes cost a million small objects, not two million.
   */
  keys(): { name: string; shape: readonly number[] }[] {
    const shapes = new Map<string, readonly number[]>();
    const out = new Array<{ name: string; shape: readonly number[] }>(this.length);
    for (let i = 0; i < out.length; i++) {
      const dims = this.dims.subarray(this.shapeStarts[i]!, this.shapeStarts[i + 1]!);
      const key = dims.join(',');
      let shape = shapes.get(key);
      if (!shape) shapes.set(key, (shape = Object.freeze(Array.from(dims))));
      out[i] = { name: this.names[i]!, shape };
    }
    return out;
  }

  /** Index of the tensor of this name, -1 when none (the name index is built on first use). */
  indexOf(name: string): number {
    if (!this.index) {
      this.index = new Map();
      for (let i = 0; i < this.names.length; i++) this.index.set(this.names[i]!, i);
    }
    return this.index.get(name) ?? -1;
  }
}
