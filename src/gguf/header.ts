/**
 * Parses and validates a GGUF header (v2/v3, little-endian): magic, version, counts, metadata
 * key-value pairs, tensor infos; then the data-section layout (alignment, offsets, bounds,
 * overlaps). Reads through a windowed cursor, so a header costs its own size in memory, never
 * the file's. Layout facts from ggml's gguf.cpp (`gguf_init_from_reader`).
 */
import type { FileHandle } from 'node:fs/promises';
import { fillBuffer } from '../file-read.ts';
import { GgufError } from './errors.ts';
import { ITEM_BYTES, VALUE_TYPES, type GgufScalarType, type GgufValue } from './metadata.ts';
import { typeById, typeBytes, type GgmlTypeInfo } from './types.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const DEFAULT_ALIGNMENT = 32;
/** gguf.cpp GGML_MAX_DIMS. */
export const MAX_DIMS = 4;
/** gguf.cpp GGUF_MAX_STRING_LENGTH. */
export const MAX_STRING_BYTES = 1 << 30;

export interface GgufTensorInfo {
  name: string;
  /** ggml type name (`Q8_0`, `F16`, …), and its numeric id as stored. */
  type: string;
  typeId: number;
  /**
   * Dimensions in GGUF (ggml) order: `dims[0]` = ne0 is the innermost, contiguous one, the length
   * of a row. A PyTorch/safetensors weight of shape [out, in] is stored as dims [in, out].
   */
  dims: readonly number[];
  /** Row-major shape as safetensors/PyTorch write it: `dims` reversed ([out, in] for a Linear weight). */
  shape: readonly number[];
  elements: number;
  /** ne0: values per row; `rows` = elements / ne0 (1 for 0-D and 1-D tensors). */
  rowLength: number;
  rows: number;
  /** Stored bytes of one row (whole blocks) and of the tensor. */
  rowBytes: number;
  byteLength: number;
  /** Offset inside the data section, as stored, and the absolute position in the file. */
  offset: number;
  fileOffset: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file position where the data section starts (the header padded to `alignment`). */
  dataOffset: number;
}

const WINDOW = 1 << 20;

/** Sequential reads through a window over the file; running out of file is TRUNCATED. */
class Cursor {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private start = 0;
  pos = 0;

  constructor(private readonly handle: FileHandle, readonly size: number, private readonly path: string) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  async need(n: number, what: string, tensor?: string): Promise<void> {
    if (this.pos + n <= this.start + this.buf.byteLength) return;
    if (this.pos + n > this.size) {
      throw new GgufError('TRUNCATED', this.path, `file ends at byte ${this.size}, inside ${what} at byte ${this.pos} (needs ${n} bytes, ${this.size - this.pos} left)`, tensor);
    }
    const len = Math.min(Math.max(n, WINDOW), this.size - this.pos);
    const buf = new Uint8Array(len);
    await fillBuffer(this.handle, buf, this.pos, (at) => new GgufError('TRUNCATED', this.path, `unexpected end of file at byte ${at}, inside ${what}`, tensor));
    this.buf = buf;
    this.view = new DataView(buf.buffer);
    this.start = this.pos;
  }

  private at(n: number): number {
    const o = this.pos - this.start;
    this.pos += n;
    return o;
  }

  u8(): number { return this.view.getUint8(this.at(1)); }
  u32(): number { return this.view.getUint32(this.at(4), true); }
  u64(): bigint { return this.view.getBigUint64(this.at(8), true); }
  i64(): bigint { return this.view.getBigInt64(this.at(8), true); }
  bytes(n: number): Uint8Array { const o = this.at(n); return this.buf.subarray(o, o + n); }

