/**
 * `loraflow inspect FILE --plot out.png`: the strength SVG rasterised. Checked by content: a valid
 * PNG (decoded by pngjs) at twice the SVG's size, whose pixels inside known cells have the cells'
 * fill colours, and labels drawn (the font is loaded: text pixels differ from the cell colour).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.ts';
import { writeSamples } from '../src/samples/write-samples.ts';
import { svgToPng } from '../src/report/png.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-report-png-');
let dir: string;

beforeAll(async () => {
  dir = tmp.path('samples');
  await writeSamples(dir);
}, 120_000);

afterEach(() => {
  vi.restoreAllMocks();
});

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
  return { code: await main(argv), out, err };
}

const hexRgb = (hex: string): number[] => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

function pixel(png: PNG, x: number, y: number): number[] {
  const i = (Math.round(y) * png.width + Math.round(x)) * 4;
  return [...png.data.subarray(i, i + 4)];
}

/** Each heat cell's block id, rectangle and fill colour, from the SVG the PNG was drawn from. */
function cellsOf(svg: string): { block: string; x: number; y: number; size: number; fill: string }[] {
  return [...svg.matchAll(/<g class="cell" data-block="([^"]+)"[^>]*>[\s\S]*?<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="[\d.]+" rx="3" fill="([^"]+)"/g)]
    .map((m) => ({ block: m[1]!, x: Number(m[2]), y: Number(m[3]), size: Number(m[4]), fill: m[5]! }));
}

describe('loraflow inspect --plot out.png', () => {
  it('writes a PNG at twice the SVG\'s size, each cell in its colour, with its labels drawn', async () => {
    const lora = path.join(dir, 'flux-kohya-lora.safetensors');
    const svgOut = tmp.path('plots/kohya.svg');
    const pngOut = tmp.path('plots/kohya.png');
    expect((await cli(['inspect', lora, '--plot', svgOut])).code).toBe(0);
    const r = await cli(['inspect', lora, '--plot', pngOut]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe(`plot: wrote ${pngOut} (strength of 1 LoRA over 61 block ids)\n`);

    const svg = await readFile(svgOut, 'utf8');
    const bytes = await readFile(pngOut);
    expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const png = PNG.sync.read(bytes);
    const [, w, h] = /^<svg[^>]*\swidth="([\d.]+)"\s+height="([\d.]+)"/.exec(svg)!;
    expect([png.width, png.height]).toEqual([Math.ceil(Number(w) * 2), Math.ceil(Number(h) * 2)]);

    const cells = cellsOf(svg);
    expect(cells).toHaveLength(61);
    // more than one colour among the cells, or this would not tell cells apart
    expect(new Set(cells.map((c) => c.fill)).size).toBeGreaterThan(3);
    for (const c of cells.filter((x) => x.fill.startsWith('#'))) {
      // a point in the cell's lower left, clear of the rounded corner and of the centred id
      const got = pixel(png, (c.x + 4) * 2, (c.y + c.size - 4) * 2);
      const want = hexRgb(c.fill);
      got.slice(0, 3).forEach((v, k) => expect(Math.abs(v - want[k]!), `${c.block} channel ${k}: ${got} vs ${c.fill}`).toBeLessThanOrEqual(2));
      expect(got[3]).toBe(255);
    }
    // the id written in the middle of a cell: some pixels there are not the cell's colour
    const d03 = cells.find((c) => c.block === 'D03')!;
    const fill = hexRgb(d03.fill);
    let ink = 0;
    for (let y = (d03.y + 8) * 2; y < (d03.y + 17) * 2; y++) {
      for (let x = (d03.x + 5) * 2; x < (d03.x + 20) * 2; x++) if (pixel(png, x, y).slice(0, 3).some((v, k) => Math.abs(v - fill[k]!) > 40)) ink++;
    }
    expect(ink).toBeGreaterThan(20);
  });

  it('svgToPng: size by scale, the background colour where nothing is drawn', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="30" height="10"><rect x="0" y="0" width="10" height="10" fill="#ff0000"/></svg>';
    const { png, width, height } = await svgToPng(svg, { scale: 3, background: '#0000ff' });
    expect([width, height]).toEqual([90, 30]);
    const img = PNG.sync.read(Buffer.from(png));
    expect(pixel(img, 15, 15)).toEqual([255, 0, 0, 255]);
    expect(pixel(img, 60, 15)).toEqual([0, 0, 255, 255]);
  });
});
