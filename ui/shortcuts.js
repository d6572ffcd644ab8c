// Keyboard shortcuts (the ones ComfyUI users reach for) and the list of them ("?" or the toolbar's
// ⌨ button). litegraph itself handles copy, paste, select all and delete on the canvas.

import { el } from './dom.js';

export const SHORTCUTS = [
  ['Ctrl+Enter', 'run the graph'],
  ['Ctrl+Z', 'undo'],
  ['Ctrl+Shift+Z / Ctrl+Y', 'redo'],
  ['Ctrl+C / Ctrl+V', 'copy / paste the selected nodes (params included)'],
  ['Ctrl+Shift+V', 'paste, keeping the links into the pasted nodes'],
  ['Ctrl+A', 'select every node'],
  ['Delete / Backspace', 'delete the selected nodes'],
  ['Ctrl+G', 'put the selected nodes in a group'],
  ['Double-click on the canvas', 'search for a node to add'],
  ['Drag a link to empty canvas', 'search for a node that takes it, connected when added'],
  ['Space + drag', 'move the canvas'],
  ['Escape', 'close a dialog'],
  ['?', 'this list'],
];

const typing = (t) => t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));

/**
 * @param {object} actions
 * @param {() => void} actions.run
 * @param {() => void} actions.undo
 * @param {() => void} actions.redo
 * @param {() => void} actions.group
 */
export function installShortcuts(actions) {
  const modal = el('div', { class: 'modal shortcuts', id: 'shortcuts', hidden: '' },
    el('div', { class: 'modal-body' },
      el('div', { class: 'modal-head' }, el('h3', {}, 'Keyboard shortcuts'), el('button', { class: 'shortcuts-close', title: 'Close (Esc)', onclick: () => (modal.hidden = true) }, '✕')),
      el('table', { class: 'shortcut-table' }, el('tbody', {}, ...SHORTCUTS.map(([k, what]) => el('tr', {}, el('td', {}, el('kbd', {}, k)), el('td', {}, what)))))));
  modal.addEventListener('click', (e) => {
    if (e.target === modal) modal.hidden = true;
  });
  document.body.append(modal);
  const toggle = () => (modal.hidden = !modal.hidden);
  window.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !modal.hidden) {
      modal.hidden = true;
      return;
    }
    if (typing(e.target) || document.querySelector('.litesearchbox')) return;
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    let done = true;
    if (ctrl && e.key === 'Enter') actions.run();
    else if (ctrl && key === 'z' && !e.shiftKey) actions.undo();
    else if (ctrl && ((key === 'z' && e.shiftKey) || key === 'y')) actions.redo();
    else if (ctrl && key === 'g') actions.group();
    else if (!ctrl && e.key === '?') toggle();
    else done = false;
    if (done) {
      e.preventDefault();
      e.stopPropagation();
    }
  });
  return { toggle };
}
