/**
 * Every malformed GGUF is refused with its own code and a message naming the file (and the
 * tensor to blame), promptly, never a crash or a hang; a valid file cut at any structure
 * boundary is refused too.
 */
import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { GgufError } from '../src/gguf/errors.ts';
import { GgufFile } from '../src/gguf/reader.ts';
import { GGUF_CORRUPT_CASES, validFile } from './gguf-corrupt-corpus.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('gguf-corrupt-');

async function openError(path: string): Promise<GgufError> {
  try {
    const f = await GgufFile.open(path);
    await f.close();
  } catch (e) {
    expect(e).toBeInstanceOf(GgufError);
    return e as GgufError;
  }
  throw new Error(`${path} opened`);
}

describe('GGUF bad-input corpus', () => {
  it('the corpus builder makes a valid file that reads back', async () => {
    const path = tmp.path('valid.gguf');
    await writeFile(path, validFile().bytes());
    const f = await GgufFile.open(path);
    expect(f.tensors.map((t) => [t.name, t.type, t.fileOffset])).toEqual([['a', 'F32', f.dataOffset], ['b', 'Q8_0', f.dataOffset + 32]]);
    expect((await f.readF32('b')).length).toBe(64);
    await f.close();
  });

  it('has a distinct id per case', () => {
    expect(new Set(GGUF_CORRUPT_CASES.map((c) => c.id)).size).toBe(GGUF_CORRUPT_CASES.length);
  });

  for (const c of GGUF_CORRUPT_CASES) {
    it(`${c.id}: ${c.what} → ${c.code}`, async () => {
      const path = await c.make(tmp.dir);
      const e = await openError(path);
      expect(e.code).toBe(c.code);
      expect(e.message).toContain(path);
      expect(e.fault).toBe('input');
      if (c.tensor !== undefined) {
        expect(e.tensor).toBe(c.tensor);
        expect(e.message).toContain(`tensor "${c.tensor}"`);
      }
    });
  }

  it('a valid file cut at every structure boundary is refused with the code for that boundary', async () => {
    const g = validFile();
    const bytes = g.bytes();
    const dataStart = bytes.length - 128;
    const cuts = g.marks.filter((m) => m.at < dataStart);
    expect(cuts.length).toBeGreaterThan(30);
    for (const { at, code } of cuts) {
      const path = tmp.path(`cut-${at}.gguf`);
      await writeFile(path, bytes.subarray(0, at));
      const e = await openError(path);
      expect(e.code, `cut at byte ${at}`).toBe(code);
      expect(e.message).toContain(path);
    }
    // cut inside the data: the header is intact, the tensor that runs past the end is named
    for (const [at, tensor] of [[dataStart + 8, 'a'], [dataStart + 40, 'b'], [dataStart + 99, 'b']] as const) {
      const path = tmp.path(`cut-data-${at}.gguf`);
      await writeFile(path, bytes.subarray(0, at));
      const e = await openError(path);
      expect([e.code, e.tensor]).toEqual(['OUT_OF_BOUNDS', tensor]);
    }
  });

  it('random byte corruption never crashes: it opens, or fails with a GgufError', async () => {
    const bytes = validFile().bytes();
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let k = 0; k < 300; k++) {
      const b = Buffer.from(bytes);
      for (let j = 0; j < 1 + Math.floor(rand() * 4); j++) b[Math.floor(rand() * (bytes.length - 128))] = Math.floor(rand() * 256);
      const path = tmp.path(`fuzz-${k}.gguf`);
      await writeFile(path, b);
      try {
        const f = await GgufFile.open(path);
        for (const t of f.tensors) await f.readBytes(t.name);
        await f.close();
      } catch (e) {
        expect(e, `fuzz case ${k}`).toBeInstanceOf(GgufError);
      }
    }
  });
});
