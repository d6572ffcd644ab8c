import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import {
  RecipeSchema, migrateRecipeDoc, nodeDefinitionsJson, parseRecipeText, portAccepts, readRecipeFile, recipeToJson, validateRecipe,
} from '../src/graph/index.ts';
import { recipeSchemaText, SCHEMA_FILE } from '../schema/generate.ts';
import { registry } from './graph-test-nodes.ts';

const doc = {
  ui: { nodes: { b: { pos: [3, 4] } } },
  nodes: {
    b: { params: { z: 1, a: 2 }, in: { values: ['a.value'] }, v: '1.0.0', type: 'test.sum' },
    a: { v: '1.0.0', type: 'test.const', params: { value: 3 } },
  },
  outputs: ['b', 'a'],
  schemaVersion: 1,
  expose: { w: 'b.params.weights' },
  format: 'loraflow.recipe',
  meta: { name: 'x', author: 'me' },
};

describe('recipe documents', () => {
  it('publishes a JSON Schema that matches the zod schema (run `node --import tsx schema/generate.ts` when this fails)', async () => {
    expect(await readFile(SCHEMA_FILE, 'utf8')).toBe(recipeSchemaText());
  });

  it('saves canonically: fixed top-level order, sorted keys, ui last, 2-space JSON, newline at the end', () => {
    const text = recipeToJson(doc);
    expect(text.endsWith('}\n')).toBe(true);
    expect(Object.keys(JSON.parse(text))).toEqual(['format', 'schemaVersion', 'meta', 'nodes', 'outputs', 'expose', 'ui']);
    const nodes = JSON.parse(text).nodes;
    expect(Object.keys(nodes)).toEqual(['a', 'b']);
    expect(Object.keys(nodes.b)).toEqual(['type', 'v', 'in', 'params']);
    expect(Object.keys(nodes.b.params)).toEqual(['a', 'z']);
    expect(JSON.parse(text).outputs).toEqual(['a', 'b']);
    expect(text).toContain('\n  "format": "loraflow.recipe",\n');
    // Same content in any key order → same bytes; saving is idempotent.
    const reverseKeys = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(reverseKeys) : typeof v === 'object' && v !== null ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseKeys(x)])) : v;
    const shuffled = reverseKeys(doc) as Record<string, unknown>;
    expect(Object.keys(shuffled)[0]).toBe('meta');
    expect(recipeToJson(shuffled)).toBe(text);
    expect(recipeToJson(JSON.parse(text))).toBe(text);
  });

  it('reads YAML and JSON to the same document, and names the file in parse errors', () => {
    expect(parseRecipeText(YAML.stringify(doc), 'r.yaml')).toEqual(doc);
    expect(parseRecipeText(JSON.stringify(doc), 'r.json')).toEqual(doc);
    expect(() => parseRecipeText('{"format": ', 'broken.json')).toThrow(/^broken\.json: not valid JSON/);
    expect(() => parseRecipeText('a: [1\nb: 2', 'broken.yaml')).toThrow(/^broken\.yaml: not valid YAML/);
    expect(() => parseRecipeText('a: 1\na: 2', 'dup.yaml')).toThrow(/dup\.yaml/);
  });

  it('reports a missing recipe file by name', async () => {
    await expect(readRecipeFile('/nonexistent/r.json')).rejects.toThrow('/nonexistent/r.json: no such file');
  });

  it('the zod schema accepts a complete recipe and refuses unknown top-level keys', () => {
    expect(RecipeSchema.safeParse(doc).success).toBe(true);
    expect(RecipeSchema.safeParse({ ...doc, extra: 1 }).success).toBe(false);
    expect(RecipeSchema.safeParse({ ...doc, nodes: { a: { type: 'x', v: '1' } } }).success).toBe(false);
  });
});

