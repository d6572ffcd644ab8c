/**
 * Malformed GGUF inputs, built byte by byte (not with our writer) and each paired with the one
 * error code the reader must give, and the tensor it must name where one is to blame.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GgufErrorCode } from '../src/gguf/errors.ts';

export interface GgufCorruptCase {
  id: string;
  what: string;
  code: GgufErrorCode;
  tensor?: string;
  make(dir: string): Promise<string>;
}

/** Little-endian GGUF pieces; `marks` records each structure boundary and what a cut there is. */
export class G {
  parts: Buffer[] = [];
  marks: { at: number; code: GgufErrorCode }[] = [];
  get length(): number { return this.parts.reduce((n, p) => n + p.length, 0); }
  mark(code: GgufErrorCode = 'TRUNCATED'): this {
    // the first mark at an offset wins: it is the structure that ends there
    if (!this.marks.some((m) => m.at === this.length)) this.marks.push({ at: this.length, code });
    return this;
  }
  raw(b: Buffer | number[]): this { this.parts.push(Buffer.from(b)); return this; }
  u32(v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return this.raw(b); }
  u64(v: bigint | number): this { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v))); return this.raw(b); }
  str(s: string | Buffer, claimed?: bigint): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    return this.mark().u64(claimed ?? BigInt(b.length)).mark().raw(b);
  }
  header(version: number, nTensors: bigint | number, nKv: bigint | number): this {
    return this.mark().raw(Buffer.from('GGUF')).mark().u32(version).mark().u64(nTensors).mark().u64(nKv).mark();
  }
  kvU32(key: string, v: number): this { return this.str(key).mark().u32(4).mark().u32(v); }
  kvStr(key: string, v: string): this { return this.str(key).mark().u32(8).str(v); }
  kvArrU8(key: string, items: number[], claimed?: bigint): this {
    return this.str(key).mark().u32(9).mark().u32(0).mark().u64(claimed ?? BigInt(items.length)).mark('BAD_COUNT').raw(items);
  }
  tensor(name: string, dims: (number | bigint)[], type: number, offset: bigint | number): this {
    this.str(name).mark().u32(dims.length);
    for (const d of dims) this.mark().u64(d);
    return this.mark().u32(type).mark().u64(offset);
  }
  /** Pads to `a` with zeros (the data section starts here). */
  align(a = 32): this { this.mark(); return this.raw(Buffer.alloc((a - (this.length % a)) % a)); }
  data(n: number, fill = 0x3c): this { return this.raw(Buffer.alloc(n, fill)); }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}

/** A valid file: 3 keys (u32, string, u8 array), tensors a [F32 8] and b [Q8_0 2×32]. */
export function validFile(): G {
  return new G()
    .header(3, 2, 3)
    .kvU32('general.quantization_version', 2).kvStr('general.architecture', 'flux').kvArrU8('x.bytes', [1, 2, 3])
    .tensor('a', [8], 0, 0).tensor('b', [32, 2], 8, 32)
    .align().data(32).data(68).data(28, 0);
}

const bytesCase = (id: string, what: string, code: GgufErrorCode, bytes: () => Buffer, tensor?: string): GgufCorruptCase => ({
  id, what, code, tensor,
  async make(dir) {
    const path = join(dir, `${id}.gguf`);
    await writeFile(path, bytes());
    return path;
  },
});
const body = (g: G) => g.bytes();
const two = (a: { dims?: (number | bigint)[]; type?: number; offset?: number }, b: { name?: string; dims?: (number | bigint)[]; type?: number; offset?: number }, data = 128) =>
  new G().header(3, 2, 0).tensor('a', a.dims ?? [8], a.type ?? 0, a.offset ?? 0).tensor(b.name ?? 'b', b.dims ?? [8], b.type ?? 0, b.offset ?? 32).align().data(data).bytes();

