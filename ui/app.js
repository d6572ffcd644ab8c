// The editor: a litegraph canvas whose node types come from /api/nodes, a toolbar for recipes
// (server, files, examples), runs with live progress over /ws, and the side panel.

import * as litegraph from '/vendor/litegraph/litegraph.es.js';
import { api, ApiError } from './api.js';
import { LiveEvents } from './live.js';
import { drawNodeState } from './node-state.js';
import { litegraphType, portAccepts, registerNodeTypes } from './node-types.js';
import { graphToRecipe, recipeToGraph, registerUnknownNodeType } from './recipe-graph.js';
import { el } from './dom.js';
import { RunPanel } from './run-panel.js';
import { BlockEditor } from './block-editor.js';
import { reportApi } from './report-api.js';
import { ViewsPanel, viewsOfOutputs } from './views-panel.js';
import { installNodeSearch } from './node-search.js';
import { EditHistory } from './edit-history.js';
import { installShortcuts } from './shortcuts.js';
import './queue-panel.js';
import { FileCatalog, openFileMenu } from './file-menu.js';
import { SamplesOffer } from './samples-offer.js';

const { LiteGraph, LGraph, LGraphCanvas } = litegraph;
const $ = (id) => document.getElementById(id);

const state = {
  defs: {},
  registered: new Map(),
  roots: [],
  /** Files per root kind with their format and family, for the file-param combos. */
  files: new FileCatalog(),
  /** The recipe last loaded or saved: its meta/expose/outputs carry over into what is saved next. */
  base: { format: 'loraflow.recipe', schemaVersion: 1, nodes: {} },
  runId: undefined,
  loading: false,
};

function setStatus(text, kind = '') {
  const s = $('status');
  s.textContent = text;
  s.className = `status ${kind}`;
  s.title = text;
}

function fail(e, what) {
  console.error(e);
  setStatus(`${what}: ${e.message.split('\n')[0]}`, 'error');
  if (e instanceof ApiError && e.details?.problems) panel.setProblems(e.details.problems);
}

// ---- canvas -------------------------------------------------------------------------------------

const graph = new LGraph();
const canvasEl = $('graph-canvas');
const canvas = new LGraphCanvas(canvasEl, graph);
canvas.background_image = '';
canvas.clear_background_color = '#17191d';
canvas.render_canvas_border = false;
canvas.show_info = false;
Object.assign(LGraphCanvas.link_type_colors, { LORA: '#c792ea', MODEL: '#82aaff', REPORT: '#c3e88d' });

function fitCanvas() {
  const wrap = $('canvas-wrap');
  const dpr = Math.max(window.devicePixelRatio || 1, 1);
  const { width, height } = wrap.getBoundingClientRect();
  canvasEl.style.width = `${width}px`;
  canvasEl.style.height = `${height}px`;
  canvasEl.width = Math.round(width * dpr);
  canvasEl.height = Math.round(height * dpr);
  canvasEl.getContext('2d').scale(dpr, dpr);
  canvas.setDirty(true, true);
}
new ResizeObserver(fitCanvas).observe($('canvas-wrap'));

const nodes = () => graph._nodes ?? [];
const redraw = () => canvas.setDirty(true, true);

function fitView() {
  const ns = nodes();
  if (ns.length === 0) return;
  const x0 = Math.min(...ns.map((n) => n.pos[0]));
  const y0 = Math.min(...ns.map((n) => n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT));
  const x1 = Math.max(...ns.map((n) => n.pos[0] + n.size[0]));
  const y1 = Math.max(...ns.map((n) => n.pos[1] + n.size[1] + 40));
  canvas.ds.fitToBounds([x0, y0, x1 - x0, y1 - y0], { zoom: 0.9 });
  if (canvas.ds.scale > 1) canvas.ds.scale = 1;
  redraw();
}

/** Where a node's widget is on the page (CSS pixels), to click it like a user would. */
function widgetScreenPos(rid, name) {
  const n = nodes().find((x) => x.properties?.rid === rid);
  const w = n?.widgets?.find((x) => x.name === name);
  if (!w) return undefined;
  const [x, y] = canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] + (w.last_y ?? 0) + LiteGraph.NODE_WIDGET_HEIGHT / 2]);
  const r = canvasEl.getBoundingClientRect();
  return { x: r.left + x, y: r.top + y };
}

