import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsError } from '../src/safetensors/errors.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { SafetensorsWriter, buildHeader, orderTensors, writeSafetensors, type TensorEntry } from '../src/safetensors/writer.ts';
import { DTYPES, decodeToF32, encodeFromF32, type DType } from '../src/tensor/dtype.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-st-');
let n = 0;
const fresh = (label = 'f') => tmp.path(`${label}-${n++}.safetensors`);

/** Builds a file by hand from header text and data, independent of the writer. */
function handMade(headerJson: string, data: Uint8Array, pad = 0): Buffer {
  const header = Buffer.from(headerJson + ' '.repeat(pad), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, data]);
}

async function expectCode(p: Promise<unknown>, code: string, ...fragments: string[]): Promise<SafetensorsError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(SafetensorsError);
  const err = e as SafetensorsError;
  expect(err.code, err.message).toBe(code);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

describe('write → read round trips', () => {
  const shapes: number[][] = [[], [0], [3, 0, 2], [1], [5], [2, 3], [2, 1, 3, 2]];
  // Values every dtype holds exactly: halves in ±2.5 for floats, small integers for integer types.
  const sample = (count: number, dtype: DType) =>
    Float32Array.from({ length: count }, (_, i) =>
      dtype === 'BOOL' ? i % 3 && 1 : dtype === 'U8' ? i % 11 : dtype.startsWith('I') ? (i % 11) - 5 : ((i % 11) - 5) / 2);

  it.each(DTYPES.map((d) => [d]))('%s: every shape, bytes identical, values decoded', async (dtype: DType) => {
    const path = fresh(dtype);
    const entries = shapes.map((shape, i) => {
      const values = sample(numel(shape), dtype);
      return { name: `t${i}`, dtype, shape, values, data: encodeFromF32(values, dtype) };
    });
    await writeSafetensors(path, entries);
    await withSafetensors(path, async (f) => {
      expect(f.tensors.map((t) => t.name)).toEqual(entries.map((e) => e.name)); // one dtype: by name
      for (const e of entries) {
        const info = f.info(e.name);
        expect(info.dtype).toBe(dtype);
        expect(info.shape).toEqual(e.shape);
        expect(await f.readBytes(e.name)).toEqual(e.data);
        const f32 = await f.readF32(e.name);
        expect(f32).toEqual(decodeToF32(e.data, dtype));
        expect([...f32]).toEqual([...e.values]);
        if (e.values.length === 5) expect([...f32].map(Math.abs)).not.toEqual([0, 0, 0, 0, 0]);
      }
    });
  });

  it('dtypes loraflow cannot decode still round-trip as bytes (F4, U16, U32, U64, C64, F8_E8M0), and say so on readF32', async () => {
    const path = fresh('raw');
    const entries: TensorEntry[] = [
      { name: 'f4', dtype: 'F4', shape: [2, 3], data: Uint8Array.from([1, 2, 3]) },
      { name: 'u16', dtype: 'U16', shape: [2], data: Uint8Array.from([1, 2, 3, 4]) },
      { name: 'u32', dtype: 'U32', shape: [1], data: Uint8Array.from([9, 8, 7, 6]) },
      { name: 'u64', dtype: 'U64', shape: [], data: Uint8Array.from([1, 0, 0, 0, 0, 0, 0, 2]) },
      { name: 'c64', dtype: 'C64', shape: [1], data: Uint8Array.from([0, 0, 128, 63, 0, 0, 0, 64]) },
      { name: 'e8m0', dtype: 'F8_E8M0', shape: [3], data: Uint8Array.from([127, 128, 0]) },
    ];
    await writeSafetensors(path, entries, { order: 'given' });
    await withSafetensors(path, async (f) => {
      for (const e of entries) expect(await f.readBytes(e.name)).toEqual(e.data);
      await expectCode(f.readF32('u16'), 'UNKNOWN_DTYPE', 'U16', 'cannot decode', '"u16"');
    });
  });

  it('reads tensors larger than one read chunk, with element counts that do not divide it', async () => {
    const path = fresh('big');
    const count = 5_000_003; // ~10 MB of BF16, ~10 MB of F16: more than one 8 MiB chunk, odd tail
    const values = new Float32Array(count).map((_, i) => ((i * 7919) % 256) / 4 - 32); // 7 significant bits: exact in BF16 and F16
    await writeSafetensors(path, [
      { name: 'a.bf16', dtype: 'BF16', shape: [count], data: encodeFromF32(values, 'BF16') },
      { name: 'b.f16', dtype: 'F16', shape: [count], data: encodeFromF32(values, 'F16') },
      { name: 'c.f32', dtype: 'F32', shape: [count], data: encodeFromF32(values, 'F32') },
    ]);
    await withSafetensors(path, async (f) => {
      for (const name of ['a.bf16', 'b.f16', 'c.f32']) {
        const got = await f.readF32(name);
        // Bitwise comparison: toEqual walks 5M elements one by one, far too slowly.
        expect(Buffer.compare(Buffer.from(got.buffer), Buffer.from(values.buffer)), name).toBe(0);
      }
    });
  });

  it('writeF32 encodes in chunks to the declared dtype (same bytes as encodeFromF32); readF32 fills a given buffer', async () => {
    const path = fresh('f32');
    const count = 4_500_001; // several 8 MiB chunks for F16/BF16, odd tail
    const values = new Float32Array(count).map((_, i) => Math.sin(i) * 1000);
    const specs = [
      { name: 'a', dtype: 'BF16', shape: [count] },
      { name: 'b', dtype: 'F8_E4M3', shape: [count] },
      { name: 'c', dtype: 'F32', shape: [1, count] },
      { name: 'd', dtype: 'I16', shape: [0] },
    ];
    const w = await SafetensorsWriter.create(path, specs, { order: 'given' });
    await w.writeF32('a', values);
    await w.writeF32('b', values);
    await w.writeF32('c', values);
    await w.writeF32('d', new Float32Array(0));
    await w.commit();
    await withSafetensors(path, async (f) => {
      for (const dtype of ['BF16', 'F8_E4M3', 'F32'] as const) {
        const name = { BF16: 'a', F8_E4M3: 'b', F32: 'c' }[dtype];
        const expected = encodeFromF32(values, dtype);
        expect(Buffer.compare(await f.readBytes(name), expected), name).toBe(0);
        const into = new Float32Array(count + 2).fill(7);
        const got = await f.readF32(name, into.subarray(1, count + 1));
        expect(got.buffer).toBe(into.buffer);
        expect([into[0], into[count + 1]]).toEqual([7, 7]);
        expect(Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.byteLength), Buffer.from(decodeToF32(expected, dtype).buffer)), name).toBe(0);
      }
      await expect(f.readF32('a', new Float32Array(3))).rejects.toThrow(/tensor "a" has 4500001 values, the output buffer 3/);
    });
    const raw = await SafetensorsWriter.create(fresh('raw-f32'), [{ name: 'u', dtype: 'U16', shape: [1] }]);
    await expectCode(raw.writeF32('u', Float32Array.of(1)), 'WRITE_FAILED', 'cannot encode Float32 values as U16');
    const short = await SafetensorsWriter.create(fresh('short-f32'), [{ name: 'v', dtype: 'F16', shape: [3] }]);
    await expectCode(short.writeF32('v', Float32Array.of(1, 2)), 'WRITE_FAILED', 'got 4 bytes', 'needs 6');
  });

  it('a file with no tensors (header "{}") round-trips', async () => {
    const path = fresh('empty');
    await writeSafetensors(path, []);
    expect([...(await readFile(path))]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('{}      ')]);
    await withSafetensors(path, async (f) => {
      expect(f.tensors).toEqual([]);
      expect(f.metadata).toBeUndefined();
    });
  });
});

