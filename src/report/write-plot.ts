/**
 * `loraflow inspect FILE … --plot OUT`: the strength view of LoRA files, written as SVG, as a
 * self-contained HTML page, or as PNG (the same SVG rasterised at twice its size by png.ts).
 * Written to a temporary name and renamed, so an interrupted run never leaves half a picture.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { inputError } from '../errors.ts';
import { readLora, type LoraHandle } from '../formats/read.ts';
import { reportHtml } from './html.ts';
import { svgToPng } from './png.ts';
import type { View } from './view.ts';
import { strengthView } from './views.ts';

/** What each extension of OUT holds, from the one view. */
const WRITERS: Record<string, (view: View, lines: string[]) => Promise<string | Uint8Array>> = {
  svg: async (view) => view.svg,
  html: async (view, lines) => reportHtml([view], { title: view.title, lines }),
  htm: async (view, lines) => reportHtml([view], { title: view.title, lines }),
  png: async (view) => (await svgToPng(view.svg)).png,
};

async function writeAtomically(out: string, content: string | Uint8Array): Promise<void> {
  await mkdir(dirname(out), { recursive: true });
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await writeFile(tmp, content);
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
}

export async function writePlot(files: readonly string[], out: string, opts: { base?: string } = {}): Promise<string> {
  const ext = /\.([^./\\]+)$/.exec(out)?.[1]?.toLowerCase();
  const writer = ext === undefined ? undefined : WRITERS[ext];
  if (!writer) throw inputError('PLOT', `--plot ${out}: write an .svg, .png or .html file`);
  const sets: LoraHandle[] = [];
  try {
    for (const f of files) sets.push(await readLora(f));
    const labels = files.map((f) => basename(f));
    const view = await strengthView(sets, labels, { base: opts.base });
    const lines = [...files.map((f, i) => `LoRA ${i + 1}: ${f}`), ...(opts.base ? [`base: ${opts.base}`] : [])];
    await writeAtomically(out, await writer(view, lines));
    const a = view.data as { ids: string[]; sets: { total: { norm: number } }[] };
    return `plot: wrote ${out} (strength of ${files.length} LoRA${files.length === 1 ? '' : 's'} over ${a.ids.length} block ids${opts.base ? ', relative to the base' : ''})`;
  } finally {
    await Promise.all(sets.map((s) => s.close()));
  }
}