export const GGUF_CORRUPT_CASES: readonly GgufCorruptCase[] = [
  bytesCase('empty', 'zero bytes', 'TRUNCATED', () => Buffer.alloc(0)),
  bytesCase('bad-magic', 'GGUX instead of GGUF', 'BAD_MAGIC', () => Buffer.concat([Buffer.from('GGUX'), validFile().bytes().subarray(4)])),
  bytesCase('safetensors', 'a safetensors file named .gguf', 'BAD_MAGIC', () => Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')])),
  bytesCase('html-page', 'an HTML error page saved as the model', 'BAD_MAGIC', () => Buffer.from('<!DOCTYPE html><html>404</html>')),
  bytesCase('git-lfs-pointer', 'a Git LFS pointer', 'BAD_MAGIC', () => Buffer.from('version https://git-lfs.github.com/spec/v1\n')),
  bytesCase('version-1', 'GGUF v1 (32-bit counts)', 'BAD_VERSION', () => body(new G().header(1, 0, 0))),
  bytesCase('version-0', 'version 0', 'BAD_VERSION', () => body(new G().header(0, 0, 0))),
  bytesCase('version-4', 'a version from the future', 'BAD_VERSION', () => body(new G().header(4, 0, 0))),
  bytesCase('big-endian', 'a big-endian v3 file', 'BAD_VERSION', () => body(new G().header(0x03000000, 0, 0))),
  bytesCase('lying-tensor-count', '2^40 tensors in a tiny file: ends at the first missing info', 'TRUNCATED', () => body(new G().header(3, 2n ** 40n, 0))),
  bytesCase('lying-kv-count', 'one key where 1000 are claimed', 'TRUNCATED', () => body(new G().header(3, 0, 1000).kvU32('k', 1))),
  bytesCase('negative-kv-count', 'n_kv read as int64 is negative', 'BAD_COUNT', () => body(new G().header(3, 0, -1n))),
  bytesCase('lying-array-count', 'array claims 2^50 items', 'BAD_COUNT', () => body(new G().header(3, 0, 1).kvArrU8('k', [1], 2n ** 50n))),
  bytesCase('lying-string-length', 'key length 2^40', 'BAD_COUNT', () => body(new G().header(3, 0, 1).str('k', 2n ** 40n).u32(4).u32(0))),
  bytesCase('string-past-eof', 'key length 1000 in a 64-byte file', 'TRUNCATED', () => body(new G().header(3, 0, 1).str('abc', 1000n).data(29))),
  bytesCase('bad-value-type', 'value type 13', 'BAD_VALUE_TYPE', () => body(new G().header(3, 0, 1).str('k').u32(13).u32(0))),
  bytesCase('array-of-arrays', 'array item type ARRAY', 'BAD_VALUE_TYPE', () => body(new G().header(3, 0, 1).str('k').u32(9).u32(9).u64(0))),
  bytesCase('empty-key', 'a key of length 0', 'BAD_KEY', () => body(new G().header(3, 0, 1).str('').u32(4).u32(0))),
  bytesCase('duplicate-key', 'the same key twice', 'DUPLICATE_KEY', () => body(new G().header(3, 0, 2).kvU32('k', 1).kvU32('k', 2))),
  bytesCase('key-not-utf8', 'Latin-1 key bytes', 'BAD_STRING', () => body(new G().header(3, 0, 1).str(Buffer.from([0x67, 0xfc, 0x6e])).u32(4).u32(0))),
  bytesCase('alignment-not-u32', 'general.alignment stored as a string', 'BAD_ALIGNMENT', () => body(new G().header(3, 0, 1).kvStr('general.alignment', '32'))),
  bytesCase('alignment-not-pow2', 'general.alignment 48', 'BAD_ALIGNMENT', () => body(new G().header(3, 0, 1).kvU32('general.alignment', 48))),
  bytesCase('alignment-zero', 'general.alignment 0', 'BAD_ALIGNMENT', () => body(new G().header(3, 0, 1).kvU32('general.alignment', 0))),
  bytesCase('duplicate-tensor', 'two tensors named b', 'DUPLICATE_NAME', () => two({}, { name: 'a' }), 'a'),
  bytesCase('too-many-dims', 'five dimensions', 'BAD_DIMS', () => two({}, { dims: [1, 1, 1, 1, 8] }), 'b'),
  bytesCase('negative-dim', 'dimension −2', 'BAD_DIMS', () => two({}, { dims: [8, -2n] }), 'b'),
  bytesCase('dims-overflow', '2^40 × 2^40 elements', 'BAD_DIMS', () => two({}, { dims: [2n ** 40n, 2n ** 40n] }), 'b'),
  bytesCase('partial-block', 'Q8_0 rows of 33', 'BAD_DIMS', () => two({}, { dims: [33], type: 8 }), 'b'),
  bytesCase('unknown-type', 'ggml type id 99', 'BAD_TYPE', () => two({}, { type: 99 }), 'b'),
  bytesCase('removed-type', 'type id 4 (Q4_2, removed from ggml)', 'BAD_TYPE', () => two({}, { type: 4 }), 'b'),
  bytesCase('misaligned-offset', 'b at offset 36', 'BAD_ALIGNMENT', () => two({}, { offset: 36 }), 'b'),
  bytesCase('overlap', 'b starts inside a', 'OVERLAP', () => two({ dims: [16] }, { offset: 32 }), 'b'),
  bytesCase('overlap-reordered', 'a listed after b, both at 0', 'OVERLAP', () => two({ offset: 0 }, { offset: 0 }), 'b'),
  bytesCase('offset-past-end', 'b at offset 2^40', 'OUT_OF_BOUNDS', () => two({}, { offset: 2 ** 40 }), 'b'),
  bytesCase('data-truncated', 'the data section cut inside b', 'OUT_OF_BOUNDS', () => two({}, { dims: [64] }, 80), 'b'),
  bytesCase('header-past-eof', 'cut inside the padding before the data', 'TRUNCATED', () => two({}, {}).subarray(0, 90)),
  {
    id: 'directory', what: 'a directory named like a model', code: 'NOT_A_FILE',
    async make(dir) { const p = join(dir, 'directory.gguf'); await mkdir(p); return p; },
  },
  {
    id: 'fifo', what: 'a named pipe (opening it would block)', code: 'NOT_A_FILE',
    async make(dir) { const p = join(dir, 'fifo.gguf'); execFileSync('mkfifo', [p]); return p; },
  },
  { id: 'missing', what: 'no such file', code: 'NOT_FOUND', async make(dir) { return join(dir, 'missing.gguf'); } },
];