function focusNode(id) {
  const n = nodes().find((x) => x.properties?.rid === id);
  if (!n) return;
  canvas.selectNode(n, false);
  canvas.centerOnNode(n);
  redraw();
}

// ---- node types, palette ------------------------------------------------------------------------

function pathValues(path) {
  return state.files.values(path.kind);
}

async function refreshFiles() {
  await state.files.refresh(state.roots);
}

function buildPalette() {
  const list = $('palette-list');
  const filter = $('palette-filter').value.trim().toLowerCase();
  const byCat = new Map();
  for (const def of Object.values(state.defs)) {
    const hay = `${def.title} ${def.type} ${def.description} ${def.category}`.toLowerCase();
    if (filter && !hay.includes(filter)) continue;
    if (!byCat.has(def.category)) byCat.set(def.category, []);
    byCat.get(def.category).push(def);
  }
  list.replaceChildren();
  for (const [cat, defs] of [...byCat].sort((a, b) => a[0].localeCompare(b[0]))) {
    list.append(el('div', { class: 'category' }, cat));
    for (const def of defs.sort((a, b) => a.title.localeCompare(b.title))) {
      const desc = def.description.split(/(?<=\.)\s/)[0];
      list.append(el('button', { class: 'node-item', title: def.description, 'data-type': def.type, onclick: () => addNode(def) }, def.title, el('small', {}, desc)));
    }
  }
}

function addNode(def) {
  const node = LiteGraph.createNode(litegraphType(def));
  const [cx, cy] = canvas.ds.convertCanvasToOffset([canvasEl.clientWidth / 2, canvasEl.clientHeight / 2]);
  node.pos = [cx - node.size[0] / 2 + (Math.random() - 0.5) * 40, cy - node.size[1] / 2 + (Math.random() - 0.5) * 40];
  graph.add(node);
  canvas.selectNode(node, false);
  edited();
}

// ---- recipes ------------------------------------------------------------------------------------

function currentRecipe() {
  return graphToRecipe(graph, state.base, { scale: Number(canvas.ds.scale.toFixed(3)), offset: Array.from(canvas.ds.offset, Math.round) });
}

function loadRecipe(recipe, label) {
  state.loading = true;
  try {
    const notes = recipeToGraph(recipe, graph, { LiteGraph, registered: state.registered });
    state.base = recipe;
    samplesOffer.hide();
    const vp = recipe.ui?.viewport;
    if (vp && Array.isArray(vp.offset) && typeof vp.scale === 'number') {
      canvas.ds.offset[0] = vp.offset[0];
      canvas.ds.offset[1] = vp.offset[1];
      canvas.ds.scale = vp.scale;
    } else fitView();
    panel.setProblems([]);
    setStatus(`loaded ${label}${notes.length ? ` (${notes.length} note(s): ${notes[0]})` : ''}`, notes.length ? 'error' : 'ok');
    document.title = `${recipe.meta?.name ?? label} · loraflow`;
  } finally {
    state.loading = false;
  }
  editHistory.reset();
  redraw();
  void validateSoon(0);
}

let validateTimer;
/** Re-checks the graph after edits, so problems show on the nodes before anything runs. */
function validateSoon(delay = 700) {
  clearTimeout(validateTimer);
  validateTimer = setTimeout(async () => {
    if (nodes().length === 0) return panel.setProblems([]);
    try {
      const r = await api.validateRecipe(currentRecipe());
      panel.setProblems(r.problems);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'invalid_recipe') panel.setProblems([{ code: 'bad_recipe', message: e.message }]);
    }
  }, delay);
}

function edited() {
  if (state.loading) return;
  validateSoon();
  recordSoon();
}
// A pasted node arrives with the recipe id of the one it was copied from: it gets a new one.
graph.onNodeAdded = (node) => {
  const rid = node.properties?.rid;
  if (rid && nodes().some((n) => n !== node && n.properties?.rid === rid)) node.properties.rid = null;
  edited();
};
graph.onNodeRemoved = edited;
graph.onConnectionChange = edited;

