/**
 * `loraflow inspect FILE … --plot OUT`: the strength view of LoRA files, written as SVG or as a
 * self-contained HTML page. PNG would need a rasteriser (a native dependency); it is refused with
 * what to do instead.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { inputError } from '../errors.ts';
import { readLora, type LoraHandle } from '../formats/read.ts';
import { reportHtml } from './html.ts';
import { strengthView } from './views.ts';

export async function writePlot(files: readonly string[], out: string, opts: { base?: string } = {}): Promise<string> {
  const ext = /\.([^./\\]+)$/.exec(out)?.[1]?.toLowerCase();
  if (ext === 'png') throw inputError('PLOT', `--plot ${out}: PNG is not written (drawing it needs a rasteriser, which loraflow does not ship); write ${out.replace(/\.png$/i, '.svg')} and open it in a browser or convert it (rsvg-convert -o out.png out.svg)`);
  if (ext !== 'svg' && ext !== 'html' && ext !== 'htm') throw inputError('PLOT', `--plot ${out}: write an .svg or an .html file`);
  const sets: LoraHandle[] = [];
  try {
    for (const f of files) sets.push(await readLora(f));
    const labels = files.map((f) => basename(f));
    const view = await strengthView(sets, labels, { base: opts.base });
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, ext === 'svg' ? view.svg : reportHtml([view], { title: view.title, lines: [...files.map((f, i) => `LoRA ${i + 1}: ${f}`), ...(opts.base ? [`base: ${opts.base}`] : [])] }));
    const a = view.data as { ids: string[]; sets: { total: { norm: number } }[] };
    return `plot: wrote ${out} (strength of ${files.length} LoRA${files.length === 1 ? '' : 's'} over ${a.ids.length} block ids${opts.base ? ', relative to the base' : ''})`;
  } finally {
    await Promise.all(sets.map((s) => s.close()));
  }
}
