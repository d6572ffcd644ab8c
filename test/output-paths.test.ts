/**
 * An output path never reaches an input, however it is spelt (a symlinked directory, a relative
 * symlink, a hard link, `..`), and a save path that names a directory or runs into a link loop is
 * refused before any work — for every command, `run`, and the server's runs.
 */
import { link, mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSamples } from '../src/samples/write-samples.ts';
import { cli } from './helpers/cli.ts';
import { startTestServer, testRecipe, type TestServer } from './helpers/server-harness.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-paths-');
const home = process.cwd();
const BASE = 'samples/flux-base.safetensors';
const LORA = 'samples/flux-kohya-lora.safetensors';
const OTHER = 'samples/flux-aitoolkit-lora.safetensors';
let originals: Map<string, Buffer>;

beforeAll(async () => {
  await writeSamples(tmp.path('samples'));
  process.chdir(tmp.dir);
  await mkdir('out');
  await symlink(tmp.path('samples'), 'dir-link'); // absolute link to the inputs' folder
  await symlink('../samples', 'out/rel-dir'); // relative link to it
  await symlink('../samples/flux-kohya-lora.safetensors', 'out/rel-file.safetensors'); // relative link to an input
  await link(tmp.path(LORA), 'out/hard.safetensors'); // a second name for an input
  await symlink('loop-b', 'loop-a');
  await symlink('loop-a', 'loop-b');
  originals = new Map();
  for (const f of await readdir('samples')) originals.set(f, await readFile(path.join('samples', f)));
});
afterAll(() => process.chdir(home));

/** No input changed, and no staging or output file appeared anywhere in the tree. */
async function expectUntouched(): Promise<void> {
  for (const [f, bytes] of originals) expect((await readFile(path.join('samples', f))).equals(bytes), f).toBe(true);
  const all = await readdir('.', { recursive: true });
  expect(all.filter((f) => /\.tmp$/.test(f))).toEqual([]);
  expect((await readdir('samples')).sort()).toEqual([...originals.keys()].sort());
}

describe('an output that is an input by another name is refused up front', () => {
  const aliases = {
    'a symlinked directory': 'dir-link',
    'a relative symlinked directory': 'out/rel-dir',
    'a path through ..': 'out/../samples',
  };
  for (const [what, dir] of Object.entries(aliases)) {
    it(`apply, convert, merge and run through ${what}`, async () => {
      const cases: [string[], string][] = [
        [['apply', BASE, `${dir}/flux-base.safetensors`, LORA], 'flux-base.safetensors'],
        [['apply', BASE, `${dir}/flux-kohya-lora.safetensors`, LORA], 'flux-kohya-lora.safetensors'],
        [['convert', LORA, `${dir}/flux-kohya-lora.safetensors`, '--to', 'comfyui'], 'flux-kohya-lora.safetensors'],
        [['merge', `${dir}/flux-aitoolkit-lora.safetensors`, LORA, OTHER], 'flux-aitoolkit-lora.safetensors'],
        [['resize', LORA, `${dir}/flux-kohya-lora.safetensors`, '--rank', '2'], 'flux-kohya-lora.safetensors'],
        [['extract', BASE, 'samples/flux-finetune.safetensors', `${dir}/flux-finetune.safetensors`, '--rank', '2'], 'flux-finetune.safetensors'],
      ];
      for (const [args, victim] of cases) {
        const r = await cli(...args);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr, args.join(' ')).toContain('would overwrite');
        expect(r.stderr).toContain(victim);
        expect(r.stderr).toContain('inputs are never modified');
      }
      const run = await cli('run', path.join(home, 'graphs', 'convert-aitoolkit-to-kohya.json'), '--set', `output=${dir}/flux-aitoolkit-lora.safetensors`);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('would overwrite');
      await expectUntouched();
    });
  }

  it('a relative symlink to an input, and a hard link to one, are the input', async () => {
    for (const out of ['out/rel-file.safetensors', 'out/hard.safetensors']) {
      const r = await cli('convert', LORA, out, '--to', 'comfyui');
      expect(r.code, out).toBe(2);
      expect(r.stderr).toContain(`would overwrite ${tmp.path(LORA)}`);
    }
    await expectUntouched();
  });

  it('two outputs that are one file by different names are refused', async () => {
    const doc = {
      format: 'loraflow.recipe',
      schemaVersion: 1,
      nodes: {
        load: { type: 'load-lora', params: { path: LORA } },
        a: { type: 'save-lora', in: { lora: 'load.lora' }, params: { path: 'out/same.safetensors' } },
        b: { type: 'save-lora', in: { lora: 'load.lora' }, params: { path: 'dir-link/../out/same.safetensors' } },
      },
    };
    await import('node:fs/promises').then((fs) => fs.writeFile('two.json', JSON.stringify(doc)));
    const r = await cli('run', 'two.json');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is also written by node "a"/);
    expect(await readdir('out')).not.toContain('same.safetensors');
  });
});