// ---- undo / redo, shortcuts ---------------------------------------------------------------------

const editHistory = new EditHistory({
  snapshot: () => JSON.stringify(graphToRecipe(graph, state.base)),
  restore: (text) => {
    state.loading = true;
    try {
      recipeToGraph(JSON.parse(text), graph, { LiteGraph, registered: state.registered });
    } finally {
      state.loading = false;
    }
    redraw();
    void validateSoon(0);
  },
});
let recordPending = false;
/** Records the graph for undo once the current edit is complete (a paste adds nodes and links in one go). */
function recordSoon() {
  if (recordPending) return;
  recordPending = true;
  queueMicrotask(() => {
    recordPending = false;
    editHistory.record();
  });
}
// moves and resizes end with the pointer's release; clicking the canvas also gives it the keyboard
canvasEl.addEventListener('pointerup', () => recordSoon());
canvasEl.addEventListener('pointerdown', () => canvasEl.focus({ preventScroll: true }));

function groupSelected() {
  const selected = Object.values(canvas.selected_nodes ?? {});
  if (selected.length === 0) return setStatus('select the nodes to group first', 'error');
  const group = new LiteGraph.LGraphGroup('Group');
  graph.add(group);
  group.resizeTo(selected, 20);
  redraw();
  recordSoon();
  setStatus(`grouped ${selected.length} node(s)`, 'ok');
}

const shortcuts = installShortcuts({
  run: () => {
    if (!$('btn-run').disabled) void run();
  },
  undo: () => {
    if (editHistory.undo()) setStatus('undone', 'ok');
  },
  redo: () => {
    if (editHistory.redo()) setStatus('redone', 'ok');
  },
  group: groupSelected,
});

async function refreshRecipeNames() {
  try {
    const { recipes } = await api.recipes();
    $('recipe-names').replaceChildren(...recipes.map((r) => el('option', { value: r.name }, r.title ?? '')));
  } catch (e) {
    console.warn(e);
  }
}

async function refreshExamples() {
  const sel = $('examples');
  try {
    const { recipes } = await api.examples();
    sel.replaceChildren(el('option', { value: '' }, `Examples (${recipes.length})…`), ...recipes.map((r) => el('option', { value: r.name, title: r.description ?? '' }, r.title ? `${r.title}` : r.name)));
  } catch (e) {
    console.warn(e);
  }
}

function download(text, filename, type) {
  const a = el('a', { href: URL.createObjectURL(new Blob([text], { type })), download: filename });
  document.body.append(a);
  a.click();
  setTimeout(() => {
    URL.revokeObjectURL(a.href);
    a.remove();
  }, 0);
}

function recipeFileStem() {
  const name = $('recipe-name').value.trim() || state.base.meta?.name || 'recipe';
  return name.replace(/[^\w.-]+/g, '_');
}

/** A .safetensors file: only its header goes to the server (8 bytes of length + the JSON). */
async function headerSlice(file) {
  const head = new DataView(await file.slice(0, 8).arrayBuffer());
  if (head.byteLength < 8) throw new Error(`${file.name} is too short to be a safetensors file`);
  const n = Number(head.getBigUint64(0, true));
  if (!Number.isSafeInteger(n) || 8 + n > file.size) throw new Error(`${file.name} does not look like a safetensors file (header length ${n})`);
  return file.slice(0, 8 + n);
}

/**
 * A .safetensors opened or dropped: the recipe it carries when loraflow wrote it; else a load node
 * for it (Load LoRA or Load checkpoint), found in the node's root by name and size, since the page
 * never learns where a dropped file lies on disk. Only the header is sent.
 */
