/**
 * SVG → PNG for `inspect --plot out.png`: resvg compiled to WebAssembly (no native build, no
 * install script) with the DejaVu Sans TTF from its npm package, since the wasm renderer cannot
 * reach the system's fonts and a picture without its labels is no picture. Both load on first use.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface Renderer {
  Resvg: typeof import('@resvg/resvg-wasm').Resvg;
  fonts: Uint8Array[];
}

let renderer: Promise<Renderer> | undefined;

/** initWasm may run once per process; every caller shares the one load. */
function loadRenderer(): Promise<Renderer> {
  renderer ??= (async () => {
    const { initWasm, Resvg } = await import('@resvg/resvg-wasm');
    const [wasm, regular, bold] = await Promise.all([
      readFile(require.resolve('@resvg/resvg-wasm/index_bg.wasm')),
      readFile(require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf')),
      readFile(require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf')),
    ]);
    await initWasm(wasm);
    return { Resvg, fonts: [regular, bold] };
  })();
  renderer.catch(() => (renderer = undefined));
  return renderer;
}

export interface PngImage {
  png: Uint8Array;
  width: number;
  height: number;
}

/**
 * Rasterises an SVG document at `scale` × its own size, on `background` (the plots draw their
 * own dark panel; transparent corners would show a viewer's checkerboard).
 */
export async function svgToPng(svg: string, opts: { scale?: number; background?: string } = {}): Promise<PngImage> {
  const { Resvg, fonts } = await loadRenderer();
  const r = new Resvg(svg, {
    font: { fontBuffers: fonts, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
    fitTo: { mode: 'zoom', value: opts.scale ?? 2 },
    ...(opts.background ? { background: opts.background } : {}),
  });
  try {
    const image = r.render();
    try {
      return { png: image.asPng(), width: image.width, height: image.height };
    } finally {
      image.free();
    }
  } finally {
    r.free();
  }
}
