// The side panel and the nodes' run state: applies run events (from the WebSocket, in seq order) to
// the graph's nodes and renders the Run, Results and Problems tabs.

import { el } from './dom.js';

const $ = (id) => document.getElementById(id);

const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms} ms`);

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function describeEvent(e) {
  switch (e.type) {
    case 'run.queued': return `queued (position ${e.position})${e.sweep ? `, sweep point ${e.sweep.index}/${e.sweep.total}` : ''}`;
    case 'run.assigned': return `taken by worker ${e.worker}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}`;
    case 'run.stalled': return `worker ${e.worker ?? '?'} stopped: ${e.message}`;
    case 'run.start': return `start: ${e.plan.run.length} to run, ${e.plan.cached.length} cached`;
    case 'node.cached': return `${e.nodeId}: cached`;
    case 'node.start': return `${e.nodeId}: start (${e.nodeType})`;
    case 'node.progress': return `${e.nodeId}: ${e.value}/${e.max}${e.label ? ` ${e.label}` : ''}`;
    case 'node.log': return `${e.nodeId}: ${e.message}`;
    case 'node.done': return `${e.nodeId}: done in ${fmtMs(e.ms)}`;
    case 'run.success': return `success in ${fmtMs(e.ms)}, ${e.written.length} file(s) written`;
    case 'run.error': return `error${e.nodeId ? ` in ${e.nodeId}` : ''}: ${e.message}`;
    case 'run.cancelled': return `cancelled${e.nodeId ? ` during ${e.nodeId}` : ''}`;
    case 'run.invalid': return `invalid: ${e.problems.length} problem(s)`;
    default: return e.type;
  }
}

export class RunPanel {
  /**
   * @param {object} opts
   * @param {() => any[]} opts.nodes        the graph's nodes
   * @param {() => void} opts.redraw
   * @param {(nodeId: string) => void} opts.focusNode
   * @param {(path: string) => Promise<void>} opts.inspect   show the inspect report of a written file
   * @param {(status: string) => void} opts.onStatus
   */
  constructor(opts) {
    this.opts = opts;
    this.runId = undefined;
    this.rows = new Map();
    this.nodeMs = new Map();
    for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => this.showTab(b.dataset.tab));
  }

  showTab(name) {
    for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('active', b.dataset.tab === name);
    // Every tab body, including those other modules add (the Queue tab of queue-panel.js).
    for (const t of document.querySelectorAll('.tab-body[id^="tab-"]')) t.hidden = t.id !== `tab-${name}`;
  }

  node(id) {
    return this.opts.nodes().find((n) => n.properties?.rid === id);
  }

  /** A new run of this editor: forget the last one's marks. */
  begin(runId) {
    this.runId = runId;
    this.nodeMs.clear();
    this.rows.clear();
    for (const n of this.opts.nodes()) if (n.lf) Object.assign(n.lf, { state: undefined, progress: undefined, message: undefined, ms: undefined, problems: [] });
    $('node-table').tBodies[0].replaceChildren();
    $('event-log').replaceChildren();
    $('results').replaceChildren(el('span', { class: 'muted' }, 'Running…'));
    $('inspect-report').replaceChildren();
    this.summary('queued', 'Queued…');
    this.setProblems([]);
    this.showTab('run');
    this.opts.redraw();
  }

  summary(kind, text) {
    const s = $('run-summary');
    s.className = `run-summary ${kind}`;
    s.textContent = text;
  }

  row(id) {
    let r = this.rows.get(id);
    if (r) return r;
    const bar = el('div');
    const state = el('td', { class: 'state' });
    const ms = el('td', { class: 'ms' });
    const name = el('td', { class: 'id' }, id, el('div', { class: 'mini-bar' }, bar));
    const tr = el('tr', { onclick: () => this.opts.focusNode(id) }, name, state, ms);
    $('node-table').tBodies[0].append(tr);
    r = { tr, bar, state, ms };
    this.rows.set(id, r);
    return r;
  }

  setNodeState(id, state, extra = {}) {
    const n = this.node(id);
    if (n?.lf) Object.assign(n.lf, { state, ...extra });
    const r = this.row(id);
    r.state.textContent = state;
    r.state.className = `state state-${state}`;
    r.tr.className = state;
    if (extra.ms !== undefined) r.ms.textContent = fmtMs(extra.ms);
    if (state === 'done' || state === 'cached') r.bar.style.width = '100%';
    this.opts.redraw();
  }

  /** Applies one event of the current run. Returns true when the run ended. */
  apply(e) {
    if (e.runId !== this.runId) return false;
    if (e.type !== 'node.progress') {
      // Runs on a queue carry the worker that sent each event.
      const who = e.worker && e.type !== 'run.assigned' && e.type !== 'run.stalled' ? ` [${e.worker}]` : '';
      const li = el('li', { class: e.type === 'run.error' || e.type === 'run.invalid' || e.type === 'run.stalled' ? 'error' : e.type === 'run.success' ? 'success' : '' }, `#${e.seq} ${describeEvent(e)}${who}`);
      $('event-log').append(li);
      li.scrollIntoView({ block: 'nearest' });
    }
    switch (e.type) {
      case 'run.assigned':
        this.summary('running', `Running on worker ${e.worker}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}…`);
        break;
      case 'run.stalled':
        // The worker died mid-run: what it did is void; the run starts over on another worker.
        for (const n of this.opts.nodes()) if (n.lf) Object.assign(n.lf, { state: undefined, progress: undefined });
        $('node-table').tBodies[0].replaceChildren();
        this.rows.clear();
        this.nodeMs.clear();
        this.summary('queued', `Worker ${e.worker ?? '?'} stopped responding; the run is back in the queue…`);
        this.overall(undefined);
        this.opts.redraw();
        break;
      case 'run.start':
        this.total = e.plan.run.length;
        this.finished = 0;
        for (const id of e.plan.order) if (!e.plan.cached.includes(id) && !e.plan.skipped.includes(id)) this.setNodeState(id, 'pending');
        this.summary('running', `Running ${e.plan.run.length} node(s), ${e.plan.cached.length} cached…`);
        this.overall(0);
        break;
      case 'node.cached':
        this.setNodeState(e.nodeId, 'cached');
        break;
      case 'node.start':
        this.setNodeState(e.nodeId, 'running', { progress: { value: 0, max: 1 } });
        this.summary('running', `Running ${e.nodeId} (${e.nodeType})…`);
        break;
      case 'node.progress': {
        const n = this.node(e.nodeId);
        if (n?.lf) n.lf.progress = { value: e.value, max: e.max, label: e.label };
        this.row(e.nodeId).bar.style.width = `${(100 * e.value) / Math.max(1, e.max)}%`;
        this.progressEvents = (this.progressEvents ?? 0) + 1;
        this.overall(this.finished + e.value / Math.max(1, e.max));
        this.opts.redraw();
        break;
      }
      case 'node.done':
        this.nodeMs.set(e.nodeId, e.ms);
        this.finished++;
        this.overall(this.finished);
        this.setNodeState(e.nodeId, 'done', { ms: e.ms, summary: e.summary, progress: undefined });
        break;
      case 'run.success':
        this.summary('success', `Success in ${fmtMs(e.ms)}: ${e.written.length} file(s) written.`);
        this.overall(undefined);
        this.results(e);
        this.opts.onStatus('success');
        return true;
      case 'run.error':
        if (e.nodeId) this.setNodeState(e.nodeId, 'error', { message: e.message, progress: undefined });
        this.summary('error', `Failed${e.nodeId ? ` in node "${e.nodeId}" (${e.nodeType})` : ''}: ${e.message}`);
        this.overall(undefined);
        if (e.nodeId) this.opts.focusNode(e.nodeId);
        this.opts.onStatus('error');
        return true;
      case 'run.cancelled':
        if (e.nodeId) this.setNodeState(e.nodeId, 'cancelled', { progress: undefined });
        for (const n of this.opts.nodes()) if (n.lf?.state === 'pending') n.lf.state = undefined;
        this.summary('cancelled', `Cancelled${e.nodeId ? ` during "${e.nodeId}"` : ''}${e.reason ? ` (${e.reason})` : ''}.`);
        this.overall(undefined);
        this.opts.onStatus('cancelled');
        this.opts.redraw();
        return true;
      case 'run.invalid':
        this.setProblems(e.problems);
        this.summary('error', `The recipe is invalid: ${e.problems.length} problem(s).`);
        this.overall(undefined);
        this.opts.onStatus('error');
        return true;
      default:
        break;
    }
    return false;
  }

  overall(done) {
    const wrap = $('overall');
    if (done === undefined || !this.total) {
      wrap.hidden = true;
      return;
    }
    wrap.hidden = false;
    $('overall-bar').style.width = `${Math.min(100, (100 * done) / this.total)}%`;
  }

  results(e) {
    const box = $('results');
    box.replaceChildren();
    box.classList.remove('muted');
    // Files to offer for inspection: those written now, and those outputs that came from the cache.
    const targets = e.written.map((abs) => ({ abs }));
    for (const summary of Object.values(e.outputs ?? {})) {
      const rel = summary?.path;
      if (typeof rel === 'string' && !e.written.some((w) => w.endsWith(`/${rel}`))) targets.push({ root: 'output', rel, cached: true });
    }
    const files = el('div', { class: 'result-card' }, el('h4', {}, `Files written (${e.written.length})`));
    if (targets.length === 0) files.append(el('div', { class: 'muted' }, 'none'));
    for (const t of targets) {
      files.append(
        el('div', { class: 'path' }, t.abs ?? `${t.root}/${t.rel}`, t.cached ? el('span', { class: 'muted' }, ' (unchanged: cached)') : undefined),
        el('button', { onclick: () => this.opts.inspect(t) }, 'Inspect'),
      );
    }
    box.append(files);
    for (const [id, summary] of Object.entries(e.outputs ?? {})) {
      box.append(el('div', { class: 'result-card' }, el('h4', {}, `Output of "${id}"`), el('pre', { class: 'json' }, JSON.stringify(summary, null, 2))));
    }
    const timings = el('dl', { class: 'kv' });
    for (const [id, ms] of this.nodeMs) timings.append(el('dt', {}, id), el('dd', {}, fmtMs(ms)));
    for (const n of this.opts.nodes()) if (n.lf?.state === 'cached') timings.append(el('dt', {}, n.properties.rid), el('dd', {}, 'cached'));
    timings.append(el('dt', {}, 'total'), el('dd', {}, fmtMs(e.ms)));
    box.append(el('div', { class: 'result-card' }, el('h4', {}, 'Timings'), timings));
    this.showTab('results');
    if (targets[0]) void this.opts.inspect(targets[0]);
  }

  showInspect(path, report) {
    const d = report.detection ?? {};
    const dtypes = Object.entries(report.dtypes ?? {}).map(([k, v]) => `${k}: ${v.tensors} tensors, ${fmtBytes(v.bytes)}`).join('; ');
    const kv = el('dl', { class: 'kv' },
      el('dt', {}, 'file'), el('dd', {}, path),
      el('dt', {}, 'format'), el('dd', {}, [d.format, d.architecture].filter(Boolean).join(' / ') || 'unknown'),
      el('dt', {}, 'tensors'), el('dd', {}, `${report.tensorCount} (${fmtBytes(report.dataBytes ?? 0)})`),
      el('dt', {}, 'dtypes'), el('dd', {}, dtypes || '–'),
    );
    if (d.ranks) kv.append(el('dt', {}, 'ranks'), el('dd', {}, [...new Set(Object.values(d.ranks))].join(', ')));
    const meta = Object.keys(report.metadata ?? {});
    kv.append(el('dt', {}, 'metadata'), el('dd', {}, meta.join(', ') || 'none'));
    $('inspect-report').replaceChildren(el('div', { class: 'result-card' }, el('h4', {}, 'Inspect'), kv, el('pre', { class: 'json' }, JSON.stringify(d, null, 2).slice(0, 4000))));
  }

  /** Validation problems: listed in the Problems tab and drawn on their nodes' inputs and widgets. */
  setProblems(problems) {
    for (const n of this.opts.nodes()) if (n.lf) n.lf.problems = [];
    for (const p of problems) {
      const n = p.nodeId ? this.node(p.nodeId) : undefined;
      if (n?.lf) n.lf.problems.push(p);
    }
    const count = $('problem-count');
    count.hidden = problems.length === 0;
    count.textContent = String(problems.length);
    const box = $('problems');
    box.classList.toggle('muted', problems.length === 0);
    box.replaceChildren(...(problems.length === 0 ? ['No problems.'] : problems.map((p) => {
      const where = [p.nodeId && `node "${p.nodeId}"`, p.nodeType && `(${p.nodeType})`, p.input && `input "${p.input}"`, p.param && `param "${p.param}"`, p.expose && `exposed "${p.expose}"`, !p.nodeId && p.path?.length ? p.path.join('.') : undefined].filter(Boolean).join(' ');
      return el('div', { class: 'problem', onclick: () => p.nodeId && this.opts.focusNode(p.nodeId) }, el('div', { class: 'where' }, where || 'recipe'), el('div', { class: 'msg' }, p.message));
    })));
    this.opts.redraw();
  }
}

export { fmtBytes };
