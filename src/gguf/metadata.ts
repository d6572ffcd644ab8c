/**
 * GGUF metadata values: the value-type enum (gguf.h `gguf_type`), typed values, and their
 * little-endian encoding. 64-bit integers are bigints so nothing is rounded; every other number
 * is a JS number.
 */

export const VALUE_TYPES = ['UINT8', 'INT8', 'UINT16', 'INT16', 'UINT32', 'INT32', 'FLOAT32', 'BOOL', 'STRING', 'ARRAY', 'UINT64', 'INT64', 'FLOAT64'] as const;
export type GgufValueType = (typeof VALUE_TYPES)[number];
export type GgufScalarType = Exclude<GgufValueType, 'ARRAY'>;
export type GgufNumberType = 'UINT8' | 'INT8' | 'UINT16' | 'INT16' | 'UINT32' | 'INT32' | 'FLOAT32' | 'FLOAT64';
export type GgufBigIntType = 'UINT64' | 'INT64';

export type GgufScalar =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: 'BOOL'; value: boolean }
  | { type: 'STRING'; value: string };

export type GgufArray =
  | { type: 'ARRAY'; itemType: GgufNumberType; value: number[] }
  | { type: 'ARRAY'; itemType: GgufBigIntType; value: bigint[] }
  | { type: 'ARRAY'; itemType: 'BOOL'; value: boolean[] }
  | { type: 'ARRAY'; itemType: 'STRING'; value: string[] };

export type GgufValue = GgufScalar | GgufArray;

/** Bytes of one item of a fixed-size type (strings: the 8-byte length alone). */
export const ITEM_BYTES: Readonly<Record<GgufScalarType, number>> = {
  UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, UINT32: 4, INT32: 4, FLOAT32: 4, BOOL: 1, STRING: 8, UINT64: 8, INT64: 8, FLOAT64: 8,
};

/** Constructors for typed values: `gv.u32(32)`, `gv.str('flux')`, `gv.array('INT32', [3072, 64])`. */
export const gv = {
  u8: (value: number): GgufValue => ({ type: 'UINT8', value }),
  i8: (value: number): GgufValue => ({ type: 'INT8', value }),
  u16: (value: number): GgufValue => ({ type: 'UINT16', value }),
  i16: (value: number): GgufValue => ({ type: 'INT16', value }),
  u32: (value: number): GgufValue => ({ type: 'UINT32', value }),
  i32: (value: number): GgufValue => ({ type: 'INT32', value }),
  f32: (value: number): GgufValue => ({ type: 'FLOAT32', value }),
  f64: (value: number): GgufValue => ({ type: 'FLOAT64', value }),
  u64: (value: bigint): GgufValue => ({ type: 'UINT64', value }),
  i64: (value: bigint): GgufValue => ({ type: 'INT64', value }),
  bool: (value: boolean): GgufValue => ({ type: 'BOOL', value }),
  str: (value: string): GgufValue => ({ type: 'STRING', value }),
  array: <T extends GgufScalarType>(itemType: T, value: GgufArray['value']): GgufValue => ({ type: 'ARRAY', itemType, value }) as GgufValue,
};

const RANGES: Partial<Record<GgufScalarType, [number, number]>> = {
  UINT8: [0, 0xff], INT8: [-0x80, 0x7f], UINT16: [0, 0xffff], INT16: [-0x8000, 0x7fff], UINT32: [0, 0xffffffff], INT32: [-0x80000000, 0x7fffffff],
};

/** Why `item` cannot be stored as `type`, or undefined when it can. */
export function checkItem(type: GgufScalarType, item: unknown): string | undefined {
  const range = RANGES[type];
  if (range) return Number.isInteger(item) && (item as number) >= range[0] && (item as number) <= range[1] ? undefined : `${String(item)} is not a ${type}`;
  switch (type) {
    case 'FLOAT32':
    case 'FLOAT64':
      return typeof item === 'number' ? undefined : `${String(item)} is not a number`;
    case 'UINT64':
      return typeof item === 'bigint' && item >= 0n && item < 2n ** 64n ? undefined : `${String(item)} is not a UINT64 bigint`;
    case 'INT64':
      return typeof item === 'bigint' && item >= -(2n ** 63n) && item < 2n ** 63n ? undefined : `${String(item)} is not an INT64 bigint`;
    case 'BOOL':
      return typeof item === 'boolean' ? undefined : `${String(item)} is not a boolean`;
    case 'STRING':
      return typeof item === 'string' ? undefined : `${String(item)} is not a string`;
  }
  return `unknown type ${String(type)}`;
}

/** Growable little-endian byte builder. */
export class ByteBuilder {
  private buf = new Uint8Array(4096);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private room(n: number): number {
    if (this.length + n > this.buf.byteLength) {
      const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  // The offset is taken before the view is read: room() may grow the buffer and replace the view,
  // and `this.view.setX(this.room(n), …)` would evaluate the old view first.
  u8(v: number): void { const at = this.room(1); this.view.setUint8(at, v); }
  u32(v: number): void { const at = this.room(4); this.view.setUint32(at, v, true); }
  u64(v: bigint | number): void { const at = this.room(8); this.view.setBigUint64(at, BigInt(v), true); }
  bytes(b: Uint8Array): void { const at = this.room(b.byteLength); this.buf.set(b, at); }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.byteLength);
    this.bytes(b);
  }
  zeros(n: number): void { const at = this.room(n); this.buf.fill(0, at, this.length); }

  item(type: GgufScalarType, v: number | bigint | boolean | string): void {
    switch (type) {
      case 'UINT8': { const at = this.room(1); this.view.setUint8(at, v as number); break; }
      case 'INT8': { const at = this.room(1); this.view.setInt8(at, v as number); break; }
      case 'UINT16': { const at = this.room(2); this.view.setUint16(at, v as number, true); break; }
      case 'INT16': { const at = this.room(2); this.view.setInt16(at, v as number, true); break; }
      case 'UINT32': { const at = this.room(4); this.view.setUint32(at, v as number, true); break; }
      case 'INT32': { const at = this.room(4); this.view.setInt32(at, v as number, true); break; }
      case 'FLOAT32': { const at = this.room(4); this.view.setFloat32(at, v as number, true); break; }
      case 'FLOAT64': { const at = this.room(8); this.view.setFloat64(at, v as number, true); break; }
      case 'UINT64': { const at = this.room(8); this.view.setBigUint64(at, v as bigint, true); break; }
      case 'INT64': { const at = this.room(8); this.view.setBigInt64(at, v as bigint, true); break; }
      case 'BOOL': { const at = this.room(1); this.view.setUint8(at, v ? 1 : 0); break; }
      case 'STRING': this.string(v as string); break;
    }
  }

  /** A key-value pair as GGUF stores it: key string, value type, then the value. */
  kv(key: string, value: GgufValue): void {
    this.string(key);
    this.u32(VALUE_TYPES.indexOf(value.type));
    if (value.type === 'ARRAY') {
      this.u32(VALUE_TYPES.indexOf(value.itemType));
      this.u64(value.value.length);
      for (const v of value.value) this.item(value.itemType, v);
    } else {
      this.item(value.type, value.value);
    }
  }

  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}
