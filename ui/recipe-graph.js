// litegraph graph ⇄ loraflow recipe. The recipe is what is saved and run; the graph is a view of it.
//  - node ids: the recipe id lives in node.properties.rid (litegraph ids stay numeric);
//  - params: read from and written to widgets by param name; values equal to their default are left
//    out unless the recipe named them; params no widget shows are carried through untouched;
//  - links: `in` entries by input and output name ("merge.lora"); list inputs in socket order;
//  - positions, sizes, titles-as-layout and the viewport go in the recipe's `ui` block;
//  - node types this loraflow does not know are kept verbatim (shown as placeholder nodes).
// No DOM use: runs in the browser and in Node (tests).

import { listSlotOf, listSlots, litegraphType } from './node-types.js';
import { sameJson } from './param-widgets.js';

const UNKNOWN_TYPE = 'loraflow/unknown';
const COL_W = 330;
const ROW_GAP = 40;

/** Registers the placeholder class for node types that are not in /api/nodes. */
export function registerUnknownNodeType({ LiteGraph, LGraphNode }) {
  class UnknownNode extends LGraphNode {
    static title = 'Unknown node';
    constructor(title) {
      super(title ?? 'Unknown node');
      this.lf = { unknown: true, raw: {}, problems: [] };
      this.properties = { ...(this.properties ?? {}), rid: null };
      this.color = '#6b2e31';
      this.bgcolor = '#3a2426';
      this.size = [260, 60];
    }
  }
  LiteGraph.registerNodeType(UNKNOWN_TYPE, UnknownNode);
}

/** Recipe ids are identifiers; derive one from the node type (`merge-loras` → `merge_loras_2`). */
export function freshId(type, taken) {
  const stem = String(type).split(/[./]/).pop().replace(/[^A-Za-z0-9_]/g, '_').replace(/^([^A-Za-z_])/, '_$1') || 'node';
  if (!taken.has(stem)) return stem;
  for (let i = 2; ; i++) if (!taken.has(`${stem}_${i}`)) return `${stem}_${i}`;
}

/** Column = longest chain of links before the node; used when a recipe has no positions. */
function autoLayout(recipe) {
  const nodes = recipe.nodes ?? {};
  const depth = new Map();
  const deps = (id) => Object.values(nodes[id]?.in ?? {}).flat().map((l) => String(l).split('.')[0]).filter((d) => d in nodes);
  const visit = (id, stack = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (stack.has(id)) return 0;
    stack.add(id);
    const d = Math.max(-1, ...deps(id).map((x) => visit(x, stack))) + 1;
    stack.delete(id);
    depth.set(id, d);
    return d;
  };
  Object.keys(nodes).forEach((id) => visit(id));
  const rows = new Map();
  const pos = {};
  for (const id of Object.keys(nodes)) {
    const col = depth.get(id);
    const row = rows.get(col) ?? 0;
    rows.set(col, row + 1);
    pos[id] = [40 + col * COL_W, 40 + row * (150 + ROW_GAP)];
  }
  return pos;
}

/**
 * Replaces the graph's content with the recipe. Returns the list of things it could not show
 * (e.g. a link to an output the node does not have), so the editor can say so.
 */
