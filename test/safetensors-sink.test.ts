import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { STAGE, STAGES, openSink } from '../src/safetensors/sink.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-sink-');
let n = 0;
const fresh = () => tmp.path(`s-${n++}.bin`);

/**
 * Deterministic bytes, a word at a time (some cases need tens of megabytes), from xorshift32: no
 * byte pattern repeats within a file, so a stage written at the wrong offset cannot go unnoticed.
 */
function bytes(length: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let s = seed * 2654435761 || 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
  return new Uint8Array(words.buffer, 0, length);
}

/** Whether this filesystem takes O_DIRECT at all (tmpfs on older kernels does not). */
function directSupported(dir: string): boolean {
  if (constants.O_DIRECT === undefined) return false;
  const probe = `${dir}/probe-${n++}`;
  try {
    closeSync(openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

describe('file sinks (direct and through the page cache)', () => {
  it('writes directly where the filesystem allows it, through the page cache when told not to', async () => {
    const direct = await openSink(fresh());
    const buffered = await openSink(fresh(), { direct: false });
    expect(direct.direct).toBe(directSupported(tmp.dir));
    expect(buffered.direct).toBe(false);
    await Promise.all([direct.close(), buffered.close()]);
  });

  it('LORAFLOW_DIRECT_IO=0 turns direct writes off', async () => {
    process.env.LORAFLOW_DIRECT_IO = '0';
    try {
      const sink = await openSink(fresh());
      expect(sink.direct).toBe(false);
      await sink.close();
    } finally {
      delete process.env.LORAFLOW_DIRECT_IO;
    }
  });

  // Appends of awkward sizes: tiny, unaligned, a whole stage, across stage boundaries, and ending on one.
  const layouts: [string, number[]][] = [
    ['one small append', [13]],
    ['empty and unaligned appends', [0, 8, 4095, 1, 4096, 7]],
    ['exactly one stage', [STAGE]],
    ['across stage boundaries', [STAGE - 3, 5, STAGE + 4097, 100]],
    ['a multiple of the block size', [4096 * 3]],
    ['round every stage and past it', [STAGE * (STAGES + 1) + 123]],
  ];

  it.each(layouts)('%s: the file holds exactly the appended bytes, direct or not', async (_, sizes) => {
    const parts = sizes.map((size, i) => bytes(size, i + 1));
    const want = Buffer.concat(parts);
    for (const direct of [true, false]) {
      const path = fresh();
      const sink = await openSink(path, { direct });
      for (const p of parts) await sink.append(p);
      await sink.finish();
      await sink.close();
      const got = await readFile(path);
      expect(got.length, `direct ${direct}`).toBe(want.length);
      expect(got.equals(want), `direct ${direct}`).toBe(true);
    }
  });

  it('a caller may reuse its buffer once append settles', async () => {
    const path = fresh();
    const sink = await openSink(path);
    const buffer = new Uint8Array(3 << 20);
    const want: Uint8Array[] = [];
    for (let i = 0; i < 7; i++) {
      buffer.set(bytes(buffer.length, 100 + i));
      want.push(buffer.slice());
      await sink.append(buffer);
    }
    await sink.finish();
    await sink.close();
    expect((await readFile(path)).equals(Buffer.concat(want))).toBe(true);
  });

  it('refuses to open over an existing file', async () => {
    const path = fresh();
    const first = await openSink(path);
    await first.close();
    await expect(openSink(path)).rejects.toThrow(/EEXIST/);
  });

  it('a write past the file size limit fails the writer with a clear error and leaves no file', () => {
    // RLIMIT_FSIZE makes the kernel refuse the write (EFBIG) as a full disk would (ENOSPC).
    const dir = tmp.path(`limited-${n++}`);
    const script = `
      import { mkdir } from 'node:fs/promises';
      import { SafetensorsWriter } from './src/safetensors/writer.ts';
      process.on('SIGXFSZ', () => {});
      await mkdir(${JSON.stringify(dir)});
      const w = await SafetensorsWriter.create(${JSON.stringify(`${dir}/out.safetensors`)}, [{ name: 'big', dtype: 'F32', shape: [4 << 20] }]);
      try {
        await w.writeF32('big', new Float32Array(4 << 20).fill(1));
        await w.commit();
        console.log('no error');
      } catch (e) {
        console.log(e.code + ': ' + e.message);
      }
    `;
    const r = spawnSync('bash', ['-c', `ulimit -f 1024 && exec "${process.execPath}" --import tsx --input-type=module -e "$0"`, script], { encoding: 'utf8', cwd: process.cwd() });
    // Writes in flight may fail after their tensor was handed over: the error names the file, and commit reports it at the latest.
    expect(r.stdout, r.stderr).toMatch(/^WRITE_FAILED: .*out\.safetensors.*write failed: .*(too large|EFBIG).*no output was left behind/im);
    return readdir(dir).then((left) => expect(left).toEqual([]));
  });
});
