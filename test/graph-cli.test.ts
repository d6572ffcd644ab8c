/**
 * The command line: exit codes, JSON events, overrides, provenance round trip, single-operation
 * commands. Commands run in-process through `main()` (what bin/loraflow.js calls) to keep the
 * suite fast; one test spawns the real binary to check the process wiring end to end.
 */
import { execFile } from 'node:child_process';
import { copyFile, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { writeSampleLora } from '../src/samples/lora-fixtures.ts';
import { writeSamples } from '../src/samples/write-samples.ts';
import { cli } from './helpers/cli.ts';
import { sameBytes, tensorsOf } from './helpers/tensors.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const BIN = fileURLToPath(new URL('../bin/loraflow.js', import.meta.url));
const GRAPHS = fileURLToPath(new URL('../graphs/', import.meta.url));
const tmp = useTempDir('loraflow-cli-');
const home = process.cwd();

beforeAll(async () => {
  await writeSamples(tmp.path('samples'));
  process.chdir(tmp.dir);
});
afterAll(() => {
  process.chdir(home);
});

/** The real binary in a child process. */
function spawnCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: tmp.dir, timeout: 60_000, env: { ...process.env, LORAFLOW_BACKEND: 'wasm' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const EVENT_TYPES = ['run.invalid', 'run.plan', 'run.start', 'node.cached', 'node.start', 'node.progress', 'node.log', 'node.done', 'run.success', 'run.error', 'run.cancelled'];

describe('loraflow run', () => {
  it('--json-events prints one event per line: run id, sequence, node ids (real process)', async () => {
    const r = await spawnCli('run', join(GRAPHS, 'merge-aitoolkit-kohya.json'), '--json-events');
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events[0]!.type).toBe('run.start');
    expect(events.at(-1)).toMatchObject({ type: 'run.success', written: [tmp.path('out/flux-merged.safetensors')] });
    expect(new Set(events.map((e) => e.runId)).size).toBe(1);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    for (const e of events) {
      expect(EVENT_TYPES).toContain(e.type);
      expect(typeof e.time).toBe('number');
      if (String(e.type).startsWith('node.')) expect(e).toMatchObject({ nodeId: expect.any(String), nodeType: expect.any(String) });
    }
    const done = events.filter((e) => e.type === 'node.done').map((e) => e.nodeId);
    expect(done).toEqual(['aitoolkit', 'kohya', 'merge', 'save']);
    // A run with no --backend still says which backend did the math (the default one, chosen on first use).
    const merged = events.find((e) => e.type === 'node.done' && e.nodeId === 'merge') as { summary?: { report?: { backend?: string } } };
    expect(merged.summary?.report?.backend).toMatch(/^(wasm|webgpu|tensorflow|cpu)$/);
    expect(events.filter((e) => e.type === 'node.progress').every((e) => typeof e.value === 'number' && typeof e.max === 'number')).toBe(true);
  });

  it('`loraflow recipe` on an output gives a recipe that reproduces the file byte for byte', async () => {
    const out = tmp.path('out/flux-merged.safetensors');
    expect((await cli('run', join(GRAPHS, 'merge-aitoolkit-kohya.json'))).code).toBe(0);
    await copyFile(out, tmp.path('first.safetensors'));
    const r = await cli('recipe', 'out/flux-merged.safetensors', '-o', 'recovered.json');
    expect(r.code).toBe(0);
    const recovered = JSON.parse(await readFile(tmp.path('recovered.json'), 'utf8'));
    expect(recovered).toMatchObject({ format: 'loraflow.recipe', nodes: { merge: { type: 'merge-loras', params: { weights: [1, 0.8] } } } });
    expect(recovered).not.toHaveProperty('ui');
    await rm(out);
    expect((await cli('run', 'recovered.json')).code).toBe(0);
    expect((await readFile(out)).equals(await readFile(tmp.path('first.safetensors')))).toBe(true);
  });

  it('--set overrides are recorded, baked into the recovered recipe, and reproduce the same tensors', async () => {
    const r = await cli('run', join(GRAPHS, 'merge-aitoolkit-kohya.json'), '--set', 'weights=[0.5,2]', '--set', 'output=out/set.safetensors');
    expect(r.code).toBe(0);
    const rec = await cli('recipe', 'out/set.safetensors');
    expect(rec.stderr).toContain('overrides applied: weights=[0.5,2], output="out/set.safetensors"');
    const recipe = JSON.parse(rec.stdout);
    expect(recipe.nodes.merge.params.weights).toEqual([0.5, 2]);
    expect(recipe.nodes.save.params.path).toBe('out/set.safetensors');
    await copyFile(tmp.path('out/set.safetensors'), tmp.path('set-first.safetensors'));
    await writeFile(tmp.path('set.json'), rec.stdout);
    expect((await cli('run', 'set.json')).code).toBe(0);
    const [again, first] = [await tensorsOf(tmp.path('out/set.safetensors')), await tensorsOf(tmp.path('set-first.safetensors'))];
    expect([...again.keys()]).toEqual([...first.keys()]);
    expect([...again].filter(([k, v]) => !sameBytes(v.bytes, first.get(k)!.bytes)).map(([k]) => k)).toEqual([]);
    // The header differs only in provenance: this run had no overrides left to record.
    expect((await readFile(tmp.path('out/set.safetensors'))).equals(await readFile(tmp.path('set-first.safetensors')))).toBe(false);
  });

  it('exit 2 for an invalid recipe, listing every problem with node ids; nothing is written', async () => {
    await writeFile(
      tmp.path('bad.yaml'),
      [
        'format: loraflow.recipe',
        'schemaVersion: 1',
        'nodes:',
        '  a: { type: load-lora, v: 1.0.0, params: { path: samples/missing.safetensors } }',
        '  m: { type: merge-loras, v: 1.0.0, in: { loras: [a.lora, ghost.lora] }, params: { method: svd } }',
        '  s: { type: save-lora, v: 1.0.0, in: { lora: m.report }, params: { path: ../escape.safetensors, format: onnx } }',
        '  x: { type: frobnicate, v: 1.0.0 }',
      ].join('\n'),
    );
    const r = await cli('run', 'bad.yaml');
    expect(r.code).toBe(2);
    for (const needle of [
      'node "a" (load-lora) param "path"',
      'no such file',
      'node "m" (merge-loras) input "loras": link "ghost.lora": there is no node "ghost"',
      'node "m" (merge-loras) param "rank": method svd needs a rank or an energy',
      'node "s" (save-lora) input "lora": link "m.report" carries REPORT, but the input accepts LORA',
      'node "s" (save-lora) param "format"',
      'node "s" (save-lora) param "path": path "../escape.safetensors" is outside the output root',
      'node "x" (frobnicate): unknown node type "frobnicate"',
    ]) expect(r.stderr).toContain(needle);
    expect(await readdir(tmp.dir)).not.toContain('escape.safetensors');
  });

  it('exit 2 for bad arguments and unreadable inputs, exit 1 for a run that fails', async () => {
    expect((await cli('run')).code).toBe(2);
    expect((await cli('run', 'nope.json')).stderr).toContain('nope.json: no such file');
    expect((await cli('run', join(GRAPHS, 'merge-aitoolkit-kohya.json'), '--set', 'novalue')).code).toBe(2);
    expect((await cli('convert', 'samples/flux-kohya-lora.safetensors', 'out/x.safetensors')).code).toBe(2);
    await writeFile(tmp.path('garbage.safetensors'), 'this is not a safetensors file at all');
    const corrupt = await cli('convert', 'garbage.safetensors', 'out/g.safetensors', '--to', 'kohya');
    expect(corrupt.code).toBe(2);
    expect(corrupt.stderr).toContain('garbage.safetensors');
    // Rank choices: extract and resize need one, and a rank must be an integer (merge, extract, resize alike).
    for (const [args, message] of [
      [['extract', 'a.safetensors', 'b.safetensors', 'out/e.safetensors'], 'extract needs --rank N or --energy F'],
      [['resize', 'a.safetensors', 'out/r.safetensors', '--energy', 'most'], '--energy must be a number, got "most"'],
      [['merge', 'out/m.safetensors', 'a.safetensors', '--method', 'svd', '--rank', '1.5'], '--rank must be an integer, got "1.5"'],
    ] as const) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    }
    // A LoRA for twice the width does not fit the base: invalid input, naming the node.
    await writeSampleLora(tmp.path('wide.safetensors'), { format: 'kohya', factor: 32, rank: 2 });
    const misfit = await cli('apply', 'samples/flux-base.safetensors', 'out/misfit.safetensors', 'wide.safetensors');
    expect(misfit.code).toBe(2);
    expect(misfit.stderr).toContain('node "apply" (merge-into-base) failed');
    expect(await readdir(tmp.path('out'))).not.toContain('misfit.safetensors');
  });
});

