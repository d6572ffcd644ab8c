// Registers one litegraph node class per loraflow node definition (from GET /api/nodes): typed
// input and output sockets named like the definition's ports, one widget per param (by name), and
// list inputs as a growing column of sockets (`loras.0`, `loras.1`, … always one spare).
// Pure with respect to the DOM: it takes the litegraph module as an argument, so it also runs in Node.

import { paramCodecs } from './param-widgets.js';

/** Litegraph type path for a definition; the text before the last "/" becomes its menu category. */
export const litegraphType = (def) => `${def.category || 'other'}/${def.type}`;

const LIST_SLOT = /^(.+)\.(\d+)$/;

/** `{ base, index }` for a list-input socket name, undefined for a plain socket. */
export function listSlotOf(name) {
  const m = LIST_SLOT.exec(name);
  return m ? { base: m[1], index: Number(m[2]) } : undefined;
}

/** Port types are `NAME` or `NAME<refinement>`; an input may accept several. */
function parsePort(t) {
  const m = /^([^<]+)(?:<(.+)>)?$/.exec(String(t));
  return m ? { base: m[1], refinement: m[2] } : { base: String(t) };
}

/**
 * The engine's link rule (src/graph/ports.ts), for litegraph's drag-and-drop: same base name; an
 * unrefined side accepts any refinement; two different refinements never connect; `*` takes anything.
 */
export function portAccepts(inputType, outputType) {
  const accepted = String(inputType).split(',');
  const out = parsePort(outputType);
  return accepted.some((t) => {
    const inp = parsePort(t);
    if (inp.base === '*') return true;
    if (inp.base !== out.base) return false;
    return !inp.refinement || !out.refinement || inp.refinement === out.refinement;
  });
}

export function registerNodeTypes({ LiteGraph, LGraphNode }, defs, hooks = {}) {
  LiteGraph.isValidConnection = (a, b) => {
    // Called as (output type, input type) by litegraph; either may be empty / "*".
    if (!a || !b || a === '*' || b === '*') return true;
    return portAccepts(b, a);
  };
  const registered = new Map();
  for (const def of Object.values(defs)) {
    const codecs = paramCodecs(def);
    const inputTypeString = (p) => (Array.isArray(p.type) ? p.type.join(',') : p.type);

    class LoraflowNode extends LGraphNode {
      static title = def.title;
      static desc = def.description;
      static lfDef = def;

      constructor(title) {
        super(title ?? def.title);
        this.lf = { LiteGraph, def, codecs, state: undefined, progress: undefined, message: undefined, problems: [], extraParams: {}, givenParams: new Set(), v: def.v };
        this.properties = { ...(this.properties ?? {}), rid: null };
        for (const [name, port] of Object.entries(def.inputs)) {
          const type = inputTypeString(port);
          if (port.list) this.addInput(`${name}.0`, type, { label: `${name} 1`, shape: LiteGraph.GRID_SHAPE });
          else this.addInput(name, type, port.optional ? { shape: LiteGraph.ARROW_SHAPE, label: `${name} (optional)` } : undefined);
        }
        for (const [name, port] of Object.entries(def.outputs)) this.addOutput(name, port.type);
        for (const c of codecs) {
          const options = { ...c.options };
          // File combos list the root's files at the moment the user opens them.
          if (c.kind === 'path' && c.widget === 'combo' && hooks.pathValues) options.values = () => hooks.pathValues(c.path);
          const w = this.addWidget(c.widget, c.name, c.initial, () => hooks.onEdit?.(this), options);
          if (c.kind === 'path') w.lfPath = c.path;
          // File combos open the editor's own menu (names with their format and family beside them).
          if (c.kind === 'path' && c.widget === 'combo' && hooks.openFileMenu) {
            w.onPointerDown = (pointer, node) => {
              pointer.onClick = (e) => hooks.openFileMenu(w, node, e);
              return true;
            };
          }
          w.tooltip = c.description;
        }
        // Buttons the editor adds to some node types (the block-weight editor); not params, never saved.
        for (const btn of hooks.nodeButtons?.(def) ?? []) {
          const w = this.addWidget('button', btn.label, null, () => btn.onClick(this));
          w.lfButton = true;
          w.tooltip = btn.tooltip ?? '';
        }
        this.serialize_widgets = false;
        if (def.output) this.color = '#3b4a36';
        this.size = this.computeSize();
        this.size[0] = Math.max(this.size[0], 240);
      }

      /** Keeps exactly one free socket at the end of each list input, numbered in order. */
      onConnectionsChange(kind, _index, _connected, _link, slot) {
        if (kind !== LiteGraph.INPUT || !slot) return;
        const ls = listSlotOf(slot.name);
        if (!ls || this.lf.reshaping) return;
        this.lf.reshaping = true;
        try {
          compactListSlots(this, ls.base);
        } finally {
          this.lf.reshaping = false;
        }
        hooks.onEdit?.(this);
      }

      onDrawForeground(ctx) {
        hooks.drawState?.(this, ctx);
      }

      // Copy/paste and clone go through litegraph's serialize/configure: the params travel by widget
      // name (widgets are not serialised by position), with the params no widget shows.
      onSerialize(o) {
        o.lf_params = Object.fromEntries((this.widgets ?? []).filter((w) => !w.lfButton).map((w) => [w.name, w.value]));
        o.lf_extra = { ...this.lf.extraParams };
        o.lf_given = [...this.lf.givenParams];
      }

      onConfigure(o) {
        for (const [name, value] of Object.entries(o.lf_params ?? {})) {
          const w = this.widgets?.find((x) => x.name === name && !x.lfButton);
          if (w) w.value = value;
        }
        if (o.lf_extra) this.lf.extraParams = { ...o.lf_extra };
        if (o.lf_given) this.lf.givenParams = new Set(o.lf_given);
      }
    }
    Object.defineProperty(LoraflowNode, 'name', { value: `lf_${def.type.replace(/\W/g, '_')}` });
    const lgType = litegraphType(def);
    LiteGraph.registerNodeType(lgType, LoraflowNode);
    registered.set(def.type, lgType);
  }
  return registered;
}