describe('migrations', () => {
  it('applies the schemaVersion table step by step, and refuses gaps and newer versions', () => {
    const table = {
      1: (d: Record<string, unknown>) => ({ ...d, nodes: d.graph, graph: undefined }),
      2: (d: Record<string, unknown>) => ({ ...d, outputs: [d.target], target: undefined }),
    };
    const m = migrateRecipeDoc({ schemaVersion: 1, graph: { a: 1 }, target: 'a' }, table, 3);
    expect(m).toEqual({ ok: true, value: { schemaVersion: 3, nodes: { a: 1 }, graph: undefined, outputs: ['a'], target: undefined }, applied: ['recipe schemaVersion 1 → 2', 'recipe schemaVersion 2 → 3'] });
    expect(migrateRecipeDoc({ schemaVersion: 1 }, { 1: table[1] }, 3)).toEqual({ ok: false, message: 'no migration from schemaVersion 2 to 3' });
    expect(migrateRecipeDoc({ schemaVersion: 4 }, table, 3)).toMatchObject({ ok: false, message: expect.stringContaining('newer') });
    expect(migrateRecipeDoc({ schemaVersion: '1' }, table, 3)).toMatchObject({ ok: false });
  });

  it('upgrades a node across a major version with its migration and records the new version', () => {
    const r = validateRecipe(
      { format: 'loraflow.recipe', schemaVersion: 1, nodes: { c: { type: 'test.const', v: '1.0.0' }, add: { type: 'test.add', v: '1.0.0', in: { a: 'c.value' }, params: { factor: 2 } } }, outputs: ['add'] },
      registry,
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.plan.nodes.get('add')!.params).toEqual({ scale: 2 });
    expect((r.plan.recipe.nodes as Record<string, { v: string; params: unknown }>).add).toEqual({ type: 'test.add', v: '2.1.0', in: { a: 'c.value' }, params: { scale: 2 } });
  });

  it('reads a node without v as the installed version and writes that version into the normalised recipe', () => {
    const r = validateRecipe(
      { format: 'loraflow.recipe', schemaVersion: 1, nodes: { c: { type: 'test.const', params: { value: 2 } }, add: { type: 'test.add', in: { a: 'c.value' }, params: { scale: 3 } } }, outputs: ['add'] },
      registry,
    );
    expect(r.problems).toEqual([]);
    if (!r.ok) return;
    const nodes = r.plan.recipe.nodes as Record<string, { v: string }>;
    expect(nodes.add!.v).toBe('2.1.0');
    expect(nodes.c!.v).toBe(registry.get('test.const')!.v);
    expect(r.plan.nodes.get('add')!.params).toEqual({ scale: 3 });
  });
});

describe('port types', () => {
  it.each([
    ['LORA', 'LORA', true],
    ['LORA', 'LORA<flux>', true],
    ['LORA<flux>', 'LORA', true],
    ['LORA<flux>', 'LORA<flux>', true],
    ['LORA<flux>', 'LORA<sdxl>', false],
    ['LORA', 'MODEL', false],
    ['*', 'MODEL<flux>', true],
  ] as const)('input %s accepts %s: %s', (input, output, ok) => {
    expect(portAccepts(input, output)).toBe(ok);
  });

  it('a union input accepts any of its members', () => {
    expect(portAccepts(['LORA', 'MODEL'], 'MODEL<flux>')).toBe(true);
    expect(portAccepts(['LORA', 'MODEL'], 'REPORT')).toBe(false);
  });
});

describe('node definitions for the editor', () => {
  it('export params as JSON Schema with defaults, ranges, descriptions and file kinds', () => {
    const defs = nodeDefinitionsJson(registry.list());
    expect(Object.keys(defs)).toEqual(registry.types());
    const c = defs['test.const']!;
    expect(c.paramsSchema).toMatchObject({
      type: 'object',
      properties: { value: { type: 'integer', default: 1, minimum: -1000, maximum: 1000, description: 'the number' } },
      additionalProperties: false,
    });
    expect(defs['test.read']!.paramsSchema).toMatchObject({ properties: { path: { type: 'string', 'x-path': { kind: 'loras', mode: 'read' } } }, required: ['path'] });
    expect(defs['test.sum']!.inputs).toEqual({ values: { type: 'NUM', optional: false, list: true } });
    expect(defs['test.write']).toMatchObject({ output: true, cacheable: true, paramOrder: ['path', 'delayMs'], outputs: { report: { type: 'REPORT' } } });
    expect(JSON.parse(JSON.stringify(defs))).toEqual(defs);
  });
});
