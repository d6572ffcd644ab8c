// The Queue tab: every run the server knows (queued, running, finished) with the worker that ran
// it, the sweep point it is and the files it wrote, a cancel button for those not finished, "Open
// recipe" and "Re-run" for those that are (the server keeps each run's recipe), and a form that submits the
// graph in the editor as a sweep (one run per point; with `serve --queue` they spread over the
// workers). It adds its own tab to the side panel and follows the server's event stream itself,
// so the editor's other modules need nothing from it but its import.

import { api, ApiError } from './api.js';
import { LiveEvents } from './live.js';
import { el } from './dom.js';

const STATUS_ORDER = ['running', 'queued', 'error', 'cancelled', 'success'];

function ago(iso) {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : new Date(iso).toLocaleTimeString();
}

/** `w=0.5,1` lines → { w: "0.5,1" } (the server splits values as the command line does). */
function parseLines(text, what) {
  const out = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`${what} "${line}": expected NAME=…`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

export class QueuePanel {
  constructor() {
    this.body = el('div', { class: 'tab-body', id: 'tab-queue', hidden: '' });
    this.status = el('div', { class: 'run-summary muted' }, 'Loading runs…');
    this.table = el('table', { class: 'node-table', id: 'queue-table' }, el('tbody'));
    this.axes = el('textarea', { id: 'sweep-axes', rows: '3', spellcheck: 'false', placeholder: 'one exposed name per line:\nweights=[1,0.5],[0.5,1]\na=*.safetensors', style: 'width:100%;box-sizing:border-box' });
    this.templates = el('textarea', { id: 'sweep-templates', rows: '2', spellcheck: 'false', placeholder: 'optional, per output:\noutput=out/{name}-{a}-{weights}.safetensors', style: 'width:100%;box-sizing:border-box' });
    this.result = el('div', { id: 'sweep-result', class: 'muted' });
    const submit = el('button', { id: 'btn-sweep', class: 'primary', onclick: () => void this.submitSweep() }, 'Submit sweep');
    this.body.append(
      this.status,
      this.table,
      el('h3', {}, 'Sweep the graph'),
      el('div', { class: 'muted' }, 'Values of the recipe\'s exposed params; every combination is one run.'),
      this.axes,
      this.templates,
      submit,
      this.result,
    );
    document.querySelector('aside.side')?.append(this.body);
    const tab = el('button', { 'data-tab': 'queue' }, 'Queue ', el('span', { id: 'queue-count', class: 'badge', hidden: '' }));
    document.querySelector('.tabs')?.append(tab);
    this.count = tab.querySelector('#queue-count');
    this.refreshSoon();
    this.live = new LiveEvents((e) => {
      if (e.type === 'hello' || e.type === 'status' || e.type?.startsWith('run.')) this.refreshSoon();
    });
  }

  refreshSoon() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, 200);
  }

  async refresh() {
    let data;
    try {
      data = await api.runs();
    } catch (e) {
      this.status.textContent = `Cannot list runs: ${e.message}`;
      return;
    }
    const where = data.queue === 'redis' ? 'on the Redis queue (loraflow worker processes)' : 'in the server process';
    this.status.textContent = `${data.runningIds?.length ?? (data.running ? 1 : 0)} running, ${data.queued} queued, ${data.total} known; runs execute ${where}.`;
    const busy = (data.runningIds?.length ?? 0) + data.queued;
    this.count.hidden = busy === 0;
    this.count.textContent = String(busy);
    const runs = [...data.runs].sort((a, b) => STATUS_ORDER.indexOf(a.status) - STATUS_ORDER.indexOf(b.status));
    this.table.tBodies[0].replaceChildren(...runs.map((r) => this.row(r)));
  }

  row(r) {
    const done = !['queued', 'running'].includes(r.status);
    const cancel = done ? '' : el('button', { class: 'danger', title: 'Cancel this run', onclick: () => void this.cancel(r.id) }, '■');
    const history = done
      ? [
        el('button', { class: 'q-open', title: 'Load the recipe this run ran (its overrides written in) into the canvas', onclick: () => void this.openRecipe(r.id) }, 'Open recipe'),
        el('button', { class: 'q-rerun', title: 'Queue this run\'s recipe again, with the same overrides', onclick: () => void this.rerun(r.id) }, 'Re-run'),
      ]
      : [];
    const written = (r.result?.written ?? []).map((f) => el('div', { class: 'q-output muted', title: f }, `→ ${f.split(/[\\/]/).pop()}`));
    const again = r.rerunOf ? ` · re-run of ${r.rerunOf.slice(0, 8)}` : '';
    const sweep = r.sweep ? `sweep ${r.sweep.id.slice(0, 6)} · ${r.sweep.index}/${r.sweep.total} · ${r.sweep.label}` : '';
    const retried = r.attempts > 1 ? ` (attempt ${r.attempts})` : '';
    return el(
      'tr',
      { class: r.status, 'data-run': r.id },
      el('td', { class: `state state-${r.status === 'success' ? 'done' : r.status}` }, r.status),
      el('td', { class: 'id' }, r.id.slice(0, 8), el('div', { class: 'muted' }, (sweep || ago(r.createdAt)) + again), written),
      el('td', { class: 'worker' }, (r.worker ?? '–') + retried),
      el('td', { class: 'ms' }, cancel, ...history),
    );
  }

  /** The run's recipe, as it ran, in the canvas (its overrides written into the params they set). */
  async openRecipe(id) {
    try {
      const { baked } = await api.runRecipe(id);
      window.loraflow?.loadRecipe(baked, `recipe of run ${id.slice(0, 8)}`);
      this.result.textContent = `Opened the recipe of run ${id.slice(0, 8)}.`;
    } catch (e) {
      this.result.textContent = `cannot open the recipe of run ${id.slice(0, 8)}: ${e.message}`;
    }
  }

  async rerun(id) {
    try {
      const r = await api.rerun(id);
      this.result.textContent = `Run ${id.slice(0, 8)} queued again as ${r.runId.slice(0, 8)}.`;
    } catch (e) {
      this.result.textContent = `re-run of ${id.slice(0, 8)} refused: ${e.message.split('\n')[0]}`;
    }
    this.refreshSoon();
  }

  async cancel(id) {
    try {
      await api.cancelRun(id);
    } catch (e) {
      this.result.textContent = `cancel failed: ${e.message}`;
    }
    this.refreshSoon();
  }

  async submitSweep() {
    const current = window.loraflow?.currentRecipe;
    if (!current) return;
    try {
      const axes = parseLines(this.axes.value, 'axis');
      const templates = parseLines(this.templates.value, 'template');
      if (Object.keys(axes).length === 0) throw new Error('give at least one NAME=VALUES line');
      const r = await api.startSweep({ recipe: current(), axes, templates });
      const names = Object.entries(r.templates ?? {}).map(([k, v]) => `${k} = ${v}`).join('; ');
      this.result.textContent = `Sweep ${r.sweepId.slice(0, 6)}: ${r.total} run(s) queued${names ? ` (outputs: ${names})` : ''}.`;
      this.refreshSoon();
    } catch (e) {
      this.result.textContent = e instanceof ApiError ? `${e.message}` : `sweep not submitted: ${e.message}`;
    }
  }
}

// Built as soon as the module loads (before the editor wires its tabs), so the Queue tab is one of them.
export const queuePanel = new QueuePanel();