export function recipeToGraph(recipe, graph, { LiteGraph, registered }) {
  graph.clear();
  const notes = [];
  const nodes = recipe.nodes ?? {};
  const uiNodes = recipe.ui?.nodes ?? {};
  const auto = autoLayout(recipe);
  const byId = new Map();

  for (const [id, raw] of Object.entries(nodes)) {
    const lgType = registered.get(raw.type);
    const node = LiteGraph.createNode(lgType ?? UNKNOWN_TYPE);
    node.properties.rid = id;
    const ui = uiNodes[id] ?? {};
    if (lgType) {
      const def = node.lf.def;
      node.lf.v = raw.v ?? def.v;
      node.title = raw.title ?? def.title;
      const params = raw.params ?? {};
      node.lf.givenParams = new Set(Object.keys(params));
      for (const c of node.lf.codecs) {
        const w = node.widgets.find((x) => x.name === c.name);
        if (w) w.value = c.toWidget(params[c.name]);
      }
      // Params of an older node version, or misspelt: kept and written back, the validator names them.
      node.lf.extraParams = Object.fromEntries(Object.entries(params).filter(([k]) => !node.lf.codecs.some((c) => c.name === k)));
      for (const k of Object.keys(node.lf.extraParams)) notes.push(`node "${id}": param "${k}" is not a param of ${raw.type} ${def.v}; kept as is`);
    } else {
      node.lf.raw = structuredClone(raw);
      node.title = `⚠ ${raw.type ?? 'untyped'} (unknown)`;
      for (const name of Object.keys(raw.in ?? {})) node.addInput(name, '*');
      notes.push(`node "${id}": type "${raw.type}" is not known to this loraflow; kept unchanged`);
    }
    node.pos = [...(ui.pos ?? auto[id])];
    graph.add(node);
    if (Array.isArray(ui.size)) {
      node.size = [Math.max(ui.size[0], node.size[0]), Math.max(ui.size[1], node.size[1])];
      node.lf.sizeGiven = true;
    }
    if (ui.collapsed) node.collapse(true);
    byId.set(id, node);
  }

  for (const g of Array.isArray(recipe.ui?.groups) ? recipe.ui.groups : []) {
    if (!LiteGraph.LGraphGroup || !Array.isArray(g?.bounding) || g.bounding.length !== 4) continue;
    const group = new LiteGraph.LGraphGroup(String(g.title ?? 'Group'));
    group.configure({ id: -1, title: String(g.title ?? 'Group'), bounding: g.bounding.map(Number), color: g.color, flags: {} });
    graph.add(group);
  }

  // Unknown nodes get the outputs other nodes link to, so those links can be drawn.
  for (const raw of Object.values(nodes)) {
    for (const link of Object.values(raw.in ?? {}).flat()) {
      const [src, out] = String(link).split('.');
      const n = byId.get(src);
      if (n?.lf.unknown && n.findOutputSlot(out) < 0) n.addOutput(out, '*');
    }
  }

  for (const [id, raw] of Object.entries(nodes)) {
    const dst = byId.get(id);
    for (const [input, value] of Object.entries(raw.in ?? {})) {
      const links = Array.isArray(value) ? value : [value];
      links.forEach((link, k) => {
        const [srcId, outName] = String(link).split('.');
        const src = byId.get(srcId);
        const outSlot = src ? src.findOutputSlot(outName) : -1;
        let inSlot = dst.findInputSlot(input);
        if (inSlot < 0 && !dst.lf.unknown) {
          const group = listSlots(dst, input);
          inSlot = group[k] ?? group.at(-1) ?? -1;
        }
        if (!src || outSlot < 0 || inSlot < 0) {
          notes.push(`node "${id}": link ${input} ← "${link}" cannot be drawn (${!src ? `no node "${srcId}"` : outSlot < 0 ? `"${srcId}" has no output "${outName}"` : `no input "${input}"`})`);
          if (dst.lf.unknown) return;
          (dst.lf.danglingLinks ??= {})[input] = value;
          return;
        }
        src.connect(outSlot, dst, inSlot);
      });
    }
  }
  return notes;
}

/** A node taller or wider than its content needs was resized by the user: keep that size. */
function userResized(n) {
  if (n.lf?.unknown) return false;
  const min = n.computeSize();
  return Math.round(n.size[0]) > Math.round(Math.max(min[0], 240)) + 1 || Math.round(n.size[1]) > Math.round(min[1]) + 1;
}

function linkOf(graph, linkId) {
  return graph._links?.get?.(linkId) ?? graph.links?.[linkId];
}

function sourceName(graph, linkId) {
  const link = linkOf(graph, linkId);
  if (!link) return undefined;
  const src = graph.getNodeById(link.origin_id);
  const out = src?.outputs?.[link.origin_slot];
  if (!src || !out) return undefined;
  return `${src.properties.rid}.${out.name}`;
}

