// DOM building shared by the editor's panels: one element with its attributes, listeners and
// children in one call, so each panel states what it shows rather than how to assemble it.

/** `el('button', { class: 'x', onclick: f }, 'Run')`: `on…` attributes become listeners; null children are skipped. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}
