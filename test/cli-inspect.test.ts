import { spawnSync } from 'node:child_process';
import { open, stat, writeFile } from 'node:fs/promises';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildHeader, orderTensors } from '../src/safetensors/writer.ts';
import { summarizeSafetensors, type SafetensorsSummary } from '../src/safetensors/summary.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { fluxCheckpointShapes } from '../src/samples/flux-checkpoint.ts';
import { cli } from './helpers/cli.ts';
import { useTempDir } from './helpers/temp-dir.ts';

/** `main` in-process, what it prints as `out` / `err`. */
const run = (argv: string[]) => cli(...argv).then((r) => ({ code: r.code, out: r.stdout, err: r.stderr }));

const tmp = useTempDir('loraflow-cli-');
let lora: string;
const recipe = { schemaVersion: 1, nodes: { load: { type: 'load-lora', params: { path: 'a.safetensors' } } } };

beforeAll(async () => {
  lora = tmp.path('lora.safetensors');
  await writeSafetensors(
    lora,
    [
      { name: 'a.lora_down.weight', dtype: 'BF16', shape: [4, 8], data: new Uint8Array(64) },
      { name: 'a.lora_up.weight', dtype: 'BF16', shape: [16, 4], data: new Uint8Array(128) },
      { name: 'a.alpha', dtype: 'F32', shape: [], data: new Uint8Array(4) },
      { name: 'b.weight', dtype: 'F8_E4M3', shape: [3, 5], data: new Uint8Array(15) },
    ],
    { metadata: { ss_network_dim: '4', 'loraflow.recipe': JSON.stringify(recipe), note: '[not json' } },
  );
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('summarizeSafetensors', () => {
  it('totals tensors, parameters and bytes per dtype, and expands JSON metadata only', () => {
    const s = summarizeSafetensors({
      path: 'x.safetensors',
      fileSize: 8 + 64 + 70,
      headerBytes: 64,
      tensors: [
        { name: 'w', dtype: 'F16', shape: [3, 5], begin: 0, end: 30 },
        { name: 'v', dtype: 'F32', shape: [10], begin: 30, end: 70 },
        { name: 's', dtype: 'F16', shape: [], begin: 70, end: 72 },
        { name: 'e', dtype: 'F16', shape: [0, 4], begin: 72, end: 72 },
      ],
      metadata: { j: '{"a":[1,2]}', arr: ' [true]', n: '16', bad: '{oops' },
    });
    expect(s.tensorCount).toBe(4);
    expect(s.parameterCount).toBe(15 + 10 + 1 + 0);
    expect(s.dataBytes).toBe(72);
    expect(s.dtypes).toEqual({ F32: { tensors: 1, parameters: 10, bytes: 40 }, F16: { tensors: 3, parameters: 16, bytes: 32 } });
    expect(Object.keys(s.dtypes)).toEqual(['F32', 'F16']);
    expect(s.metadata).toEqual({ j: { a: [1, 2] }, arr: [true], n: '16', bad: '{oops' });
    expect(s.tensors[2]).toEqual({ name: 's', dtype: 'F16', shape: [], bytes: 2 });
    expect(s.detection).toBeUndefined();
  });
});

describe('loraflow inspect', () => {
  it('prints counts, per-dtype bytes and expanded metadata', async () => {
    const r = await run(['inspect', lora]);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toContain(`file:      ${lora}`);
    expect(r.out).toMatch(/tensors: +4 \(112 parameters, 211 bytes of data\)/);
    expect(r.out).toMatch(/BF16 +2 tensors +96 params +192 bytes/);
    expect(r.out).toMatch(/F8_E4M3 +1 tensors +15 params +15 bytes/);
    expect(r.out).toMatch(/F32 +1 tensors +1 params +4 bytes/);
    expect(r.out).toContain('  ss_network_dim: 4\n');
    expect(r.out).toContain('  note: [not json\n');
    // The recipe is pretty-printed, one JSON member per line.
    expect(r.out).toContain('  loraflow.recipe:\n    {\n      "schemaVersion": 1,\n');
    expect(r.out).not.toContain('a.lora_down.weight');
  });

  it('--tensors lists every tensor; --json prints the summary object', async () => {
    const listed = await run(['inspect', lora, '--tensors']);
    expect(listed.out).toContain('  a.alpha  F32 []\n');
    expect(listed.out).toContain('  b.weight  F8_E4M3 [3, 5]\n');
    const r = await run(['inspect', '--json', lora]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as SafetensorsSummary;
    expect(s.tensorCount).toBe(4);
    expect(s.dataBytes).toBe(211);
    expect(s.fileBytes).toBe((await stat(lora)).size);
    expect(s.metadata['loraflow.recipe']).toEqual(recipe);
    expect(s.tensors.map((t) => t.name)).toEqual(['a.alpha', 'a.lora_down.weight', 'a.lora_up.weight', 'b.weight']);
  });

  it('exit code 2 with a message naming the file for a bad file, 2 for bad arguments', async () => {
    const bad = tmp.path('bad.safetensors');
    await writeFile(bad, Buffer.from('0800000000000000{"a":1} ', 'latin1'));
    const r = await run(['inspect', bad]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toContain(bad);
    expect((await run(['inspect'])).code).toBe(2);
    expect((await run(['inspect', lora, lora])).err).toMatch(/exactly one FILE/);
    const unknown = await run(['inspect', '--frobnicate', lora]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--frobnicate/);
  });

  it('help, version and unknown commands', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: loraflow COMMAND/);
    expect(help.out).toMatch(/\n {2}inspect +Show what a safetensors file holds/);
    const cmdHelp = await run(['inspect', '--help']);
    expect(cmdHelp.code).toBe(0);
    expect(cmdHelp.out).toMatch(/^loraflow inspect FILE \[--json\]/);
    expect((await run(['help', 'inspect'])).out).toBe(cmdHelp.out);
    expect((await run(['--version'])).out).toMatch(/^\d+\.\d+\.\d+\n$/);
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/Usage: loraflow/);
    const unknown = await run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/unknown command "frobnicate"/);
  });

  it('reads only the header: a 24 GB FLUX.1-dev file (sparse, no data on disk) inspects through bin/loraflow.js', async () => {
    const path = tmp.path('flux1-dev-sparse.safetensors');
    const specs = orderTensors(fluxCheckpointShapes(), 'reference');
    const header = buildHeader(specs);
    const data = specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * 2, 0);
    const fh = await open(path, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.byteLength));
    await fh.write(len, 0, 8, 0);
    await fh.write(header, 0, header.byteLength, 8);
    await fh.truncate(8 + header.byteLength + data);
    await fh.close();
    expect(data).toBe(23_802_816_640);
    const r = spawnSync(process.execPath, ['bin/loraflow.js', 'inspect', path, '--json'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as SafetensorsSummary;
    expect(s.tensorCount).toBe(780);
    expect(s.parameterCount).toBe(11_901_408_320);
    expect(s.dtypes).toEqual({ BF16: { tensors: 780, parameters: 11_901_408_320, bytes: 23_802_816_640 } });
  });
});
