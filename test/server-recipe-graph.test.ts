/**
 * The editor's graph ⇄ recipe conversion (ui/recipe-graph.js), run in Node against the real
 * litegraph package and the real node definitions: every example in graphs/ survives
 * recipe → litegraph graph → recipe unchanged, params are read by widget name, list inputs keep
 * their order, unknown node types are kept verbatim, and the editor's link rule is the engine's.
 */
import { readdir, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import * as litegraph from '@comfyorg/litegraph';
import { nodeDefinitionsJson, portAccepts as enginePortAccepts, recipeToJson, withoutUi } from '../src/graph/index.ts';
import { registry } from '../nodes/index.ts';

/** The slice of a litegraph node these tests touch. */
interface AnyNode {
  title: string;
  properties: Record<string, unknown>;
  widgets: { name: string; value: unknown }[];
  inputs: { name: string; link: number | null }[];
  findInputSlot(name: string): number;
  connect(slot: number, target: AnyNode, targetSlot: number): unknown;
  disconnectInput(slot: number): unknown;
}
const ui = (name: string) => import(new URL(`../ui/${name}`, import.meta.url).href) as Promise<any>;
const { registerNodeTypes, portAccepts, listSlots } = await ui('node-types.js');
const { recipeToGraph, graphToRecipe, registerUnknownNodeType } = await ui('recipe-graph.js');
const { paramCodec } = await ui('param-widgets.js');

const defs = nodeDefinitionsJson(registry.list());
const registered: Map<string, string> = registerNodeTypes(litegraph, defs);
registerUnknownNodeType(litegraph);
const { LiteGraph, LGraph } = litegraph;

const graphsDir = new URL('../graphs/', import.meta.url);
const examples = (await readdir(graphsDir)).filter((f) => f.endsWith('.json')).sort();
const load = async (f: string) => JSON.parse(await readFile(new URL(f, graphsDir), 'utf8')) as Record<string, any>;

function toGraph(recipe: unknown) {
  const graph = new LGraph();
  const notes: string[] = recipeToGraph(recipe, graph, { LiteGraph, registered });
  const node = (id: string) => (graph as unknown as { _nodes: AnyNode[] })._nodes.find((n) => n.properties.rid === id)!;
  return { graph, notes, node };
}

describe('recipe → graph → recipe', () => {
  it('has examples to check', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  it.each(examples)('%s comes back unchanged (positions in ui)', async (file) => {
    const recipe = await load(file);
    const { graph, notes } = toGraph(recipe);
    expect(notes).toEqual([]);
    const back = graphToRecipe(graph, recipe);
    expect(recipeToJson(withoutUi(back))).toBe(recipeToJson(withoutUi(recipe)));
    for (const [id, n] of Object.entries(recipe.ui?.nodes ?? {})) expect(back.ui.nodes[id].pos, id).toEqual((n as { pos: number[] }).pos);
  });

  it('reads params by widget name, leaving out defaults the recipe did not name', async () => {
    const recipe = await load('merge-aitoolkit-kohya.json');
    const { graph, node } = toGraph(recipe);
    const merge = node('merge');
    const widget = (name: string) => merge.widgets.find((w) => w.name === name)!;
    expect(merge.widgets.map((w) => w.name)).toEqual(defs['merge-loras']!.paramOrder);
    expect(widget('method').value).toBe('concat');
    expect(widget('weights').value).toBe('[1,0.8]');
    widget('method').value = 'svd';
    widget('rank').value = '16';
    widget('weights').value = '';
    const back = graphToRecipe(graph, recipe);
    expect(back.nodes.merge.params).toEqual({ method: 'svd', rank: 16 });
    // `refactor` (default false) stays out; `format` of save was named by the recipe and stays in.
    expect(back.nodes.save.params).toEqual(recipe.nodes.save.params);
  });

  it('gives new nodes readable ids and keeps list inputs in socket order, one spare socket', async () => {
    const graph = new LGraph();
    const add = (type: string) => {
      const n = LiteGraph.createNode(registered.get(type)!)!;
      graph.add(n);
      return n as unknown as AnyNode;
    };
    const a = add('load-lora');
    const b = add('load-lora');
    const m = add('merge-loras');
    a.widgets[0]!.value = 'a.safetensors';
    b.widgets[0]!.value = 'b.safetensors';
    b.connect(0, m, m.findInputSlot('loras.0'));
    expect(m.inputs.map((i) => i.name)).toEqual(['loras.0', 'loras.1']);
    a.connect(0, m, m.findInputSlot('loras.1'));
    expect(m.inputs.map((i) => i.name)).toEqual(['loras.0', 'loras.1', 'loras.2']);
    let r = graphToRecipe(graph);
    expect(Object.keys(r.nodes).sort()).toEqual(['load_lora', 'load_lora_2', 'merge_loras']);
    expect(r.nodes.merge_loras.in).toEqual({ loras: ['load_lora_2.lora', 'load_lora.lora'] });
    // Unplugging the first LoRA closes the gap.
    m.disconnectInput(m.findInputSlot('loras.0'));
    expect(listSlots(m, 'loras').map((i: number) => m.inputs[i]!.link !== null)).toEqual([true, false]);
    r = graphToRecipe(graph);
    expect(r.nodes.merge_loras.in).toEqual({ loras: ['load_lora.lora'] });
  });

  it('keeps node types it does not know, verbatim, links included', async () => {
    const recipe = await load('merge-aitoolkit-kohya.json');
    recipe.nodes.mystery = { type: 'third-party.thing', v: '3.1.0', in: { x: 'merge.lora' }, params: { deep: { a: [1, 2] } } };
    const { graph, notes, node } = toGraph(recipe);
    expect(notes).toEqual(['node "mystery": type "third-party.thing" is not known to this loraflow; kept unchanged']);
    expect(node('mystery').title).toContain('third-party.thing');
    const back = graphToRecipe(graph, recipe);
    expect(back.nodes.mystery).toEqual(recipe.nodes.mystery);
  });
});

describe('widgets from param schemas', () => {
  it('maps numbers with ranges, enums, booleans, file paths and optional values', () => {
    const num = paramCodec('alpha', { type: 'number', minimum: 0, maximum: 2, multipleOf: 0.05, default: 1 }, false);
    expect([num.widget, num.options.min, num.options.max, num.options.step2]).toEqual(['number', 0, 2, 0.05]);
    expect(num.fromWidget(5)).toBe(2);
    const int = paramCodec('rank', { type: 'integer', minimum: 1, maximum: 9007199254740991, default: 4 }, false);
    expect([int.options.min, int.options.max, int.fromWidget(3.6)]).toEqual([1, undefined, 4]);
    const en = paramCodec('format', { type: 'string', enum: ['kohya', 'diffusers'], default: 'kohya' }, false);
    expect([en.widget, en.options.values]).toEqual(['combo', ['kohya', 'diffusers']]);
    const flag = paramCodec('refactor', { type: 'boolean', default: false }, false);
    expect([flag.widget, flag.fromWidget(1)]).toEqual(['toggle', true]);
    const file = paramCodec('path', { type: 'string', minLength: 1, 'x-path': { kind: 'loras', mode: 'read' } }, true);
    expect([file.widget, file.kind, file.fromWidget('')]).toEqual(['combo', 'path', undefined]);
    const out = paramCodec('path', { type: 'string', 'x-path': { kind: 'output', mode: 'write' } }, true);
    expect(out.widget).toBe('text');
    const opt = paramCodec('energy', { type: 'number', exclusiveMinimum: 0, maximum: 1 }, false);
    expect([opt.widget, opt.fromWidget(''), opt.fromWidget('0.9'), opt.toWidget(undefined)]).toEqual(['text', undefined, 0.9, '']);
    const union = paramCodec('rank', { anyOf: [{ type: 'number' }, { type: 'string', enum: ['auto'] }], default: 'auto' }, false);
    expect([union.fromWidget('auto'), union.fromWidget('8')]).toEqual(['auto', 8]);
  });

  it('connects sockets by the engine’s port rule', () => {
    const types = ['LORA', 'LORA<flux>', 'LORA<sdxl>', 'MODEL', 'MODEL<flux>', 'REPORT', '*'];
    for (const input of types) {
      for (const output of types.filter((x) => x !== '*')) {
        expect(portAccepts(input, output), `${output} → ${input}`).toBe(enginePortAccepts(input, output));
      }
    }
    expect(portAccepts('LORA,MODEL', 'MODEL<flux>')).toBe(enginePortAccepts(['LORA', 'MODEL'], 'MODEL<flux>'));
  });
});
