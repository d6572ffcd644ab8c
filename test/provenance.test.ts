/**
 * The one provenance module (src/graph/provenance.ts): what a save node embeds, and how the CLI and
 * the server read it back — by value, and every way a stored record can be broken.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recipe as recipeCommand } from '../src/cli/commands/recipe.ts';
import { LoraflowError } from '../src/errors.ts';
import {
  PROVENANCE_KEY, ProvenanceError, bakeOverrides, decodeProvenance, provenanceMetadata, storedProvenance,
} from '../src/graph/index.ts';
import { writeSafetensors } from '../src/safetensors/writer.ts';
import { startTestServer, type TestServer } from './helpers/server-harness.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const recipe = {
  format: 'loraflow.recipe',
  schemaVersion: 1,
  nodes: {
    read: { type: 'test.const', v: '1.0.0', params: { value: 2 } },
    save: { type: 'test.write', v: '1.0.0', in: { value: 'read.value' }, params: { path: 'out/a.json', weights: [1, 0.5] } },
  },
  expose: { where: 'save.params.path', second: { path: 'save.params.weights.1', description: 'the second weight' } },
};

const ctx = (overrides: Record<string, unknown>) => ({ provenance: () => ({ recipe, overrides, version: '9.8.7', nodeId: 'save' }) });

describe('provenance', () => {
  it('is written under loraflow.recipe as JSON naming the recipe, overrides, version and node', () => {
    const meta = provenanceMetadata(ctx({ where: 'b.json' }));
    expect(Object.keys(meta)).toEqual([PROVENANCE_KEY]);
    expect(PROVENANCE_KEY).toBe('loraflow.recipe');
    expect(JSON.parse(meta[PROVENANCE_KEY]!)).toEqual({ recipe, overrides: { where: 'b.json' }, version: '9.8.7', node: 'save' });
    expect(storedProvenance({ other: 'x', ...meta })).toBe(meta[PROVENANCE_KEY]);
    expect(storedProvenance({ other: 'x' })).toBeUndefined();
    expect(storedProvenance(undefined)).toBeUndefined();
  });

  it('decodes what it encodes, with the overrides baked into the params they name', () => {
    const got = decodeProvenance(provenanceMetadata(ctx({ where: 'b.json', second: 3 }))[PROVENANCE_KEY]!, 'f.safetensors');
    expect(got).toMatchObject({ overrides: { where: 'b.json', second: 3 }, version: '9.8.7', nodeId: 'save' });
    expect(got.recipe.nodes).toEqual({
      read: recipe.nodes.read,
      save: { ...recipe.nodes.save, params: { path: 'b.json', weights: [1, 3] } },
    });
    // the input is not touched
    expect(recipe.nodes.save.params).toEqual({ path: 'out/a.json', weights: [1, 0.5] });
  });

  it('reads a record without overrides, version or node', () => {
    const got = decodeProvenance(JSON.stringify({ recipe }), 'f');
    expect(got).toEqual({ recipe, overrides: {}, version: undefined, nodeId: undefined });
  });

  it.each([
    ['not JSON', '{recipe', /^f\.safetensors: the "loraflow\.recipe" metadata is not JSON/, false],
    ['not an object', '"text"', /^f\.safetensors: the "loraflow\.recipe" metadata has an unexpected shape$/, true],
    ['overrides of the wrong type', JSON.stringify({ recipe, overrides: [1] }), /unexpected shape$/, true],
    ['a recipe that is not one', JSON.stringify({ recipe: { format: 'other', nodes: {} } }), /^f\.safetensors: the stored recipe does not match the recipe schema$/, true],
    ['an override the recipe does not expose', JSON.stringify({ recipe, overrides: { nope: 1 } }), /^f\.safetensors: provenance names override "nope", which the embedded recipe does not expose$/, false],
  ])('refuses %s, as the input\'s fault, naming the file', (_what, stored, message, hasIssues) => {
    let error: unknown;
    try {
      decodeProvenance(stored, 'f.safetensors');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ProvenanceError);
    expect(error).toBeInstanceOf(LoraflowError);
    const e = error as ProvenanceError;
    expect(e.message).toMatch(message);
    expect([e.fault, e.code]).toEqual(['input', 'BAD_PROVENANCE']);
    expect(e.zodError !== undefined).toBe(hasIssues);
  });

  it('bakeOverrides sets deep paths and keeps every other node as it was', () => {
    const baked = bakeOverrides(recipe, { second: 7 }) as typeof recipe;
    expect(baked.nodes.save.params).toEqual({ path: 'out/a.json', weights: [1, 7] });
    expect(baked.nodes.read).toBe(recipe.nodes.read);
    expect(baked.expose).toBe(recipe.expose);
  });
});

describe('loraflow recipe FILE', () => {
  const tmp = useTempDir('loraflow-provenance-');
  const file = async (name: string, metadata: Record<string, string>) => {
    const p = tmp.path(name);
    await writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [1], data: new Uint8Array(4) }], { metadata });
    return p;
  };

  it('writes the recovered recipe with the overrides baked in', async () => {
    const p = await file('ok.safetensors', provenanceMetadata(ctx({ where: 'b.json' })));
    const out = tmp.path('ok.json');
    const stderr: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => (stderr.push(chunk), true)) as typeof process.stderr.write;
    try {
      expect(await recipeCommand.run([p, '-o', out])).toBe(0);
    } finally {
      process.stderr.write = write;
    }
    expect(JSON.parse(await readFile(out, 'utf8')).nodes.save.params).toEqual({ path: 'b.json', weights: [1, 0.5] });
    expect(stderr.join('')).toContain('(written by node "save", loraflow 9.8.7); overrides applied: where="b.json"');
  });

  it('names the schema issues of a broken stored recipe in the message', async () => {
    const p = await file('bad.safetensors', { [PROVENANCE_KEY]: JSON.stringify({ recipe: { ...recipe, schemaVersion: 7 } }) });
    await expect(recipeCommand.run([p])).rejects.toThrow(/bad\.safetensors: the stored recipe does not match the recipe schema \(schemaVersion: .*expected 1\)$/);
  });

  it('says so when the file carries no recipe', async () => {
    const p = await file('plain.safetensors', { other: 'x' });
    await expect(recipeCommand.run([p])).rejects.toThrow(/plain\.safetensors: no embedded recipe \(metadata key loraflow\.recipe\)/);
  });
});

describe('POST /api/recipe-from-file with broken provenance', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(() => t.close());
  const upload = async (stored: string) => {
    const p = `${t.dir}/broken.safetensors`;
    await writeSafetensors(p, [{ name: 'w', dtype: 'F32', shape: [1], data: new Uint8Array(4) }], { metadata: { [PROVENANCE_KEY]: stored } });
    return t.post('/api/recipe-from-file?name=broken.safetensors', new Uint8Array(await readFile(p)));
  };

  it('is a 422 bad_provenance with zod\'s issues as details', async () => {
    const r = await upload(JSON.stringify({ recipe: { ...recipe, format: 'other' } }));
    expect(r.status).toBe(422);
    expect(r.body.error).toMatchObject({ code: 'bad_provenance', message: 'broken.safetensors: the stored recipe does not match the recipe schema' });
    expect(r.body.error.details.map((d: { path: string }) => d.path)).toEqual(['format']);
  });

  it('has no details when the failure is not a schema one', async () => {
    const r = await upload(JSON.stringify({ recipe, overrides: { nope: 1 } }));
    expect(r.status).toBe(422);
    expect(r.body.error).toEqual({ code: 'bad_provenance', message: 'broken.safetensors: provenance names override "nope", which the embedded recipe does not expose' });
  });
});
