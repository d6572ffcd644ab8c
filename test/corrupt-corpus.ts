/**
 * Malformed safetensors inputs, each built byte by byte (not with our writer, whose output they
 * must not depend on) and each paired with the one error code the reader must give for it.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SafetensorsErrorCode } from '../src/safetensors/errors.ts';

export interface CorruptCase {
  /** Also the file name (`<id>.safetensors`). */
  id: string;
  what: string;
  code: SafetensorsErrorCode;
  /** The tensor the error must name, where one is to blame. */
  tensor?: string;
  /** Creates the input in `dir` and returns its path. */
  make(dir: string): Promise<string>;
}

/** 8-byte little-endian header length, then the header bytes, then the data. */
function file(header: string | Uint8Array, data: Uint8Array | number = 0, claimedLength?: bigint): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(claimedLength ?? BigInt(h.length));
  const body = typeof data === 'number' ? Buffer.alloc(data, 0x11) : Buffer.from(data);
  return Buffer.concat([len, h, body]);
}

const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const json = (o: unknown) => JSON.stringify(o);
/** Two F32 tensors, `a` [2] and `b` [3]: 20 bytes of data. */
const TWO = json({ a: entry('F32', [2], [0, 8]), b: entry('F32', [3], [8, 20]) });

function bytesCase(id: string, what: string, code: SafetensorsErrorCode, bytes: () => Buffer, tensor?: string): CorruptCase {
  return {
    id, what, code, tensor,
    async make(dir) {
      const path = join(dir, `${id}.safetensors`);
      await writeFile(path, bytes());
      return path;
    },
  };
}

