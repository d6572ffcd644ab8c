/**
 * GGUF reader and writer: every metadata value type round trips; a file written by llama.cpp's
 * gguf-py is read correctly and rewritten byte for byte; quantize → write → read → dequantize
 * equals quantize → dequantize; row ranges equal whole reads; writes are staged and atomic.
 */
import { copyFile, readdir, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { dequantize, quantize } from '../src/gguf/codec.ts';
import { GgufError } from '../src/gguf/errors.ts';
import { gv, type GgufValue } from '../src/gguf/metadata.ts';
import { GgufFile, withGguf } from '../src/gguf/reader.ts';
import { SUPPORTED_TYPES, typeByName } from '../src/gguf/types.ts';
import { GgufWriter, writeGguf } from '../src/gguf/writer.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('gguf-file-');
const PYREF = new URL('fixtures/gguf/pyref.gguf', import.meta.url).pathname;

const EVERY_TYPE: Record<string, GgufValue> = {
  'general.architecture': gv.str('flux'),
  'v.u8': gv.u8(255), 'v.i8': gv.i8(-128), 'v.u16': gv.u16(65535), 'v.i16': gv.i16(-32768),
  'v.u32': gv.u32(0xffffffff), 'v.i32': gv.i32(-0x80000000), 'v.f32': gv.f32(Math.fround(0.1)), 'v.f64': gv.f64(0.1),
  'v.u64': gv.u64(2n ** 64n - 1n), 'v.i64': gv.i64(-(2n ** 63n)), 'v.bool': gv.bool(false), 'v.str': gv.str('ünïcode ✓'),
  'v.empty': gv.str(''),
  'a.u8': gv.array('UINT8', [0, 255]), 'a.i8': gv.array('INT8', [-1]), 'a.u16': gv.array('UINT16', [1, 2]), 'a.i16': gv.array('INT16', [-3]),
  'a.u32': gv.array('UINT32', [7]), 'a.i32': gv.array('INT32', [3072, 64]), 'a.f32': gv.array('FLOAT32', [1.5, -0]), 'a.f64': gv.array('FLOAT64', [Math.PI]),
  'a.u64': gv.array('UINT64', [1n, 2n ** 63n]), 'a.i64': gv.array('INT64', [-1n]), 'a.bool': gv.array('BOOL', [true, false]),
  'a.str': gv.array('STRING', ['x', '', 'yz']), 'a.none': gv.array('UINT32', []),
};

function weights(n: number, seed = 1): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31 - 0.5) * 0.1;
  });
}

describe('GGUF metadata and layout', () => {
  it('round trips a value of every GGUF type, in order, with v3 header facts', async () => {
    const path = tmp.path('meta.gguf');
    await writeGguf(path, [{ name: 'w', type: 'F32', shape: [2, 3], data: new Float32Array(6) }], { metadata: EVERY_TYPE });
    await withGguf(path, async (f) => {
      expect(f.version).toBe(3);
      expect(f.alignment).toBe(32);
      expect(f.dataOffset % 32).toBe(0);
      expect(f.architecture).toBe('flux');
      expect([...f.metadata.keys()]).toEqual(Object.keys(EVERY_TYPE));
      expect(Object.fromEntries(f.metadata)).toEqual(EVERY_TYPE);
    });
  });

  it('writes general.alignment when not 32 and aligns every tensor to it', async () => {
    const path = tmp.path('align.gguf');
    await writeGguf(path, [
      { name: 'a', type: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) },
      { name: 'b', type: 'Q8_0', shape: [2, 32], data: weights(64) },
    ], { alignment: 64 });
    await withGguf(path, async (f) => {
      expect(f.alignment).toBe(64);
      expect(f.metadata.get('general.alignment')).toEqual(gv.u32(64));
      for (const t of f.tensors) expect(t.fileOffset % 64).toBe(0);
      expect(f.info('b').offset).toBe(64);
    });
  });

  it('maps shapes: GGUF dims are ne0 (the row, innermost) first, the reverse of the row-major shape', async () => {
    const path = tmp.path('dims.gguf');
    const x = weights(3 * 64);
    await writeGguf(path, [{ name: 'linear.weight', type: 'F32', shape: [3, 64], data: x }]);
    await withGguf(path, async (f) => {
      const t = f.info('linear.weight');
      expect(t.dims).toEqual([64, 3]);
      expect(t.shape).toEqual([3, 64]);
      expect([t.rows, t.rowLength, t.rowBytes]).toEqual([3, 64, 256]);
      // row r of the GGUF tensor is row r of the [out, in] matrix
      expect(await f.readRowsF32('linear.weight', 1, 1)).toEqual(x.subarray(64, 128));
    });
  });
});