  item(type: GgufScalarType): number | bigint | boolean {
    const d = this.view;
    switch (type) {
      case 'UINT8': return d.getUint8(this.at(1));
      case 'INT8': return d.getInt8(this.at(1));
      case 'UINT16': return d.getUint16(this.at(2), true);
      case 'INT16': return d.getInt16(this.at(2), true);
      case 'UINT32': return d.getUint32(this.at(4), true);
      case 'INT32': return d.getInt32(this.at(4), true);
      case 'FLOAT32': return d.getFloat32(this.at(4), true);
      case 'FLOAT64': return d.getFloat64(this.at(8), true);
      case 'UINT64': return d.getBigUint64(this.at(8), true);
      case 'INT64': return d.getBigInt64(this.at(8), true);
      case 'BOOL': return d.getUint8(this.at(1)) !== 0;
      default: throw new Error(`not a fixed-size type: ${type}`);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function readString(c: Cursor, path: string, what: string, tensor?: string): Promise<string> {
  await c.need(8, `the length of ${what}`, tensor);
  const n = c.u64();
  if (n > BigInt(MAX_STRING_BYTES)) throw new GgufError('BAD_COUNT', path, `${what} claims ${n} bytes, over the ${MAX_STRING_BYTES}-byte limit`, tensor);
  if (n > BigInt(c.remaining)) {
    throw new GgufError('TRUNCATED', path, `${what} claims ${n} bytes but only ${c.remaining} are left in the file (a truncated file, or a lying length)`, tensor);
  }
  await c.need(Number(n), what, tensor);
  try {
    return utf8.decode(c.bytes(Number(n)));
  } catch {
    throw new GgufError('BAD_STRING', path, `${what} is not valid UTF-8`, tensor);
  }
}

async function readValueType(c: Cursor, path: string, key: string, what: string): Promise<number> {
  await c.need(4, `the ${what} of key "${key}"`);
  const t = c.u32();
  if (t >= VALUE_TYPES.length) throw new GgufError('BAD_VALUE_TYPE', path, `key "${key}" has ${what} ${t}, not a GGUF value type (0–${VALUE_TYPES.length - 1})`);
  return t;
}

async function readValue(c: Cursor, path: string, key: string): Promise<GgufValue> {
  const type = VALUE_TYPES[await readValueType(c, path, key, 'value type')]!;
  if (type === 'STRING') return { type, value: await readString(c, path, `the value of key "${key}"`) };
  if (type !== 'ARRAY') {
    await c.need(ITEM_BYTES[type], `the value of key "${key}"`);
    return { type, value: c.item(type) } as GgufValue;
  }
  const itemType = VALUE_TYPES[await readValueType(c, path, key, 'array item type')]!;
  if (itemType === 'ARRAY') throw new GgufError('BAD_VALUE_TYPE', path, `key "${key}" is an array of arrays, which GGUF readers refuse`);
  await c.need(8, `the item count of key "${key}"`);
  const n = c.u64();
  const size = ITEM_BYTES[itemType];
  if (n * BigInt(size) > BigInt(c.remaining)) {
    throw new GgufError('BAD_COUNT', path, `key "${key}" claims ${n} ${itemType} items (at least ${n * BigInt(size)} bytes) but only ${c.remaining} bytes are left in the file`);
  }
  const count = Number(n);
  const value: unknown[] = new Array(count);
  if (itemType === 'STRING') {
    for (let i = 0; i < count; i++) value[i] = await readString(c, path, `item ${i} of key "${key}"`);
  } else {
    await c.need(count * size, `the items of key "${key}"`);
    for (let i = 0; i < count; i++) value[i] = c.item(itemType);
  }
  return { type, itemType, value } as GgufValue;
}

const pad = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Magic, version and the two counts. */
async function readPreamble(c: Cursor, path: string): Promise<{ version: number; nTensors: number; nKv: number }> {
  await c.need(4, 'the magic');
  const magic = c.u32();
  if (magic !== GGUF_MAGIC) {
    const text = [0, 8, 16, 24].map((s) => (magic >>> s) & 0xff);
    const printable = text.every((b) => b >= 0x20 && b < 0x7f) ? ` ("${String.fromCharCode(...text)}")` : '';
    const hint = text[0] === 0x3c ? '; it looks like an HTML page' : text[0] === 0x76 ? '; it may be a Git LFS pointer' : '';
    throw new GgufError('BAD_MAGIC', path, `not a GGUF file: starts with 0x${magic.toString(16).padStart(8, '0')}${printable}, expected "GGUF"${hint}`);
  }
  await c.need(4, 'the version');
  const version = c.u32();
  if (version === 1) throw new GgufError('BAD_VERSION', path, 'GGUF v1 (32-bit counts) is no longer supported; convert it with a current llama.cpp');
  if ((version & 0xffff) === 0 && version !== 0) throw new GgufError('BAD_VERSION', path, `version ${version} (0x${version.toString(16)}): a big-endian GGUF file, which is not supported`);
  if (version !== 2 && version !== 3) throw new GgufError('BAD_VERSION', path, `GGUF version ${version}; supported: 2 and 3`);
  await c.need(16, 'the tensor and key counts');
  const nTensors = c.i64();
  const nKv = c.i64();
  // Counts are not checked against the file size here: a file cut short would then read as a
  // lying count. Each key and tensor info consumes bytes, so a count that lies ends in TRUNCATED
  // at the first missing entry, after at most the file's size in reads.
  if (nTensors < 0n || nTensors > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError('BAD_COUNT', path, `header claims ${nTensors} tensors`);
  if (nKv < 0n || nKv > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError('BAD_COUNT', path, `header claims ${nKv} metadata keys`);
  return { version, nTensors: Number(nTensors), nKv: Number(nKv) };
}

/** The metadata keys and the alignment they set. */
async function readMetadata(c: Cursor, path: string, nKv: number): Promise<{ metadata: Map<string, GgufValue>; alignment: number }> {
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = await readString(c, path, `metadata key ${i} (of ${nKv})`);
    if (key === '') throw new GgufError('BAD_KEY', path, `metadata key ${i} is empty`);
    if (metadata.has(key)) throw new GgufError('DUPLICATE_KEY', path, `metadata key "${key}" appears twice`);
    metadata.set(key, await readValue(c, path, key));
  }
  let alignment = DEFAULT_ALIGNMENT;
  const a = metadata.get('general.alignment');
  if (a) {
    if (a.type !== 'UINT32') throw new GgufError('BAD_ALIGNMENT', path, `general.alignment must be a UINT32, is ${a.type}`);
    if (a.value === 0 || (a.value & (a.value - 1)) !== 0) throw new GgufError('BAD_ALIGNMENT', path, `general.alignment ${a.value} is not a power of 2`);
    alignment = a.value;
  }
  return { metadata, alignment };
}

interface RawTensorInfo {
  name: string;
  type: GgmlTypeInfo;
  dims: number[];
  offset: bigint;
}

/** One tensor info: name, dims (each checked), type, and offset in the data section. */
async function readTensorInfo(c: Cursor, path: string, i: number, nTensors: number, names: Set<string>): Promise<RawTensorInfo> {
  const name = await readString(c, path, `the name of tensor ${i} (of ${nTensors})`);
  if (names.has(name)) throw new GgufError('DUPLICATE_NAME', path, 'two tensors with the same name', name);
  names.add(name);
  await c.need(4, 'the dimension count', name);
  const nDims = c.u32();
  if (nDims > MAX_DIMS) throw new GgufError('BAD_DIMS', path, `${nDims} dimensions, more than the ${MAX_DIMS} GGUF allows`, name);
  await c.need(8 * nDims + 4 + 8, 'the tensor info', name);
  const dims: number[] = [];
  let elements = 1;
  for (let j = 0; j < nDims; j++) {
    const d = c.i64();
    if (d < 0n) throw new GgufError('BAD_DIMS', path, `dimension ${j} is ${d}, negative`, name);
    if (d > BigInt(Number.MAX_SAFE_INTEGER) || elements * Number(d) > Number.MAX_SAFE_INTEGER) {
      throw new GgufError('BAD_DIMS', path, `dimensions [${[...dims, d]}…] hold more elements than any file can`, name);
    }
    dims.push(Number(d));
    elements *= Number(d);
  }
  const typeId = c.u32();
  const type = typeById(typeId);
  if (!type) throw new GgufError('BAD_TYPE', path, `ggml type id ${typeId} is not a known tensor type`, name);
  const ne0 = dims[0] ?? 1;
  if (ne0 % type.blockSize !== 0) {
    throw new GgufError('BAD_DIMS', path, `rows of ${ne0} elements are not whole ${type.name} blocks of ${type.blockSize}`, name);
  }
  return { name, type, dims, offset: c.u64() };
}

/** A tensor placed in the data section: aligned, inside it. */
function placed(r: RawTensorInfo, path: string, alignment: number, dataOffset: number, dataBytes: number): GgufTensorInfo {
  const elements = r.dims.reduce((p, d) => p * d, 1);
  const byteLength = typeBytes(r.type, elements);
  const rowLength = r.dims[0] ?? 1;
  if (r.offset % BigInt(alignment) !== 0n) {
    throw new GgufError('BAD_ALIGNMENT', path, `data offset ${r.offset} is not a multiple of the alignment ${alignment}`, r.name);
  }
  if (r.offset + BigInt(byteLength) > BigInt(dataBytes)) {
    throw new GgufError('OUT_OF_BOUNDS', path, `data [${r.offset}, ${r.offset + BigInt(byteLength)}) of the data section runs past its end (${dataBytes} bytes; truncated file?)`, r.name);
  }
  const offset = Number(r.offset);
  return {
    name: r.name, type: r.type.name, typeId: r.type.id, dims: r.dims, shape: [...r.dims].reverse(), elements,
    rowLength, rows: rowLength === 0 ? 0 : elements / rowLength, rowBytes: typeBytes(r.type, rowLength), byteLength,
    offset, fileOffset: dataOffset + offset,
  };
}

function refuseOverlaps(tensors: readonly GgufTensorInfo[], path: string): void {
  const byOffset = tensors.filter((t) => t.byteLength > 0).sort((x, y) => x.offset - y.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const t = byOffset[i]!;
    if (t.offset < prev.offset + prev.byteLength) {
      throw new GgufError('OVERLAP', path, `data [${t.offset}, ${t.offset + t.byteLength}) overlaps tensor "${prev.name}" at [${prev.offset}, ${prev.offset + prev.byteLength})`, t.name);
    }
  }
}

export async function parseHeader(handle: FileHandle, size: number, path: string): Promise<GgufHeader> {
  const c = new Cursor(handle, size, path);
  const { version, nTensors, nKv } = await readPreamble(c, path);
  const { metadata, alignment } = await readMetadata(c, path, nKv);
  const names = new Set<string>();
  const raw: RawTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) raw.push(await readTensorInfo(c, path, i, nTensors, names));
  const dataOffset = nTensors > 0 ? pad(c.pos, alignment) : c.pos;
  if (dataOffset > size) throw new GgufError('TRUNCATED', path, `file ends at byte ${size}, before the data section at byte ${dataOffset}`);
  const tensors = raw.map((r) => placed(r, path, alignment, dataOffset, size - dataOffset));
  refuseOverlaps(tensors, path);
  return { version, metadata, tensors, alignment, dataOffset };
}