/** Socket indices of one list input, in socket order. */
export function listSlots(node, base) {
  const out = [];
  node.inputs.forEach((inp, i) => {
    const ls = listSlotOf(inp.name);
    if (ls && ls.base === base) out.push(i);
  });
  return out;
}

function compactListSlots(node, base) {
  const port = node.lf.def.inputs[base];
  const type = Array.isArray(port.type) ? port.type.join(',') : port.type;
  // Remove empty sockets except the last one, from the end so indices stay valid.
  let slots = listSlots(node, base);
  for (let k = slots.length - 2; k >= 0; k--) {
    if (node.inputs[slots[k]].link == null) node.removeInput(slots[k]);
  }
  slots = listSlots(node, base);
  const last = slots.at(-1);
  if (last === undefined || node.inputs[last].link != null) {
    const at = last === undefined ? node.inputs.length : last + 1;
    node.addInput(`${base}.${slots.length}`, type, { label: `${base} ${slots.length + 1}`, shape: node.lf.LiteGraph.GRID_SHAPE });
    // addInput appends; move the new socket right after the group so other inputs keep their place.
    const added = node.inputs.pop();
    node.inputs.splice(at, 0, added);
    for (let i = at + 1; i < node.inputs.length; i++) {
      const l = node.inputs[i].link;
      if (l != null) {
        const link = node.graph?._links?.get(l) ?? node.graph?.links?.[l];
        if (link) link.target_slot = i;
      }
    }
  }
  listSlots(node, base).forEach((i, k) => {
    node.inputs[i].name = `${base}.${k}`;
    node.inputs[i].label = `${base} ${k + 1}`;
  });
  node.setSize(node.computeSize());
  node.size[0] = Math.max(node.size[0], 240);
}