describe('single-operation commands run through recipes', () => {
  it('convert, resize and extract write their files; --dry-run writes nothing', async () => {
    const c = await cli('convert', 'samples/flux-kohya-lora.safetensors', 'out/c.safetensors', '--to', 'ai-toolkit', '--dtype', 'BF16');
    expect(c.code).toBe(0);
    const converted = await SafetensorsFile.open(tmp.path('out/c.safetensors'));
    expect(converted.tensors.every((t) => t.dtype === 'BF16')).toBe(true);
    expect(converted.tensors.some((t) => t.name.startsWith('transformer.single_transformer_blocks.0.attn.to_k.'))).toBe(true);
    await converted.close();

    const resize = await cli('resize', 'samples/flux-kohya-lora.safetensors', 'out/r.safetensors', '--rank', '2', '--json-events');
    expect(resize.code).toBe(0);
    expect(JSON.parse(resize.stdout.trim().split('\n').at(-1)!)).toMatchObject({ type: 'run.success', outputs: { save: { format: 'kohya' } } });

    const extract = await cli('extract', 'samples/flux-base.safetensors', 'samples/flux-finetune.safetensors', 'out/e.safetensors', '--energy', '0.99');
    expect(extract.code).toBe(0);
    expect(extract.stdout).toContain('save: {');

    const dry = await cli('merge', 'out/never.safetensors', 'samples/flux-aitoolkit-lora.safetensors', 'samples/flux-kohya-lora.safetensors:0.5', '--method', 'svd', '--rank', '8', '--block-weights', 'D00-D18=0', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stderr).toContain('plan (dry run, nothing written)');
    expect(dry.stderr).toContain(`would write ${tmp.path('out/never.safetensors')}`);
    const applyDry = await cli('apply', 'samples/flux-base.safetensors', 'out/never2.safetensors', 'samples/flux-kohya-lora.safetensors:0.7', '--dtype', 'bf16', '--dry-run');
    expect(applyDry.code).toBe(0);
    expect(await readdir(tmp.path('out'))).not.toContain('never.safetensors');
    expect(await readdir(tmp.path('out'))).not.toContain('never2.safetensors');
  });

  it('loraflow nodes --json lists every node type with JSON Schema params', async () => {
    const r = await cli('nodes', '--json');
    expect(r.code).toBe(0);
    const defs = JSON.parse(r.stdout);
    expect(Object.keys(defs)).toEqual([
      'block-weights', 'convert', 'extract-lora', 'filter', 'inspect', 'load-lora', 'load-model', 'merge-checkpoints', 'merge-into-base', 'merge-loras', 'plot', 'resize-lora', 'save-lora', 'save-model', 'scale',
    ]);
    expect(defs['merge-loras'].paramsSchema.properties.method).toMatchObject({ enum: ['concat', 'svd', 'linear', 'ties', 'dare', 'dare-ties', 'magnitude-prune'], default: 'concat' });
    expect(defs['save-lora']).toMatchObject({ output: true, inputs: { lora: { type: 'LORA' } } });
  });
});