async function openSafetensors(file, at) {
  const header = await headerSlice(file);
  const info = await reportApi.dropped(header, file.name, file.size);
  if (info.hasRecipe) {
    const r = await api.recipeFromFile(header, file.name);
    loadRecipe(r.recipe, `recipe of ${file.name}${r.version ? ` (loraflow ${r.version})` : ''}`);
    return;
  }
  const type = { lora: 'load-lora', checkpoint: 'load-model' }[info.kind];
  // the user's files, not the page, are at fault here: said in the status line, not logged as errors
  if (!type) return setStatus(`cannot open ${file.name}: neither a LoRA nor a model checkpoint loraflow recognises`, 'error');
  const def = state.defs[type];
  const kind = def.paramsSchema?.properties?.path?.['x-path']?.kind ?? (type === 'load-lora' ? 'loras' : 'checkpoints');
  const match = info.matches.find((m) => m.root === kind);
  if (!match) {
    const dir = state.roots.find((r) => r.name === kind)?.dir;
    const elsewhere = info.matches.length ? ` (the ${info.matches.map((m) => m.root).join(', ')} root has it)` : '';
    return setStatus(`cannot open ${file.name}: ${file.name} is not in the ${kind} root${dir ? ` ${dir}` : ''}${elsewhere}: copy it there, or start the server with --root ${kind}=<its folder>`, 'error');
  }
  const node = LiteGraph.createNode(state.registered.get(type));
  const [cx, cy] = at ?? canvas.ds.convertCanvasToOffset([canvasEl.clientWidth / 2, canvasEl.clientHeight / 2]);
  node.pos = [cx, cy];
  const w = node.widgets.find((x) => x.name === 'path');
  if (w) w.value = match.path;
  graph.add(node);
  canvas.selectNode(node, false);
  redraw();
  const what = [info.format, info.architecture].filter((x) => x && x !== 'unknown').join(' / ');
  setStatus(`added ${def.title} for ${match.path}${what ? ` (${what})` : ''}`, 'ok');
}

async function openFile(file, at) {
  try {
    if (/\.safetensors$/i.test(file.name)) return await openSafetensors(file, at);
    const { recipe } = await api.parseRecipe(await file.text());
    loadRecipe(recipe, file.name);
    $('recipe-name').value = file.name.replace(/\.(json|ya?ml)$/i, '');
  } catch (e) {
    fail(e, `cannot open ${file.name}`);
  }
}

// ---- runs ---------------------------------------------------------------------------------------

function setRunning(running) {
  $('btn-cancel').disabled = !running;
  $('btn-run').disabled = running;
}

async function run() {
  const recipe = currentRecipe();
  setRunning(true);
  setStatus('validating…');
  try {
    const { runId } = await api.startRun(recipe);
    state.runId = runId;
    panel.begin(runId);
    // Events that arrived before we knew the id (fast runs) are in the run's log.
    const rec = await api.run(runId);
    for (const e of rec.events) handleEvent(e);
    setStatus(`run ${runId.slice(0, 8)} started`);
  } catch (e) {
    setRunning(false);
    fail(e, 'run refused');
    if (e instanceof ApiError && e.details?.problems) panel.showTab('problems');
  }
}

const seen = new Set();
function handleEvent(e) {
  if (e.type === 'hello') return setStatus(e.running ? 'connected (a run is in progress)' : 'connected', 'ok');
  if (!e.runId || e.runId !== state.runId) return;
  // The same event can come twice: from the run's log (fetched on start) and live.
  if (typeof e.seq === 'number') {
    if (seen.has(e.seq)) return;
    seen.add(e.seq);
  }
  // Plot nodes' pictures go to the Views tab; the Results tab lists them without their SVG text.
  const pictures = e.type === 'run.success' ? viewsOfOutputs(e.outputs) : [];
  if (panel.apply(pictures.length ? withoutSvgs(e) : e)) {
    setRunning(false);
    void refreshFiles();
  }
  if (e.type === 'run.success') {
    views.setRunViews(pictures);
    if (pictures.length) panel.showTab('views');
  }
}

/** A run.success event with each Plot output's SVGs replaced by a pointer to the Views tab. */
function withoutSvgs(e) {
  const outputs = Object.fromEntries(Object.entries(e.outputs ?? {}).map(([id, s]) => [id, Array.isArray(s?.views) ? { ...s, views: s.views.map(({ svg, ...v }) => ({ ...v, svg: svg === undefined ? undefined : '(shown in the Views tab)' })) } : s]));
  return { ...e, outputs };
}

