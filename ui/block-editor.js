// The block-weight node's visual editor: one slider per block id of the family's scheme, laid out
// on the family's grid (FLUX: CLIP T5 IN / D00–D18 / S00–S37 / OUT), with presets ("D00–D18 only":
// the double blocks) and the text spec it writes into the node's `weights` param. Reading and
// writing the spec goes through the server (the scheme's own parser), so what the sliders show is
// exactly what a run will use.

import { el } from './dom.js';
import { reportApi } from './report-api.js';

const SLIDER = { min: -1, max: 2, step: 0.05 };

/** Follows `lora` inputs upstream to a load-lora node: its file, if set. */
function upstreamLoraFile(node) {
  const seen = new Set();
  let n = node;
  while (n && !seen.has(n)) {
    seen.add(n);
    if (n.lf?.def?.type === 'load-lora') return n.widgets?.find((w) => w.name === 'path')?.value || undefined;
    const slot = n.inputs?.findIndex((i) => i.type === 'LORA' && i.link != null) ?? -1;
    n = slot >= 0 ? n.getInputNode(slot) : undefined;
  }
  return undefined;
}

export class BlockEditor {
  /**
   * @param {object} opts
   * @param {(node: any) => void} opts.onEdit   called after the node's weights changed
   * @param {(root: string, path: string) => Promise<any>} opts.inspect  the inspect route (for the family of the linked LoRA)
   */
  constructor(opts) {
    this.opts = opts;
    this.schemes = undefined;
    this.last = undefined;
    this.root = el('div', { class: 'modal block-editor', id: 'block-editor', hidden: '' });
    document.body.append(this.root);
    this.root.addEventListener('click', (e) => {
      if (e.target === this.root) this.close();
    });
    window.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !this.root.hidden) this.close();
    });
  }

  async loadSchemes() {
    this.schemes ??= (await reportApi.schemes()).schemes;
    return this.schemes;
  }

  /** The scheme of the LoRA linked upstream (from its file's detection), else the last one used, else FLUX's. */
  async guessScheme(node) {
    const schemes = await this.loadSchemes();
    const file = upstreamLoraFile(node);
    if (file) {
      try {
        const arch = (await this.opts.inspect('loras', file))?.detection?.architecture;
        const s = schemes.find((x) => x.families.includes(arch));
        if (s) return { scheme: s, why: `from ${file} (${arch})` };
      } catch {
        // the file may be missing or not a LoRA: fall back below
      }
    }
    const s = this.last ?? schemes.find((x) => x.families.includes('flux')) ?? schemes[0];
    return { scheme: s, why: file ? `${file} is not readable: choose the family` : 'no LoRA linked: choose the family' };
  }

  widget(node) {
    return node.widgets?.find((w) => w.name === 'weights');
  }

  async open(node) {
    this.node = node;
    const { scheme, why } = await this.guessScheme(node);
    const text = String(this.widget(node)?.value ?? '').trim();
    let weights = Object.fromEntries(scheme.ids.map((id) => [id, 1]));
    let problem;
    if (text) {
      try {
        weights = (await reportApi.blockWeights(scheme.index, text)).weights;
      } catch (e) {
        problem = `the current weights do not fit ${scheme.label}: ${e.message}`;
      }
    }
    this.render(scheme, weights, why, problem);
    this.root.hidden = false;
  }

  close() {
    this.root.hidden = true;
    this.root.replaceChildren();
    this.node = undefined;
  }

  /** The weights the sliders hold. */
  values() {
    return Object.fromEntries([...this.root.querySelectorAll('input.bw-value')].map((i) => [i.dataset.block, Number(i.value)]));
  }

  set(id, value) {
    const v = Number.isFinite(value) ? Number(value.toFixed(4)) : 1;
    for (const i of this.root.querySelectorAll(`[data-block="${CSS.escape(id)}"]`)) i.value = String(v);
    this.root.querySelector(`.bw-cell[data-cell="${CSS.escape(id)}"]`)?.classList.toggle('changed', v !== 1);
  }

  render(scheme, weights, why, problem) {
    const schemes = this.schemes;
    const select = el('select', { class: 'bw-scheme', title: 'Block scheme (the family of the LoRA)' }, ...schemes.map((s) => el('option', { value: String(s.index) }, s.describe)));
    select.value = String(scheme.index);
    select.onchange = () => {
      const s = schemes[Number(select.value)];
      this.last = s;
      this.render(s, Object.fromEntries(s.ids.map((id) => [id, 1])), 'chosen by hand');
    };
    const presets = el('div', { class: 'bw-presets' }, el('span', { class: 'muted' }, 'Presets:'),
      ...scheme.presets.map((p) => el('button', { class: 'bw-preset', 'data-preset': p.name, onclick: () => {
        for (const [id, v] of Object.entries(p.weights)) this.set(id, v);
        void this.preview();
      } }, p.name)));
    const grid = el('div', { class: 'bw-grid' });
    for (const row of scheme.grid) {
      const cells = row.ids.map((id) => {
        const v = weights[id] ?? 1;
        const slider = el('input', { type: 'range', class: 'bw-slider', min: SLIDER.min, max: SLIDER.max, step: SLIDER.step, value: v, 'data-block': id, title: id });
        const number = el('input', { type: 'number', class: 'bw-value', step: SLIDER.step, value: v, 'data-block': id, title: `${id} weight` });
        slider.oninput = () => {
          this.set(id, Number(slider.value));
          void this.preview();
        };
        number.onchange = () => {
          this.set(id, Number(number.value));
          void this.preview();
        };
        return el('div', { class: `bw-cell${v !== 1 ? ' changed' : ''}`, 'data-cell': id }, el('div', { class: 'bw-id' }, id), slider, number);
      });
      grid.append(el('div', { class: 'bw-row' }, el('div', { class: 'bw-label' }, row.label ?? ''), ...cells));
    }
    this.specBox = el('input', { class: 'bw-spec', readonly: '', spellcheck: 'false', title: 'What the node\'s weights param will hold' });
    this.problemBox = el('div', { class: 'bw-problem' }, problem ?? '');
    const box = el('div', { class: 'modal-body' },
      el('div', { class: 'modal-head' }, el('h3', {}, `Block weights — ${this.node?.title ?? ''}`), select, el('span', { class: 'muted bw-why' }, why)),
      presets,
      grid,
      el('div', { class: 'bw-foot' }, el('label', { class: 'muted' }, 'weights ', this.specBox), this.problemBox,
        el('button', { class: 'bw-cancel', onclick: () => this.close() }, 'Cancel'),
        el('button', { class: 'bw-apply primary', onclick: () => void this.apply() }, 'Apply')),
    );
    this.scheme = scheme;
    this.root.replaceChildren(box);
    void this.preview();
  }

  /** The spec the sliders make, written compactly by the server (e.g. `CLIP=0,T5=0,IN=0,S00-S37=0,OUT=0`). */
  async spec() {
    const pairs = Object.entries(this.values()).map(([id, v]) => `${id}=${v}`).join(',');
    return (await reportApi.blockWeights(this.scheme.index, pairs)).spec;
  }

  async preview() {
    try {
      this.specBox.value = await this.spec();
      this.problemBox.textContent = '';
    } catch (e) {
      this.problemBox.textContent = e.message;
    }
  }

  async apply() {
    const node = this.node;
    const w = node && this.widget(node);
    if (!w) return this.close();
    try {
      w.value = await this.spec();
    } catch (e) {
      this.problemBox.textContent = e.message;
      return;
    }
    this.last = this.scheme;
    this.close();
    node.setDirtyCanvas?.(true, true);
    this.opts.onEdit(node);
  }
}