/** Gives every node without a recipe id one (new nodes from the palette), stable from then on. */
export function assignIds(graph) {
  const nodes = graph._nodes ?? [];
  const taken = new Set(nodes.map((n) => n.properties?.rid).filter(Boolean));
  for (const n of [...nodes].sort((a, b) => a.id - b.id)) {
    if (n.properties.rid) continue;
    const id = freshId(n.lf?.def?.type ?? 'node', taken);
    n.properties.rid = id;
    taken.add(id);
  }
}

/**
 * The recipe the graph shows. `base` is the recipe it was loaded from (meta, outputs, expose and
 * any other top-level fields carry over; entries naming deleted nodes are dropped).
 */
export function graphToRecipe(graph, base = {}, viewport) {
  assignIds(graph);
  const nodes = {};
  const uiNodes = {};
  for (const n of [...(graph._nodes ?? [])].sort((a, b) => String(a.properties.rid).localeCompare(String(b.properties.rid)))) {
    const id = n.properties.rid;
    if (n.lf?.unknown) {
      const raw = structuredClone(n.lf.raw);
      const inputs = {};
      for (const inp of n.inputs ?? []) {
        const src = inp.link != null ? sourceName(graph, inp.link) : undefined;
        inputs[inp.name] = src ?? raw.in?.[inp.name];
      }
      if (Object.keys(inputs).length > 0) raw.in = inputs;
      nodes[id] = raw;
    } else {
      const def = n.lf.def;
      const entry = { type: def.type, v: n.lf.v ?? def.v };
      if (n.title && n.title !== def.title) entry.title = n.title;
      const inputs = { ...(n.lf.danglingLinks ?? {}) };
      for (const [name, port] of Object.entries(def.inputs)) {
        if (port.list) {
          const links = listSlots(n, name).map((i) => n.inputs[i].link).filter((l) => l != null).map((l) => sourceName(graph, l)).filter(Boolean);
          if (links.length > 0) inputs[name] = links;
        } else {
          const slot = n.findInputSlot(name);
          const l = slot >= 0 ? n.inputs[slot].link : null;
          const src = l != null ? sourceName(graph, l) : undefined;
          if (src) inputs[name] = src;
        }
      }
      if (Object.keys(inputs).length > 0) entry.in = inputs;
      const params = { ...n.lf.extraParams };
      for (const c of n.lf.codecs) {
        const w = n.widgets?.find((x) => x.name === c.name);
        if (!w) continue;
        const v = c.fromWidget(w.value);
        if (v === undefined) continue;
        if (c.hasDefault && sameJson(v, c.default) && !n.lf.givenParams.has(c.name)) continue;
        params[c.name] = v;
      }
      if (Object.keys(params).length > 0) entry.params = params;
      nodes[id] = entry;
    }
    // litegraph keeps pos/size in Float32Arrays; the recipe wants plain integer pairs.
    const ui = { pos: Array.from(n.pos, Math.round) };
    if (n.lf?.sizeGiven || userResized(n)) ui.size = Array.from(n.size, Math.round);
    if (n.flags?.collapsed) ui.collapsed = true;
    uiNodes[id] = ui;
  }

  const ids = new Set(Object.keys(nodes));
  const recipe = { ...structuredClone(base), format: 'loraflow.recipe', schemaVersion: base.schemaVersion ?? 1, nodes };
  if (Array.isArray(base.outputs)) {
    const kept = base.outputs.filter((o) => ids.has(o));
    if (kept.length > 0) recipe.outputs = kept;
    else delete recipe.outputs;
  }
  if (base.expose) {
    const kept = Object.fromEntries(Object.entries(base.expose).filter(([, e]) => ids.has(String(typeof e === 'string' ? e : e?.path).split('.')[0])));
    if (Object.keys(kept).length > 0) recipe.expose = kept;
    else delete recipe.expose;
  }
  recipe.ui = { ...(base.ui ?? {}), nodes: uiNodes };
  // groups are layout only: their title, box and colour
  const groups = (graph._groups ?? []).map((g) => ({ title: g.title, bounding: Array.from(g._bounding ?? g.bounding, Math.round), ...(g.color ? { color: g.color } : {}) }));
  if (groups.length > 0) recipe.ui.groups = groups;
  else delete recipe.ui.groups;
  if (viewport) recipe.ui.viewport = viewport;
  return recipe;
}

export { listSlotOf, litegraphType };
