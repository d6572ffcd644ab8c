// File widgets: what each root holds, with every file's format and family beside its name
// (`samples/foo.safetensors — kohya · flux`), from GET /api/models (the server reads headers only and
// caches them per file version). The litegraph combo keeps the plain path as its value; only the
// menu it opens is ours, so the label never ends up in a recipe.

import { api } from './api.js';

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export class FileCatalog {
  constructor() {
    /** root name → [{ path, info, kind, format, architecture }] */
    this.byRoot = new Map();
  }

  async refresh(roots) {
    await Promise.all(roots.map(async ({ name }) => {
      try {
        this.byRoot.set(name, (await api.models(name)).entries);
      } catch (e) {
        console.warn(`cannot list root ${name}`, e);
      }
    }));
  }

  /** The combo's values: '' (not set) and the paths of the kind's root. */
  values(kind) {
    return ['', ...(this.byRoot.get(kind) ?? []).map((e) => e.path)];
  }

  entries(kind) {
    return this.byRoot.get(kind) ?? [];
  }
}

/**
 * Opens the file menu of a path combo at the pointer: one entry per file, its format and family
 * after the name; picking one sets the widget's value to the path and reports the edit.
 */
export function openFileMenu({ LiteGraph, widget, node, canvas, event, entries }) {
  const items = [
    { content: '', title: '<span class="file-info">(none)</span>', path: '' },
    ...entries.map((e) => ({ content: e.path, title: `${esc(e.path)}<span class="file-info"> — ${esc(e.info)}</span>`, path: e.path, className: `file-${e.kind ?? 'unreadable'}` })),
  ];
  return new LiteGraph.ContextMenu(items, {
    scale: Math.max(1, canvas.ds.scale),
    event,
    className: 'dark file-menu',
    callback: (item) => {
      if (!item || item.path === undefined || item.path === widget.value) return;
      widget.value = item.path;
      widget.callback?.(widget.value, canvas, node);
      node.setDirtyCanvas?.(true, true);
    },
  });
}