describe('byte-exact files', () => {
  it('writes exactly what the reference writer writes (hand-built expected bytes)', async () => {
    // safetensors' Python save_file({"b": f16 zeros(2), "a": f32 ones(1)}, metadata={"format": "pt"}):
    // F32 sorts before F16 (dtype descending), header padded with spaces to a multiple of 8.
    const json = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}';
    expect(json.length % 8).not.toBe(0);
    const expected = handMade(json, Uint8Array.from([0, 0, 0x80, 0x3f, 0, 0, 0, 0]), 8 - (json.length % 8));
    const path = fresh('ref');
    await writeSafetensors(
      path,
      [
        { name: 'b', dtype: 'F16', shape: [2], data: new Uint8Array(4) },
        { name: 'a', dtype: 'F32', shape: [1], data: encodeFromF32(Float32Array.of(1), 'F32') },
      ],
      { metadata: { format: 'pt' } },
    );
    expect(await readFile(path)).toEqual(expected);
  });

  it('reading a file and writing its tensors back (same metadata, given order) reproduces it byte for byte', async () => {
    const src = fresh('src');
    // Names a JS object would reorder or swallow, non-ASCII names, 0-d and empty tensors, mixed dtypes.
    await writeSafetensors(
      src,
      [
        { name: '10', dtype: 'F32', shape: [2], data: encodeFromF32(Float32Array.of(1, 2), 'F32') },
        { name: '2', dtype: 'BF16', shape: [], data: encodeFromF32(Float32Array.of(0.5), 'BF16') },
        { name: '__proto__', dtype: 'I8', shape: [3], data: Int8Array.of(-1, 0, 1) as unknown as Uint8Array },
        { name: 'blöck.ü', dtype: 'F16', shape: [0, 4], data: new Uint8Array(0) },
        { name: 'z', dtype: 'U8', shape: [1, 1], data: Uint8Array.of(200) },
      ].map((e) => ({ ...e, data: new Uint8Array(e.data.buffer, e.data.byteOffset, e.data.byteLength) })),
      { metadata: Object.fromEntries([['ss_network_dim', '16'], ['__proto__', 'kept'], ['loraflow.recipe', '{"a":[1,2]}']]) },
    );
    const original = await readFile(src);
    const copy = fresh('copy');
    await withSafetensors(src, async (f) => {
      expect(f.metadata).toEqual(Object.fromEntries([['ss_network_dim', '16'], ['__proto__', 'kept'], ['loraflow.recipe', '{"a":[1,2]}']]));
      const entries = f.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: () => f.readBytes(t.name) }));
      await writeSafetensors(copy, entries, { metadata: f.metadata as Record<string, string>, order: 'given' });
    });
    expect(await readFile(copy)).toEqual(original);
  });

  it('a hand-written file whose header lists tensors out of data order reads by offsets', async () => {
    const path = fresh('hand');
    const json = '{"second":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"first":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    await writeFile(path, handMade(json, Uint8Array.of(7, 8, 9), 3));
    await withSafetensors(path, async (f) => {
      expect(f.tensors.map((t) => t.name)).toEqual(['first', 'second']);
      expect([...(await f.readBytes('second'))]).toEqual([8, 9]);
      expect(f.headerBytes).toBe(json.length + 3);
      await expectCode(f.readBytes('third'), 'NO_SUCH_TENSOR', '"third"', path);
    });
  });

  it("'reference' order is dtype descending in the Rust enum order, then name by UTF-8 bytes", () => {
    const specs = [
      ['b', 'F16'], ['a', 'F16'], ['x', 'BOOL'], ['m', 'F32'], ['k', 'BF16'], ['j', 'I64'], ['q', 'F8_E4M3'],
      ['r', 'F8_E5M2'], ['s', 'U8'], ['t', 'I8'], ['u', 'F64'], ['\u{1F600}', 'F16'], ['\uFF01', 'F16'],
    ].map(([name, dtype]) => ({ name: name!, dtype: dtype!, shape: [1] }));
    const order = orderTensors(specs, 'reference').map((s) => `${s.dtype}:${s.name}`);
    // U+FF01 (EF BC 81) sorts before U+1F600 (F0 9F 98 80) in UTF-8, after it in UTF-16 units.
    expect(order).toEqual([
      'I64:j', 'F64:u', 'F32:m', 'BF16:k', 'F16:a', 'F16:b', 'F16:\uFF01', 'F16:\u{1F600}',
      'F8_E4M3:q', 'F8_E5M2:r', 'I8:t', 'U8:s', 'BOOL:x',
    ]);
    expect(orderTensors(specs, 'given')).toEqual(specs);
  });

  it('pads the header with spaces to a multiple of 8 for every name length', () => {
    for (let len = 1; len <= 16; len++) {
      const header = buildHeader([{ name: 'n'.repeat(len), dtype: 'F32', shape: [1] }]);
      const json = `{"${'n'.repeat(len)}":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`;
      expect(header.byteLength % 8).toBe(0);
      expect(header.byteLength).toBe(Math.ceil(json.length / 8) * 8);
      expect(Buffer.from(header).toString('utf8')).toBe(json.padEnd(header.byteLength, ' '));
    }
  });

  it('writes empty metadata as the reference does when given ({}), and none when absent', () => {
    expect(Buffer.from(buildHeader([], {})).toString().trimEnd()).toBe('{"__metadata__":{}}');
    expect(Buffer.from(buildHeader([])).toString().trimEnd()).toBe('{}');
  });
});

