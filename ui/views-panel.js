// The Views tab: pictures instead of JSON. A run's Plot nodes bring their SVGs in the run's result;
// inspecting a LoRA file adds its strength by block (rendered on the server). Every picture can be
// enlarged; hovering a cell, bar or line shows its numbers (SVG <title>).

import { el } from './dom.js';

const $ = (id) => document.getElementById(id);

/** Pictures of inspected files kept. */
const FILE_VIEWS = 3;

/** The SVG text as an element (parsed as SVG, so a malformed picture shows as an error, not as markup). */
function svgElement(svg) {
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  const root = doc.documentElement;
  if (root.nodeName !== 'svg' || doc.querySelector('parsererror')) return el('div', { class: 'view-error' }, 'this picture could not be read');
  return document.importNode(root, true);
}

/** Plot node outputs in a run's result: `{ views: [{ kind, title, svg }] }`. */
export function viewsOfOutputs(outputs) {
  const out = [];
  for (const [nodeId, summary] of Object.entries(outputs ?? {})) {
    for (const v of Array.isArray(summary?.views) ? summary.views : []) if (typeof v?.svg === 'string') out.push({ ...v, source: nodeId });
  }
  return out;
}

export class ViewsPanel {
  constructor() {
    this.list = $('views');
    // a run's pictures first, then those of inspected files (newest first, the last few kept)
    this.runList = el('div', { class: 'views-run' });
    this.fileList = el('div', { class: 'views-files' });
    this.list.append(this.runList, this.fileList);
    this.count = $('view-count');
    this.modal = $('view-modal');
    this.modal.addEventListener('click', (e) => {
      if (e.target === this.modal || e.target.closest('.view-close')) this.closeModal();
    });
    window.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !this.modal.hidden) this.closeModal();
    });
  }

  /** Replaces the pictures of the last run (file pictures stay). */
  setRunViews(views) {
    this.runList.replaceChildren(...views.map((v) => this.card(v, 'run')));
    this.update();
  }

  /** Adds (or replaces) the strength picture of an inspected file. */
  setFileView(key, view) {
    this.fileList.querySelector(`.view-card[data-file="${CSS.escape(key)}"]`)?.remove();
    this.fileList.prepend(this.card({ ...view, source: key }, 'file', key));
    for (const old of [...this.fileList.children].slice(FILE_VIEWS)) old.remove();
    this.update();
  }

  card(v, origin, file) {
    const body = el('div', { class: 'view-svg' }, svgElement(v.svg));
    return el('div', { class: 'view-card', 'data-kind': v.kind, 'data-origin': origin, ...(file ? { 'data-file': file } : {}), ...(v.source ? { 'data-source': v.source } : {}) },
      el('div', { class: 'view-head' }, el('h4', {}, v.title), el('button', { class: 'view-enlarge', title: 'Enlarge', onclick: () => this.openModal(v) }, '⤢')),
      v.source ? el('div', { class: 'muted view-source' }, origin === 'run' ? `from node "${v.source}"` : v.source) : undefined,
      body,
    );
  }

  update() {
    const n = this.list.querySelectorAll('.view-card').length;
    this.count.hidden = n === 0;
    this.count.textContent = String(n);
    $('views-empty').hidden = n > 0;
  }

  openModal(v) {
    const box = this.modal.querySelector('.view-modal-body');
    box.replaceChildren(el('div', { class: 'view-modal-head' }, el('h3', {}, v.title), el('button', { class: 'view-close', title: 'Close (Esc)' }, '✕')), el('div', { class: 'view-modal-svg', 'data-kind': v.kind }, svgElement(v.svg)));
    this.modal.hidden = false;
  }

  closeModal() {
    this.modal.hidden = true;
    this.modal.querySelector('.view-modal-body').replaceChildren();
  }
}