describe('a save path that is not a file name', () => {
  it('is refused with exit 2 before any compute: the root itself, sub/.., a trailing separator, a link loop', async () => {
    await mkdir('out/sub', { recursive: true });
    for (const out of ['.', 'out', 'out/sub/..', 'out/sub/', 'out/new/', 'dir-link']) {
      const r = await cli('apply', BASE, out, LORA);
      expect(r.code, out).toBe(2);
      expect(r.stderr, out).toMatch(/is a directory|names a directory/);
    }
    const loop = await cli('convert', LORA, 'loop-a', '--to', 'comfyui');
    expect(loop.code).toBe(2);
    expect(loop.stderr).toContain('loop of symbolic links');
    const loopIn = await cli('convert', 'loop-a', 'out/x.safetensors', '--to', 'comfyui');
    expect(loopIn.code).toBe(2);
    expect(loopIn.stderr).toContain('loop of symbolic links');
    await expectUntouched();
    expect(await readdir(tmp.dir)).not.toContain('sub');
  });

  it('--set output=sub/ does not write a file named sub', async () => {
    const r = await cli('run', path.join(home, 'graphs', 'convert-aitoolkit-to-kohya.json'), '--set', 'output=out/fresh/');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('names a directory');
    expect(await readdir('out')).not.toContain('fresh');
  });
});

describe('the server refuses the same aliases', () => {
  let t: TestServer;
  beforeAll(async () => {
    // One models folder for inputs and outputs, as many users configure it, with a link back into itself.
    t = await startTestServer({ nodes: 'real', roots: { loras: 'samples', output: 'samples' } });
    await writeSamples(path.join(t.dir, 'samples'));
    await symlink('.', path.join(t.dir, 'samples', 'inputs'));
  });
  afterAll(async () => t?.close());

  it('a run whose save path reaches its input through a link inside the output root is invalid', async () => {
    const before = await readFile(path.join(t.dir, 'samples', 'flux-kohya-lora.safetensors'));
    const recipe = (save: string) =>
      testRecipe({
        load: { type: 'load-lora', params: { path: 'flux-kohya-lora.safetensors' } },
        save: { type: 'save-lora', in: { lora: 'load.lora' }, params: { path: save } },
      });
    const r = await t.post('/api/runs', { recipe: recipe('inputs/flux-kohya-lora.safetensors') });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_recipe');
    expect(r.body.error.message).toContain('would overwrite');
    const dir = await t.post('/api/runs', { recipe: recipe('.') });
    expect(dir.status).toBe(400);
    expect(dir.body.error.message).toMatch(/names a directory|is a directory/);
    expect((await readFile(path.join(t.dir, 'samples', 'flux-kohya-lora.safetensors'))).equals(before)).toBe(true);
    expect((await readdir(path.join(t.dir, 'samples'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
