import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';

/** The editor's own files (index.html, ES modules, CSS). */
export const UI_DIR = fileURLToPath(new URL('../ui/', import.meta.url));

/** The example recipes shipped with loraflow. */
export const GRAPHS_DIR = fileURLToPath(new URL('../graphs/', import.meta.url));

/**
 * litegraph's dist folder. Its package.json is not exported, so resolve the ES entry (the package's
 * `import` condition) and take its directory.
 */
export function litegraphDist(): string {
  return path.dirname(fileURLToPath(import.meta.resolve('@comfyorg/litegraph')));
}

/**
 * The editor and the two litegraph files it needs, named one by one: the rest of the dist folder
 * (source maps, .d.ts, the UMD build) is not served.
 */
export function staticRouter(): Router {
  const r = Router();
  const dist = litegraphDist();
  const vendor: Record<string, string> = {
    '/vendor/litegraph/litegraph.es.js': path.join(dist, 'litegraph.es.js'),
    '/vendor/litegraph/litegraph.css': path.join(dist, 'css', 'litegraph.css'),
  };
  for (const [route, file] of Object.entries(vendor)) {
    r.get(route, (_req, res) => res.sendFile(file, { maxAge: '1d' }));
  }
  // The editor changes as it is developed; make the browser revalidate rather than cache it.
  r.use(express.static(UI_DIR, { index: 'index.html', maxAge: 0, etag: true, dotfiles: 'deny' }));
  return r;
}