/** The strength picture of an inspected LoRA file (not of checkpoints or unrecognised files). */
async function showFileStrength(root, rel, report) {
  const d = report?.detection;
  if (!d || !Array.isArray(d.modules) || d.modules.length === 0 || !d.architecture || d.architecture === 'unknown') return;
  try {
    const { view } = await reportApi.strength(root, [rel]);
    views.setFileView(`${root}/${rel}`, view);
  } catch (err) {
    console.warn(`no strength picture for ${root}/${rel}: ${err.message}`);
  }
}

// ---- wiring -------------------------------------------------------------------------------------

const panel = new RunPanel({
  nodes,
  redraw,
  focusNode,
  onStatus: (s) => setStatus(`run ${s}`, s === 'success' ? 'ok' : 'error'),
  inspect: async (target) => {
    let root = target.root;
    let rel = target.rel;
    try {
      // a written file goes by the absolute path the run reported: the server says which root holds it
      const report = target.abs ? await api.inspectWritten(target.abs) : await api.inspect(root, rel);
      root = report.root;
      rel = report.path;
      panel.showInspect(report.name, report);
      await showFileStrength(root, rel, report);
    } catch (e) {
      // a file written outside every root is not the server's to show
      if (e instanceof ApiError && e.code === 'path_escapes_root') return setStatus(`not inspected: ${e.message}`);
      fail(e, 'inspect failed');
    }
  },
});
// The panel knows its own tabs; the Views tab (and any other a module adds) is shown and hidden with them.
const showPanelTab = panel.showTab.bind(panel);
panel.showTab = (name) => {
  showPanelTab(name);
  for (const body of document.querySelectorAll('.side .tab-body')) body.hidden = body.id !== `tab-${name}`;
  for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('active', b.dataset.tab === name);
};
const views = new ViewsPanel();
const samplesOffer = new SamplesOffer({
  defs: () => state.defs,
  has: (kind, p) => state.files.values(kind).includes(p),
  onWritten: async (what) => {
    await refreshFiles();
    setStatus(what, 'ok');
    void validateSoon(0);
  },
});
const blockEditor = new BlockEditor({ onEdit: () => edited(), inspect: (root, path) => api.inspect(root, path) });