describe('failed writes leave nothing behind', () => {
  const tmpFiles = async (d: string) => (await readdir(d)).filter((f) => f.endsWith('.tmp'));

  it('data() throwing mid-way removes the temp file and leaves an existing output untouched', async () => {
    const sub = tmp.path('fail');
    await mkdir(sub);
    const out = join(sub, 'model.safetensors');
    await writeFile(out, 'previous contents');
    let produced = 0;
    const entries: TensorEntry[] = ['a', 'b', 'c'].map((name) => ({
      name,
      dtype: 'F32',
      shape: [4],
      data: async () => {
        if (++produced === 2) throw new Error('source went away');
        return new Uint8Array(16);
      },
    }));
    await expect(writeSafetensors(out, entries)).rejects.toThrow('source went away');
    expect(produced).toBe(2);
    expect(await readFile(out, 'utf8')).toBe('previous contents');
    expect(await tmpFiles(sub)).toEqual([]);
    expect(await readdir(sub)).toEqual(['model.safetensors']);
  });

  it('the writer refuses tensors out of order and of the wrong size, and removes its temp file', async () => {
    const sub = tmp.path('order');
    await mkdir(sub);
    const specs = [{ name: 'a', dtype: 'F32', shape: [2] }, { name: 'b', dtype: 'F16', shape: [2] }];
    const w1 = await SafetensorsWriter.create(join(sub, 'x.safetensors'), specs, { order: 'given' });
    expect(await tmpFiles(sub)).toHaveLength(1);
    await expectCode(w1.write('b', new Uint8Array(4)), 'WRITE_FAILED', 'header order', 'expected "a"', '"b"');
    expect(await readdir(sub)).toEqual([]);

    const w2 = await SafetensorsWriter.create(join(sub, 'y.safetensors'), specs, { order: 'given' });
    await expectCode(w2.write('a', new Uint8Array(7)), 'WRITE_FAILED', 'got 7 bytes', 'needs 8', '"a"');
    expect(await readdir(sub)).toEqual([]);

    const w3 = await SafetensorsWriter.create(join(sub, 'z.safetensors'), specs, { order: 'given' });
    await w3.write('a', new Uint8Array(8));
    expect(w3.pending?.name).toBe('b');
    await expectCode(w3.commit(), 'WRITE_FAILED', 'commit before every tensor', '"b"');
    expect(await readdir(sub)).toEqual([]);
  });

  it('refuses invalid specs before creating anything', async () => {
    const sub = tmp.path('specs');
    await mkdir(sub);
    const p = join(sub, 'bad.safetensors');
    const one = (over: object) => [{ name: 'a', dtype: 'F32', shape: [1], ...over }];
    await expectCode(SafetensorsWriter.create(p, [...one({}), ...one({})]), 'DUPLICATE_NAME', '"a"');
    await expectCode(SafetensorsWriter.create(p, one({ dtype: 'F12' })), 'UNKNOWN_DTYPE', 'F12');
    await expectCode(SafetensorsWriter.create(p, one({ shape: [2, -1] })), 'BAD_SHAPE', '[2,-1]');
    await expectCode(SafetensorsWriter.create(p, one({ shape: [1.5] })), 'BAD_SHAPE');
    await expectCode(SafetensorsWriter.create(p, one({ shape: [2 ** 40, 2 ** 40] })), 'BAD_SHAPE');
    await expectCode(SafetensorsWriter.create(p, one({ dtype: 'F4', shape: [3] })), 'MISALIGNED');
    await expectCode(SafetensorsWriter.create(p, one({ name: '__metadata__' })), 'BAD_ENTRY', 'reserved');
    await expectCode(SafetensorsWriter.create(p, one({}), { metadata: { n: 5 as unknown as string } }), 'BAD_METADATA', '"n"');
    expect(await readdir(sub)).toEqual([]);
  });

  it('an output it cannot create is WRITE_FAILED naming the file', async () => {
    const p = tmp.path('no-such-dir', 'x.safetensors');
    await expectCode(writeSafetensors(p, []), 'WRITE_FAILED', p, 'cannot create output');
  });

  it('a failed rename (output is a directory) leaves no temp file', async () => {
    const sub = tmp.path('rename');
    await mkdir(join(sub, 'out.safetensors'), { recursive: true });
    await expectCode(writeSafetensors(join(sub, 'out.safetensors'), [{ name: 'a', dtype: 'U8', shape: [1], data: Uint8Array.of(1) }]), 'WRITE_FAILED');
    expect(await readdir(sub)).toEqual(['out.safetensors']);
  });

  it('never modifies its input: reading leaves the file bytes and mode as they were', async () => {
    const path = fresh('ro');
    await writeSafetensors(path, [{ name: 'a', dtype: 'F32', shape: [2], data: new Uint8Array(8) }]);
    await chmod(path, 0o444);
    const before = await readFile(path);
    await withSafetensors(path, async (f) => f.readF32('a'));
    expect(await readFile(path)).toEqual(before);
  });
});
