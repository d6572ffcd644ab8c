/**
 * A header of a million tensors (67 MB of JSON): the server inspects it without stalling other
 * requests and answers a window of the tensor list with the totals of all; the CLI caps its list
 * unless asked; the compact table gives the same facts as the header's JSON.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INLINE_HEADER_BYTES } from '../src/formats/inspect-off-thread.ts';
import { withSafetensors } from '../src/safetensors/reader.ts';
import { INSPECT_TENSOR_LIMIT } from '../server/routes/inspect.ts';
import { cli } from './helpers/cli.ts';
import { startTestServer, type TestServer } from './helpers/server-harness.ts';

const COUNT = 1_000_000;
const name = (i: number) => `blocks.${i}.w`;
let t: TestServer;
let file: string;

/** COUNT F16 tensors; tensor i has shape [1 + i % 3] (so dtype and shape totals are known). */
function hugeFile(): Buffer {
  const parts: string[] = [];
  let offset = 0;
  for (let i = 0; i < COUNT; i++) {
    const n = 1 + (i % 3);
    parts.push(`"${name(i)}":{"dtype":"F16","shape":[${n}],"data_offsets":[${offset},${offset + 2 * n}]}`);
    offset += 2 * n;
  }
  const header = Buffer.from(`{"__metadata__":{"note":"huge"},${parts.join(',')}}`);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, Buffer.alloc(offset)]);
}

beforeAll(async () => {
  t = await startTestServer();
  file = path.join(t.loras, 'huge.safetensors');
  const bytes = hugeFile();
  expect(bytes.readBigUInt64LE(0)).toBeGreaterThan(BigInt(INLINE_HEADER_BYTES));
  await writeFile(file, bytes);
}, 60_000);
afterAll(() => t.close());

const parameters = (() => {
  let p = 0;
  for (let i = 0; i < COUNT; i++) p += 1 + (i % 3);
  return p;
})();

describe('a header of a million tensors', () => {
  it('is inspected by the server off the event loop: other requests are answered meanwhile', async () => {
    const order: string[] = [];
    const inspect = t.get('/api/inspect?root=loras&path=huge.safetensors').then((r) => (order.push('inspect'), r));
    await new Promise((r) => setTimeout(r, 50));
    const roots = await t.get('/api/roots');
    order.push('roots');
    expect(roots.status).toBe(200);
    const r = await inspect;
    expect(order).toEqual(['roots', 'inspect']);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tensorCount: COUNT, parameterCount: parameters, truncated: true, tensorsOffset: 0, metadata: { note: 'huge' } });
    expect(r.body.dtypes).toEqual({ F16: { tensors: COUNT, parameters, bytes: 2 * parameters } });
    expect(r.body.tensors).toHaveLength(INSPECT_TENSOR_LIMIT.default);
    expect(r.body.tensors[0]).toEqual({ name: name(0), dtype: 'F16', shape: [1], bytes: 2 });
  }, 60_000);

  it('answers any window of the list, and refuses a limit above the cap', async () => {
    const r = await t.get(`/api/inspect?root=loras&path=huge.safetensors&offset=${COUNT - 2}&limit=5`);
    expect(r.status).toBe(200);
    expect(r.body.tensors).toEqual([
      { name: name(COUNT - 2), dtype: 'F16', shape: [1 + ((COUNT - 2) % 3)], bytes: 2 * (1 + ((COUNT - 2) % 3)) },
      { name: name(COUNT - 1), dtype: 'F16', shape: [1 + ((COUNT - 1) % 3)], bytes: 2 * (1 + ((COUNT - 1) % 3)) },
    ]);
    expect(r.body).toMatchObject({ tensorsOffset: COUNT - 2, truncated: true });
    const tooMany = await t.get(`/api/inspect?root=loras&path=huge.safetensors&limit=${INSPECT_TENSOR_LIMIT.max + 1}`);
    expect(tooMany.status).toBe(400);
  }, 60_000);

  it('a broken huge header reports its error from the worker with the file and tensor named', async () => {
    const bytes = hugeFile();
    const at = bytes.indexOf(`"${name(777_777)}":{"dtype":"F16"`);
    bytes.write('"dtype":"Q16"', at + name(777_777).length + 4);
    await writeFile(path.join(t.loras, 'broken.safetensors'), bytes);
    const r = await t.get('/api/inspect?root=loras&path=broken.safetensors');
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: 'safetensors_unknown_dtype', details: { code: 'UNKNOWN_DTYPE', tensor: name(777_777) } });
    expect(r.body.error.message).toContain('loras/broken.safetensors');
  }, 60_000);

  it('the CLI lists the first 1000 with --tensors and says how many more; --limit applies to --json', async () => {
    const out = await cli('inspect', file, '--tensors');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`tensor list (the first 1000 of ${COUNT}):`);
    expect(out.stdout).toContain(`… ${COUNT - 1000} more`);
    const json = await cli('inspect', file, '--json', '--limit', '3', '--offset', '10');
    expect(json.code).toBe(0);
    const s = JSON.parse(json.stdout) as { tensors: { name: string }[]; tensorCount: number; truncated: boolean };
    expect(s.tensors.map((x) => x.name)).toEqual([name(10), name(11), name(12)]);
    expect(s).toMatchObject({ tensorCount: COUNT, truncated: true });
    expect((await cli('inspect', file, '--limit', '-1')).code).toBe(2);
  }, 120_000);

  it('the reader keeps the compact table: the facts match the JSON, tensor by tensor (sampled)', async () => {
    await withSafetensors(file, async (f) => {
      expect(f.table.length).toBe(COUNT);
      for (const i of [0, 1, 2, 499_999, COUNT - 1]) {
        const n = 1 + (i % 3);
        expect(f.info(name(i))).toMatchObject({ dtype: 'F16', shape: [n] });
        expect(f.table.indexOf(name(i))).toBe(i);
      }
    });
  }, 60_000);
});

