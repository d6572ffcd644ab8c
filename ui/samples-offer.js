// The examples in graphs/ name loraflow's sample files (`samples/…`), which a user's own model
// folders do not hold. When an example needs files its roots lack, a bar over the canvas offers to
// write the samples into `samples/` of the input roots (POST /api/samples, what `loraflow samples`
// writes); then the file lists refresh and the example validates as it is.

import { api } from './api.js';
import { el } from './dom.js';

const SAMPLE_PREFIX = 'samples/';

/** `{ kind, path }` of each read file param of the recipe naming a sample file the roots lack. */
export function missingSamples(recipe, defs, has) {
  const out = [];
  for (const node of Object.values(recipe?.nodes ?? {})) {
    const props = defs[node?.type]?.paramsSchema?.properties ?? {};
    for (const [name, value] of Object.entries(node?.params ?? {})) {
      const p = props[name]?.['x-path'];
      if (p?.mode === 'read' && typeof value === 'string' && value.startsWith(SAMPLE_PREFIX) && !has(p.kind, value)) out.push({ kind: p.kind, path: value });
    }
  }
  return out;
}

export class SamplesOffer {
  /** @param {{ defs: () => object, has: (kind: string, path: string) => boolean, onWritten: () => Promise<void> }} opts */
  constructor(opts) {
    this.opts = opts;
    this.text = el('span', { class: 'samples-text' });
    this.button = el('button', { id: 'btn-write-samples', class: 'primary', onclick: () => void this.write() }, 'Write the sample files');
    this.bar = el('div', { id: 'samples-offer', class: 'samples-offer', hidden: '' }, this.text, this.button, el('button', { class: 'samples-dismiss', title: 'Dismiss', onclick: () => this.hide() }, '×'));
    document.getElementById('canvas-wrap')?.append(this.bar);
  }

  /** Shows the offer when the recipe names sample files the roots lack; hides it otherwise. */
  check(recipe) {
    const missing = missingSamples(recipe, this.opts.defs(), this.opts.has);
    if (missing.length === 0) return this.hide();
    const kinds = [...new Set(missing.map((m) => m.kind))];
    this.text.textContent = `This example uses ${missing.length} of loraflow's sample files (${missing[0].path}${missing.length > 1 ? ', …' : ''}), which the ${kinds.join(' and ')} root${kinds.length > 1 ? 's do' : ' does'} not hold. `;
    this.button.disabled = false;
    this.button.textContent = 'Write the sample files';
    this.bar.hidden = false;
  }

  hide() {
    this.bar.hidden = true;
  }

  async write() {
    this.button.disabled = true;
    this.button.textContent = 'writing…';
    try {
      const { written } = await api.writeSamples();
      const where = written.map((w) => `${w.root}/${w.dir}`).join(', ');
      await this.opts.onWritten(`wrote ${written[0]?.files.length ?? 0} sample files into ${where}`);
      this.hide();
    } catch (e) {
      this.text.textContent = `The sample files could not be written: ${e.message} `;
      this.button.disabled = false;
      this.button.textContent = 'Try again';
    }
  }
}