function wireToolbar() {
  $('btn-new').onclick = () => {
    state.base = { format: 'loraflow.recipe', schemaVersion: 1, nodes: {} };
    graph.clear();
    panel.setProblems([]);
    $('recipe-name').value = '';
    setStatus('new graph');
    redraw();
    editHistory.record();
  };
  $('btn-shortcuts').onclick = () => shortcuts.toggle();
  $('examples').onchange = async (ev) => {
    const name = ev.target.value;
    if (!name) return;
    try {
      const { recipe } = await api.example(name);
      loadRecipe(recipe, `example ${name}`);
      $('recipe-name').value = name;
      samplesOffer.check(recipe);
    } catch (e) {
      fail(e, `cannot load example ${name}`);
    }
    ev.target.value = '';
  };
  $('btn-load').onclick = async () => {
    const name = $('recipe-name').value.trim();
    if (!name) return setStatus('type the name of a saved recipe', 'error');
    try {
      loadRecipe((await api.recipe(name)).recipe, `recipe ${name}`);
    } catch (e) {
      fail(e, `cannot load ${name}`);
    }
  };
  $('btn-save').onclick = async () => {
    const name = $('recipe-name').value.trim();
    if (!name) return setStatus('type a name to save under', 'error');
    try {
      const recipe = currentRecipe();
      const r = await api.saveRecipe(name, recipe);
      state.base = recipe;
      panel.setProblems(r.problems);
      setStatus(`saved ${r.file}${r.ok ? '' : ` (${r.problems.length} problem(s) to fix before it runs)`}`, r.ok ? 'ok' : 'error');
      void refreshRecipeNames();
    } catch (e) {
      fail(e, 'save failed');
    }
  };
  $('btn-delete').onclick = async () => {
    const name = $('recipe-name').value.trim();
    if (!name || !confirm(`Delete the saved recipe "${name}"?`)) return;
    try {
      await api.deleteRecipe(name);
      setStatus(`deleted ${name}`, 'ok');
      void refreshRecipeNames();
    } catch (e) {
      fail(e, 'delete failed');
    }
  };
  $('btn-open').onclick = () => $('file-input').click();
  $('file-input').onchange = (ev) => {
    const f = ev.target.files?.[0];
    if (f) void openFile(f);
    ev.target.value = '';
  };
  for (const format of ['json', 'yaml']) {
    $(`btn-download-${format}`).onclick = async () => {
      try {
        const { text } = await api.exportRecipe(currentRecipe(), format);
        download(text, `${recipeFileStem()}.${format}`, format === 'json' ? 'application/json' : 'application/yaml');
        setStatus(`downloaded ${recipeFileStem()}.${format}`, 'ok');
      } catch (e) {
        fail(e, 'export failed');
      }
    };
  }
  $('btn-run').onclick = () => void run();
  $('btn-cancel').onclick = async () => {
    if (!state.runId) return;
    try {
      await api.cancelRun(state.runId);
      setStatus('cancelling…');
    } catch (e) {
      fail(e, 'cancel failed');
    }
  };
  $('palette-filter').oninput = buildPalette;

  // Dropping files anywhere on the canvas opens them (recipes, or loraflow-written .safetensors).
  const wrap = $('canvas-wrap');
  let depth = 0;
  wrap.addEventListener('dragenter', (e) => {
    if (!e.dataTransfer?.types?.includes('Files')) return;
    depth++;
    wrap.classList.add('dragging');
  }, true);
  wrap.addEventListener('dragleave', () => {
    if (--depth <= 0) {
      depth = 0;
      wrap.classList.remove('dragging');
    }
  }, true);
  wrap.addEventListener('dragover', (e) => {
    if (e.dataTransfer?.types?.includes('Files')) e.preventDefault();
  }, true);
  wrap.addEventListener('drop', (e) => {
    depth = 0;
    wrap.classList.remove('dragging');
    const files = [...(e.dataTransfer?.files ?? [])];
    if (files.length === 0) return;
    e.preventDefault();
    e.stopPropagation();
    // several LoRAs / checkpoints dropped at once: one load node each, one under the other
    const [x, y] = canvas.convertEventToCanvasOffset(e);
    void (async () => {
      for (const [i, f] of files.entries()) await openFile(f, [x, y + i * 140]);
    })();
  }, true);
}

async function main() {
  fitCanvas();
  wireToolbar();
  try {
    const [defs, roots] = await Promise.all([api.nodes(), api.roots()]);
    state.defs = defs;
    state.roots = roots.roots;
    registerUnknownNodeType(litegraph);
    state.registered = registerNodeTypes(litegraph, defs, {
      pathValues,
      openFileMenu: (widget, node, e) => openFileMenu({ LiteGraph, widget, node, canvas, event: e, entries: state.files.entries(widget.lfPath.kind) }),
      onEdit: edited,
      drawState: (node, ctx) => drawNodeState(node, ctx, LiteGraph),
      nodeButtons: (def) => (def.type === 'block-weights' ? [{ label: 'edit blocks…', tooltip: 'One slider per block id of the LoRA\'s family, with presets', onClick: (node) => void blockEditor.open(node).catch((e) => fail(e, 'block editor')) }] : []),
    });
  } catch (e) {
    fail(e, 'cannot reach the loraflow server');
    return;
  }
  installNodeSearch({ LiteGraph, canvas, defs: state.defs, registered: state.registered, portAccepts });
  buildPalette();
  await Promise.all([refreshFiles(), refreshExamples(), refreshRecipeNames()]);
  window.addEventListener('focus', () => void refreshFiles());
  new LiveEvents(handleEvent, (s) => {
    if (s === 'closed') setStatus('disconnected: reconnecting…', 'error');
  });
  // For tests and the console: the editor's state and conversions.
  window.loraflow = { graph, canvas, currentRecipe, loadRecipe, state, panel, widgetScreenPos, views, blockEditor };
  document.body.dataset.ready = 'true';
}

void main();