export const CORRUPT_CASES: readonly CorruptCase[] = [
  bytesCase('truncated-data', 'data cut inside the second tensor', 'FILE_TOO_SHORT', () => file(TWO, 13), 'b'),
  bytesCase('truncated-length', 'file shorter than the 8-byte header length', 'HEADER_LENGTH_TRUNCATED', () => Buffer.from([0x40, 0, 0, 0, 0])),
  bytesCase('truncated-header', 'download stopped inside the JSON header', 'HEADER_PAST_EOF', () => file(TWO).subarray(0, 40)),
  bytesCase('header-length-past-eof', 'header length claims 4096 bytes in a 60-byte file', 'HEADER_PAST_EOF', () => file('{}', 50, 4096n)),
  bytesCase('header-too-large', 'header length claims 200 MB', 'HEADER_TOO_LARGE', () => file('{}', 0, 200_000_000n)),
  bytesCase('html-page', 'an HTML error page saved under the model name', 'HEADER_TOO_LARGE', () => Buffer.from('<!DOCTYPE html><html><body>404</body></html>\n')),
  bytesCase('git-lfs-pointer', 'a Git LFS pointer instead of the weights', 'HEADER_TOO_LARGE', () =>
    Buffer.from('version https://git-lfs.github.com/spec/v1\noid sha256:0000\nsize 23802932552\n')),
  bytesCase('overlapping-offsets', 'b starts inside a', 'OFFSET_OVERLAP', () => file(json({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }), 12), 'b'),
  bytesCase('gapped-offsets', 'four unindexed bytes between a and b', 'OFFSET_GAP', () => file(json({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }), 12), 'b'),
  bytesCase('wrong-size', 'shape [3] of F32 with 8 bytes of data', 'SIZE_MISMATCH', () => file(json({ w: entry('F32', [3], [0, 8]) }), 8), 'w'),
  bytesCase('unknown-dtype', 'dtype "F12"', 'UNKNOWN_DTYPE', () => file(json({ w: entry('F12', [2], [0, 4]) }), 4), 'w'),
  bytesCase('duplicate-names', 'the same tensor name twice (JSON.parse would keep the last)', 'DUPLICATE_NAME', () =>
    file(`{"w":${json(entry('U8', [1], [0, 1]))},"w":${json(entry('U8', [1], [1, 2]))}}`, 2), 'w'),
  bytesCase('duplicate-names-escaped', 'the same name spelled once with a JSON escape', 'DUPLICATE_NAME', () =>
    file(`{"ab":${json(entry('U8', [1], [0, 1]))},"\\u0061b":${json(entry('U8', [1], [1, 2]))}}`, 2), 'ab'),
  bytesCase('metadata-not-string', '__metadata__ value is a number', 'BAD_METADATA', () => file(json({ __metadata__: { ss_network_dim: 16 }, w: entry('U8', [1], [0, 1]) }), 1)),
  bytesCase('metadata-not-object', '__metadata__ is a string', 'BAD_METADATA', () => file(json({ __metadata__: 'kohya', w: entry('U8', [1], [0, 1]) }), 1)),
  bytesCase('header-not-json', 'header is broken JSON', 'HEADER_NOT_JSON', () => file('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', 4)),
  bytesCase('header-trailing-garbage', 'valid JSON object followed by garbage inside the header', 'HEADER_NOT_JSON', () => file(`${json({ w: entry('U8', [1], [0, 1]) })} xyz`, 1)),
  bytesCase('header-not-utf8', 'header bytes are Latin-1, not UTF-8', 'HEADER_NOT_UTF8', () =>
    file(Buffer.concat([Buffer.from('{"gr'), Buffer.from([0xfc]), Buffer.from(`n":${json(entry('U8', [1], [0, 1]))}}`)]), 1)),
  bytesCase('header-not-object', 'header is a JSON array', 'HEADER_NOT_OBJECT', () => file('[{"dtype":"F32"}]', 0)),
  bytesCase('header-empty', 'header length 0', 'HEADER_NOT_OBJECT', () => file('', 4)),
  bytesCase('bad-shape', 'negative dimension', 'BAD_SHAPE', () => file(json({ w: entry('F32', [2, -1], [0, 8]) }), 8), 'w'),
  bytesCase('shape-overflow', 'shape with 2^80 elements', 'BAD_SHAPE', () => file(json({ w: entry('F32', [2 ** 40, 2 ** 40], [0, 4]) }), 4), 'w'),
  bytesCase('bad-offsets', 'data_offsets end before begin', 'BAD_OFFSETS', () => file(json({ w: entry('U8', [0], [4, 0]) }), 4), 'w'),
  bytesCase('fractional-offsets', 'data_offsets not integers', 'BAD_OFFSETS', () => file(json({ w: entry('U8', [2], [0, 2.5]) }), 2), 'w'),
  bytesCase('bad-entry', 'tensor entry is a list', 'BAD_ENTRY', () => file(json({ w: [0, 4] }), 4), 'w'),
  bytesCase('misaligned', 'three F4 values: 12 bits', 'MISALIGNED', () => file(json({ w: entry('F4', [3], [0, 2]) }), 2), 'w'),
  bytesCase('trailing-bytes', 'three unindexed bytes after the data', 'FILE_TOO_LONG', () => file(TWO, 23)),
  bytesCase('empty-file', 'zero bytes', 'EMPTY_FILE', () => Buffer.alloc(0)),
  {
    id: 'directory', what: 'a directory named like a model', code: 'NOT_A_FILE',
    async make(dir) {
      const path = join(dir, 'directory.safetensors');
      await mkdir(path);
      return path;
    },
  },
  {
    id: 'fifo', what: 'a named pipe (opening it to read would block forever)', code: 'NOT_A_FILE',
    async make(dir) {
      const path = join(dir, 'fifo.safetensors');
      execFileSync('mkfifo', [path]);
      return path;
    },
  },
  {
    id: 'missing', what: 'no such file', code: 'NOT_FOUND',
    async make(dir) {
      return join(dir, 'missing.safetensors');
    },
  },
  {
    id: 'no-permission', what: 'a valid file without read permission', code: 'PERMISSION',
    async make(dir) {
      const path = join(dir, 'no-permission.safetensors');
      await writeFile(path, file(TWO, 20));
      await chmod(path, 0o000);
      return path;
    },
  },
];

/** Writes every case into `dir`; returns the path of each by id. */
export async function generateCorpus(dir: string): Promise<Map<string, string>> {
  const paths = new Map<string, string>();
  for (const c of CORRUPT_CASES) paths.set(c.id, await c.make(dir));
  return paths;
}
