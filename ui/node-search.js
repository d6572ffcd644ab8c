// The node search (double-click on empty canvas, or release a dragged link there): only loraflow's
// node types (never the placeholder for unknown types), and after a dragged link only those with a
// port the link fits: an input that accepts the dragged output's type, or an output the dragged
// input accepts. Picking one adds it where the link was released, already connected.

/** Port type as the engine writes it (a list of accepted types joined by commas). */
const typeOf = (port) => (Array.isArray(port.type) ? port.type.join(',') : String(port.type));

/** Node definitions that fit a search: text (title, type, category, description) and an optional link type. */
export function searchDefs(defs, text, link, portAccepts) {
  const q = String(text ?? '').trim().toLowerCase();
  return Object.values(defs).filter((def) => {
    if (link?.fromOutput && !Object.values(def.inputs).some((p) => portAccepts(typeOf(p), link.fromOutput))) return false;
    if (link?.fromInput && !Object.values(def.outputs).some((p) => portAccepts(link.fromInput, typeOf(p)))) return false;
    return !q || `${def.title} ${def.type} ${def.category} ${def.description}`.toLowerCase().includes(q);
  });
}

export function installNodeSearch({ LiteGraph, canvas, defs, registered, portAccepts }) {
  let link;
  const show = canvas.showSearchBox.bind(canvas);
  canvas.showSearchBox = (event, options = {}) => {
    link = options.type_filter_in ? { fromOutput: String(options.type_filter_in) } : options.type_filter_out ? { fromInput: String(options.type_filter_out) } : undefined;
    const dialog = show(event, options);
    if (link) dialog.dataset.linkType = link.fromOutput ?? link.fromInput;
    return dialog;
  };
  // litegraph calls this instead of listing every registered type
  canvas.onSearchBox = (_helper, text) => searchDefs(defs, text, link, portAccepts).map((def) => registered.get(def.type)).filter(Boolean);
  // a link released on empty canvas opens the search at once (litegraph would show a menu first)
  LiteGraph.release_link_on_empty_shows_menu = true;
  canvas.showConnectionMenu = (o) =>
    o.nodeFrom
      ? canvas.showSearchBox(o.e, { node_from: o.nodeFrom, slot_from: o.slotFrom, type_filter_in: o.slotFrom?.type })
      : canvas.showSearchBox(o.e, { node_to: o.nodeTo, slot_from: o.slotTo, type_filter_out: o.slotTo?.type });
}