describe('GGUF against llama.cpp gguf-py', () => {
  it('reads a gguf-py file: metadata, shapes, types, values', async () => {
    await withGguf(PYREF, async (f) => {
      expect(f.architecture).toBe('flux');
      expect(f.metadata.get('t.u64')).toEqual(gv.u64(2n ** 63n + 5n));
      expect(f.metadata.get('t.str')).toEqual(gv.str('héllo'));
      expect(f.metadata.get('t.arr_str')).toEqual(gv.array('STRING', ['a', 'bc', '']));
      expect(f.tensors.map((t) => [t.name, t.type, t.shape])).toEqual([
        ['img_in.weight', 'F32', [8, 64]],
        ['double_blocks.0.img_attn.qkv.weight', 'Q8_0', [8, 64]],
        ['norm.scale', 'F32', [5]],
        ['half', 'F16', [8, 64]],
      ]);
      expect(f.torchShape('img_in.weight')).toEqual([8, 2, 2, 16]);
      expect(f.torchShape('half')).toEqual([8, 64]);
      const x = await f.readF32('img_in.weight');
      expect(x[1]).toBe(Math.fround(Math.fround(Math.cos(1)) * 0.5));
      // gguf-py's numpy Q8_0 quantizer agrees with ours (= ggml's reference) byte for byte
      expect(Buffer.from(await f.readBytes('double_blocks.0.img_attn.qkv.weight')).equals(Buffer.from(quantize('Q8_0', x)))).toBe(true);
      expect(await f.readF32('half')).toEqual(dequantize('F16', quantize('F16', x)));
    });
  });

  it('rewrites the gguf-py file byte for byte from what it read', async () => {
    const out = tmp.path('rewrite.gguf');
    await withGguf(PYREF, async (f) => {
      await writeGguf(out, f.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: () => f.readBytes(t.name) })), { metadata: f.metadata });
    });
    expect((await readFile(out)).equals(await readFile(PYREF))).toBe(true);
  });
});

describe('GGUF tensors through a file', () => {
  for (const type of SUPPORTED_TYPES) {
    it(`${type}: quantize → write → read → dequantize equals quantize → dequantize; row ranges equal the whole`, async () => {
      const block = typeByName(type)!.blockSize;
      const rowLength = Math.max(256, block) * 2;
      const rows = 7;
      const x = weights(rows * rowLength, type.length);
      const path = tmp.path(`t-${type}.gguf`);
      await writeGguf(path, [
        { name: 'bias', type: 'F32', shape: [5], data: new Float32Array([1, 2, 3, 4, 5]) },
        { name: 'w', type, shape: [rows, rowLength], data: async () => x },
      ]);
      const expected = dequantize(type, quantize(type, x));
      await withGguf(path, async (f) => {
        expect(f.info('w').type).toBe(type);
        expect(Buffer.from(await f.readBytes('w')).equals(Buffer.from(quantize(type, x)))).toBe(true);
        const all = await f.readF32('w');
        expect(all).toEqual(expected);
        expect(await f.readRowsF32('w', 2, 3)).toEqual(all.subarray(2 * rowLength, 5 * rowLength));
        expect(Buffer.from(await f.readRowBytes('w', 6, 1)).equals(Buffer.from(quantize(type, x.subarray(6 * rowLength))))).toBe(true);
        const chunks: Float32Array[] = [];
        for await (const [start, values] of f.iterateRows('w', 3)) {
          expect(start).toBe(chunks.length * 3);
          chunks.push(values.slice());
        }
        expect(Float32Array.from(chunks.flatMap((c) => [...c]))).toEqual(all);
        expect(await f.readF32('bias')).toEqual(new Float32Array([1, 2, 3, 4, 5]));
      });
      if (type === 'F32' || type === 'F16' || type === 'BF16') {
        const exact = dequantize(type, quantize(type, x));
        expect(dequantize(type, quantize(type, exact))).toEqual(exact);
      }
    });
  }

  it('refuses row ranges outside the tensor and unknown names, naming them', async () => {
    await withGguf(PYREF, async (f) => {
      await expect(f.readRowsF32('half', 7, 2)).rejects.toMatchObject({ code: 'BAD_ROW_RANGE', tensor: 'half' });
      await expect(f.readBytes('nope')).rejects.toMatchObject({ code: 'NO_SUCH_TENSOR', tensor: 'nope' });
    });
  });

  it('copies a type it cannot dequantize as bytes, and says so when asked for floats', async () => {
    const path = tmp.path('q2k.gguf');
    const raw = new Uint8Array(84).map((_, i) => i);
    await writeGguf(path, [{ name: 'q', type: 'Q2_K', dims: [256], data: raw }]);
    await withGguf(path, async (f) => {
      expect(await f.readBytes('q')).toEqual(raw);
      await expect(f.readF32('q')).rejects.toMatchObject({ code: 'UNSUPPORTED_TYPE', tensor: 'q', message: expect.stringContaining('Q2_K') });
    });
  });
});

describe('GGUF writer: validation and atomic staging', () => {
  const staging = async () => (await readdir(tmp.dir)).filter((n) => n.endsWith('.tmp'));

  it('refuses bad specs before creating anything', async () => {
    const path = tmp.path('bad.gguf');
    const cases: [Parameters<typeof writeGguf>[1], string][] = [
      [[{ name: 'w', type: 'Q8_0', shape: [2, 33], data: new Float32Array(66) }], 'BAD_DIMS'],
      [[{ name: 'w', type: 'Q9_9', shape: [32], data: new Float32Array(32) }], 'BAD_TYPE'],
      [[{ name: 'w', type: 'F32', shape: [1] , data: new Float32Array(1) }, { name: 'w', type: 'F32', shape: [1], data: new Float32Array(1) }], 'DUPLICATE_NAME'],
      [[{ name: 'w', type: 'F32', shape: [1, 1, 1, 1, 1], data: new Float32Array(1) }], 'BAD_DIMS'],
      [[{ name: 'x'.repeat(128), type: 'F32', shape: [1], data: new Float32Array(1) }], 'BAD_KEY'],
    ];
    for (const [entries, code] of cases) await expect(writeGguf(path, entries)).rejects.toMatchObject({ code });
    await expect(writeGguf(path, [], { metadata: { k: gv.u8(256) } })).rejects.toMatchObject({ code: 'BAD_METADATA' });
    await expect(writeGguf(path, [], { metadata: { k: { type: 'ARRAY', itemType: 'ARRAY', value: [] } as unknown as GgufValue } })).rejects.toMatchObject({ code: 'BAD_VALUE_TYPE' });
    await expect(writeGguf(path, [], { alignment: 48 })).rejects.toMatchObject({ code: 'BAD_ALIGNMENT' });
    expect(await readdir(tmp.dir)).not.toContain('bad.gguf');
    expect(await staging()).toEqual([]);
  });

  it('a failing producer, a wrong size or a wrong order leaves nothing, and an existing output untouched', async () => {
    const path = tmp.path('keep.gguf');
    await copyFile(PYREF, path);
    const before = await readFile(path);
    const boom = async (): Promise<Float32Array> => {
      throw new Error('producer failed');
    };
    await expect(writeGguf(path, [
      { name: 'a', type: 'F32', shape: [1], data: new Float32Array(1) },
      { name: 'b', type: 'Q8_0', shape: [32], data: boom },
    ])).rejects.toThrow('producer failed');
    await expect(writeGguf(path, [{ name: 'a', type: 'Q4_K', shape: [256], data: new Uint8Array(10) }])).rejects.toMatchObject({ code: 'WRITE_FAILED', tensor: 'a' });
    const w = await GgufWriter.create(path, [{ name: 'a', type: 'F32', shape: [1] }, { name: 'b', type: 'F32', shape: [1] }]);
    await expect(w.writeF32('b', new Float32Array(1))).rejects.toBeInstanceOf(GgufError);
    const w2 = await GgufWriter.create(path, [{ name: 'a', type: 'F32', shape: [1] }]);
    await expect(w2.commit()).rejects.toMatchObject({ code: 'WRITE_FAILED', tensor: 'a' });
    expect((await readFile(path)).equals(before)).toBe(true);
    expect(await staging()).toEqual([]);
  });

  it('writes through a staging file renamed only on commit', async () => {
    const path = tmp.path('staged.gguf');
    const w = await GgufWriter.create(path, [{ name: 'a', type: 'Q6_K', shape: [256] }]);
    expect(await staging()).toHaveLength(1);
    expect(await readdir(tmp.dir)).not.toContain('staged.gguf');
    await w.writeF32('a', weights(256));
    await w.commit();
    expect(await staging()).toEqual([]);
    await withGguf(path, async (f) => expect(f.info('a').byteLength).toBe(210));
  });

  it('a zero-tensor file is valid and small', async () => {
    const path = tmp.path('empty.gguf');
    await writeGguf(path, [], { metadata: { 'general.architecture': gv.str('wan') } });
    const f = await GgufFile.open(path);
    expect(f.tensors).toEqual([]);
    expect(f.architecture).toBe('wan');
    await f.close();
  });
});
