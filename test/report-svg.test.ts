/**
 * The pictures by content: every SVG is well-formed XML, holds one cell per block id of the
 * family's scheme (in the scheme's order) with the report's values in data- attributes and the
 * modules' rank and alpha in the hover text; merge, apply and extract views hold one bar / line
 * per module with the report's numbers; the block-weight editor's grid and presets fit every
 * family's scheme; `loraflow inspect --plot` and `loraflow merge --report` write them (values
 * checked against dense float64 references and the merge's own report); PNG is refused.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readLora } from '../src/formats/read.ts';
import { blockSchemes } from '../src/formats/families.ts';
import { blockOf as fluxBlockOf } from '../src/formats/flux/blocks.ts';
import type { Patch } from '../src/adapter/model.ts';
import { analyzeStrength } from '../src/lora/block-strength.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { extractLora } from '../src/lora/extract.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { blockGrid, blockPresets, compactSpec } from '../src/report/block-grid.ts';
import { reportHtml } from '../src/report/html.ts';
import { strengthSvg } from '../src/report/strength-plot.ts';
import { applyView, extractView, mergeViews, strengthView } from '../src/report/views.ts';
import { SafetensorsFile } from '../src/safetensors/reader.ts';
import { referenceDeltas } from '../src/samples/reference-delta.ts';
import { cli } from './helpers/cli.ts';
import { useSampleLoras } from './helpers/sample-loras.ts';
import { useTempDir } from './helpers/temp-dir.ts';

const tmp = useTempDir('loraflow-report-svg-');
const samples = useSampleLoras(tmp);

afterEach(() => {
  vi.restoreAllMocks();
});

/** Well-formed XML (tags balanced, no attribute twice in a tag); throws saying where not. */
function checkXml(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)([^>]*?)(\/?)>/g)) {
    const [, close, name, rest, selfClose] = m as unknown as [string, string, string, string, string];
    const names = [...rest.matchAll(/\s([\w:-]+)="/g)].map((a) => a[1]!);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) throw new Error(`<${name}> has attribute ${dup} twice at ${m.index}`);
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}> at ${m.index}`);
    } else if (!selfClose) stack.push(name);
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`);
  expect(svg.replace(/<title>[\s\S]*?<\/title>/g, '')).not.toMatch(/&(?!amp;|lt;|gt;|quot;|#39;)/);
}

interface Element {
  attrs: Record<string, string>;
  title?: string;
}

const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

function attrsOf(tag: string): Record<string, string> {
  return Object.fromEntries([...tag.matchAll(/\s([\w:-]+)="([^"]*)"/g)].map((a) => [a[1]!, unescape(a[2]!)]));
}

/** The grids of one kind (`strength`, `cosine`, `apply-change`), each with its cells in document order. */
function grids(svg: string, kind: string): { attrs: Record<string, string>; cells: Element[] }[] {
  const out: { attrs: Record<string, string>; cells: Element[] }[] = [];
  const parts = svg.split(/(?=<g class="grid )/);
  for (const part of parts) {
    const head = /^<g class="grid ([\w-]+)"[^>]*>/.exec(part);
    if (!head || head[1] !== kind) continue;
    const cells = [...part.matchAll(/<g class="cell"([^>]*)><title>([\s\S]*?)<\/title>/g)].map((c) => ({ attrs: attrsOf(c[1]!), title: unescape(c[2]!) }));
    out.push({ attrs: attrsOf(head[0]), cells });
  }
  return out;
}

function elements(svg: string, cls: string): Element[] {
  return [...svg.matchAll(new RegExp(`<g class="${cls}"([^>]*)><title>([\\s\\S]*?)</title>`, 'g'))].map((c) => ({ attrs: attrsOf(c[1]!), title: unescape(c[2]!) }));
}

const FLUX_IDS = blockSchemes().find((s) => s.describe.startsWith('FLUX ('))!.ids;

describe('strength view', () => {
  it('one cell per FLUX block id per LoRA, with ‖ΔW‖ and module counts of the analysis; cosine cells per pair', async () => {
    const a = await analyzeStrength([samples.aitoolkit, samples.kohya]);
    const svg = strengthSvg(a, { labels: ['ai', 'ko'] });
    checkXml(svg);
    const strips = grids(svg, 'strength');
    expect(strips).toHaveLength(2);
    strips.forEach((g, s) => {
      expect(g.cells.map((c) => c.attrs['data-block'])).toEqual([...FLUX_IDS]);
      expect(g.attrs['data-label']).toBe(['ai', 'ko'][s]);
      for (const [i, c] of g.cells.entries()) {
        const b = a.sets[s]!.blocks[i]!;
        expect(Number(c.attrs['data-norm'])).toBe(b.norm);
        expect(Number(c.attrs['data-modules'])).toBe(b.modules);
      }
    });
    // rank and alpha per module on hover (kohya: rank 8, alpha 4)
    const d03 = strips[1]!.cells.find((c) => c.attrs['data-block'] === 'D03')!;
    expect(d03.title).toMatch(/^D03 \(ko\): ‖ΔW‖ [\d.]+\n\d+ modules:\n/);
    expect(d03.title).toContain('lora_unet_double_blocks_3_img_attn_qkv: rank 8, alpha 4, ‖ΔW‖');
    expect(strips[0]!.cells.find((c) => c.attrs['data-block'] === 'D03')!.title).toMatch(/transformer\.transformer_blocks\.3\.attn\.to_q: rank 4, ‖ΔW‖/);
    const cos = grids(svg, 'cosine');
    expect(cos).toHaveLength(1);
    expect(cos[0]!.cells.map((c) => c.attrs['data-block'])).toEqual([...FLUX_IDS]);
    for (const [i, c] of cos[0]!.cells.entries()) {
      const v = a.cosines[0]!.blocks[i]!.cosine;
      expect(c.attrs['data-cosine']).toBe(v === null ? 'none' : String(v));
    }
  });

  it('relative to the base, for every family with sample files (one cell per id of its scheme)', async () => {
    for (const family of ['sdxl', 'wan', 'z-image']) {
      const sets = await Promise.all(['kohya', 'diffusers'].map((f) => readLora(path.join(samples.dir, `${family}-${f}-lora.safetensors`))));
      try {
        const v = await strengthView(sets, ['k', 'd'], { base: path.join(samples.dir, `${family}-base.safetensors`) });
        checkXml(v.svg);
        const a = v.data as Awaited<ReturnType<typeof analyzeStrength>>;
        const strips = grids(v.svg, 'strength');
        expect(strips).toHaveLength(2);
        for (const [s, g] of strips.entries()) {
          expect(g.cells.map((c) => c.attrs['data-block'])).toEqual(a.ids);
          expect(a.ids.length).toBeGreaterThan(10);
          for (const [i, c] of g.cells.entries()) {
            const b = a.sets[s]!.blocks[i]!;
            if (b.modules === 0) expect(c.attrs['data-relative']).toBeUndefined();
            else expect(Number(c.attrs['data-relative'])).toBe(b.relative);
          }
        }
        expect(v.svg).toContain('data-relative="true"');
      } finally {
        await Promise.all(sets.map((s) => s.close()));
      }
    }
  });
});

describe('merge, apply and extract views', () => {
  it('a bar per merged module with its relative error, a line per module, the total curve and the chosen rank, a strip per input', async () => {
    const inputs = [{ set: samples.aitoolkit, weight: 1, label: 'ai' }, { set: samples.kohya, weight: 0.8, label: 'ko' }];
    const { set, report } = await mergeLoras(inputs, { method: 'svd', rank: 6 });
    const views = await mergeViews({ report, inputs, output: set });
    expect(views.map((v) => v.kind)).toEqual(['merge-error', 'merge-energy', 'merge-contributions']);
    for (const v of views) checkXml(v.svg);
    const bars = elements(views[0]!.svg, 'bar');
    expect(bars.map((b) => b.attrs['data-module'])).toEqual(report.modules.map((m) => m.module));
    bars.forEach((b, i) => {
      expect(Number(b.attrs['data-rel-error'])).toBe(report.modules[i]!.relError);
      expect(Number(b.attrs['data-rank'])).toBe(6);
    });
    expect(views[0]!.svg).toContain(`data-rel-error="${report.relError}"`);
    const linesOf = elements(views[1]!.svg, 'line');
    expect(linesOf).toHaveLength(report.modules.length + 1);
    const total = linesOf.at(-1)!;
    expect(total.attrs['data-module']).toBe('all');
    const energy = total.attrs['data-energy']!.split(' ').map(Number);
    expect(energy[5]).toBeCloseTo(1 - report.relError ** 2, 5);
    const marker = /<g class="chosen-rank" data-rank="(\d+)" data-energy="([^"]+)"/.exec(views[1]!.svg)!;
    expect(Number(marker[1])).toBe(6);
    expect(Number(marker[2])).toBe(energy[5]);
    const points = [...views[1]!.svg.matchAll(/<circle class="point"[^>]*data-rank="(\d+)" data-energy="([^"]+)"/g)];
    expect(points.map((p) => Number(p[2]))).toEqual(energy);
    const strips = grids(views[2]!.svg, 'strength');
    expect(strips.map((g) => g.cells.length)).toEqual([61, 61]);
    expect(strips.map((g) => [g.attrs['data-label'], g.attrs['data-detail']])).toEqual([['ai', '304 modules (0 only from it)'], ['ko', '304 modules (0 only from it)']]);
  });

  it('an apply: one cell per block id with ‖ΔW‖ / ‖W‖ from the per-tensor norms', async () => {
    const report = await applyToBase({ base: path.join(samples.dir, 'flux-base.safetensors'), out: tmp.path('applied.safetensors'), loras: [{ set: samples.kohya, weight: 1 }] });
    const v = applyView(report, 'flux');
    checkXml(v.svg);
    const [g] = grids(v.svg, 'apply-change');
    expect(g!.cells.map((c) => c.attrs['data-block'])).toEqual([...FLUX_IDS]);
    const byBlock = new Map<string, { c: number; b: number }>();
    for (const c of report.files[0]!.changes) {
      const id = fluxBlockOf({ component: c.component as Patch['component'], target: c.target })!;
      const acc = byBlock.get(id) ?? { c: 0, b: 0 };
      byBlock.set(id, { c: acc.c + c.changeNorm ** 2, b: acc.b + c.baseNorm ** 2 });
    }
    for (const cell of g!.cells) {
      const acc = byBlock.get(cell.attrs['data-block']!);
      if (!acc) expect(Number(cell.attrs['data-tensors'])).toBe(0);
      else expect(Number(cell.attrs['data-relative'])).toBeCloseTo(Math.sqrt(acc.c / acc.b), 12);
    }
  });

  it('an extraction: a line per extracted module, ending at 1 − relError²', async () => {
    const { set, report } = await extractLora({ base: path.join(samples.dir, 'flux-base.safetensors'), tuned: path.join(samples.dir, 'flux-finetune.safetensors'), rank: 3 });
    const v = await extractView(report, set);
    checkXml(v.svg);
    const ls = elements(v.svg, 'line').filter((l) => l.attrs['data-module'] !== 'all');
    expect(ls.map((l) => l.attrs['data-module'])).toEqual(report.modules.map((m) => m.key));
    ls.forEach((l, i) => {
      const e = l.attrs['data-energy']!.split(' ').map(Number);
      expect(e).toHaveLength(3);
      expect(e[2]).toBeCloseTo(1 - report.modules[i]!.relError ** 2, 5);
    });
  });

  it('the HTML report is self-contained: the SVGs inline, the numbers as JSON, nothing loaded from elsewhere', async () => {
    const v = await strengthView([samples.kohya], ['ko']);
    const html = reportHtml([v], { title: 'a <test> & more' });
    expect(html).toContain('<title>a &lt;test&gt; &amp; more</title>');
    expect(html).toContain(v.svg);
    expect(html).not.toMatch(/\s(src|href)=/);
    const json = JSON.parse(/<script type="application\/json" id="loraflow-data">([\s\S]*?)<\/script>/.exec(html)![1]!);
    expect(json[0].kind).toBe('strength');
    expect(json[0].data.sets[0].blocks).toHaveLength(61);
  });
});

describe('the block-weight editor\'s grid and presets', () => {
  it('fit every family\'s scheme: rows cover every id once, in order; every preset parses to its weights', () => {
    for (const scheme of blockSchemes()) {
      const rows = blockGrid(scheme.ids);
      expect(rows.flatMap((r) => r.ids)).toEqual([...scheme.ids]);
      expect(Math.max(...rows.map((r) => r.ids.length))).toBeLessThanOrEqual(20);
      const presets = blockPresets(scheme.ids);
      expect(presets.length).toBeGreaterThanOrEqual(4);
      for (const p of presets) {
        const parsed = scheme.parse(p.spec);
        expect(Object.fromEntries(parsed), `${scheme.describe}: ${p.name}`).toEqual(p.weights);
      }
    }
    const flux = blockPresets(FLUX_IDS).find((p) => p.name === 'D00–D18 only')!;
    expect(flux.spec).toBe('CLIP=0,T5=0,IN=0,S00-S37=0,OUT=0');
  });

  it('compactSpec writes any weights back so that the scheme reads them unchanged', () => {
    for (const scheme of blockSchemes()) {
      const weights = Object.fromEntries(scheme.ids.map((id, i) => [id, [1, 0, 0.5, 0.5, 1.25][(i * 7) % 5]!]));
      expect(Object.fromEntries(scheme.parse(compactSpec(weights, scheme.ids)))).toEqual(weights);
    }
  });
});

/** `main` in-process, what it prints as `out` / `err`. */
const cliArgv = (argv: string[]) => cli(...argv).then((r) => ({ code: r.code, out: r.stdout, err: r.stderr }));

describe('loraflow inspect --plot and merge --report', () => {
  it('inspect FILE --plot out.svg --base BASE: one cell per block id holding ‖ΔW‖ and ‖ΔW‖/‖W‖ of the dense reference', async () => {
    const out = tmp.path('plots/kohya.svg');
    const base = path.join(samples.dir, 'flux-base.safetensors');
    const r = await cliArgv(['inspect', path.join(samples.dir, 'flux-kohya-lora.safetensors'), '--plot', out, '--base', base]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/format: +kohya\narchitecture: flux/);
    expect(r.err).toContain(`plot: wrote ${out}`);
    const svg = await readFile(out, 'utf8');
    checkXml(svg);
    const [g] = grids(svg, 'strength');
    expect(g!.cells.map((c) => c.attrs['data-block'])).toEqual([...FLUX_IDS]);
    // reference: dense ΔW per target, base rows read from the file (kohya patches whole weights)
    const deltas = await referenceDeltas(samples.kohya);
    const file = await SafetensorsFile.open(base);
    const ref = new Map<string, { d: number; w: number }>();
    try {
      for (const d of deltas.values()) {
        const w = await file.readF32(d.target);
        const id = fluxBlockOf(d)!;
        const acc = ref.get(id) ?? { d: 0, w: 0 };
        ref.set(id, { d: acc.d + d.data.reduce((s, v) => s + v * v, 0), w: acc.w + w.reduce((s, v) => s + v * v, 0) });
      }
    } finally {
      await file.close();
    }
    for (const c of g!.cells) {
      const acc = ref.get(c.attrs['data-block']!);
      if (!acc) {
        expect(Number(c.attrs['data-norm'])).toBe(0);
        continue;
      }
      expect(Number(c.attrs['data-norm'])).toBeCloseTo(Math.sqrt(acc.d), 5);
      expect(Number(c.attrs['data-relative'])).toBeCloseTo(Math.sqrt(acc.d / acc.w), 7);
    }
  });

  it('inspect A B --plot out.html: both side by side with their cosine; another extension is refused with the ones written', async () => {
    const out = tmp.path('plots/both.html');
    const r = await cliArgv(['inspect', path.join(samples.dir, 'flux-kohya-lora.safetensors'), path.join(samples.dir, 'flux-aitoolkit-lora.safetensors'), '--plot', out]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`plot: wrote ${out} (strength of 2 LoRAs over 61 block ids)\n`);
    const html = await readFile(out, 'utf8');
    expect(grids(html, 'strength').map((g) => g.attrs['data-label'])).toEqual(['flux-kohya-lora.safetensors', 'flux-aitoolkit-lora.safetensors']);
    expect(grids(html, 'cosine')).toHaveLength(1);
    const gif = await cliArgv(['inspect', path.join(samples.dir, 'flux-kohya-lora.safetensors'), '--plot', tmp.path('x.gif')]);
    expect(gif.code).toBe(2);
    expect(gif.err).toMatch(/--plot .*x\.gif: write an \.svg, \.png or \.html file/);
    const two = await cliArgv(['inspect', path.join(samples.dir, 'flux-kohya-lora.safetensors'), path.join(samples.dir, 'flux-aitoolkit-lora.safetensors')]);
    expect(two.code).toBe(2);
  });

  it('merge … --report out.html: the merge\'s own per-module errors, its energy curve and the inputs\' contributions', async () => {
    const out = tmp.path('merged/m.safetensors');
    const html = tmp.path('merged/m.html');
    const [a, k] = ['flux-aitoolkit-lora.safetensors', 'flux-kohya-lora.safetensors'].map((f) => path.join(samples.dir, f));
    const r = await cliArgv(['merge', out, a!, `${k}:0.8`, '--method', 'svd', '--rank', '6', '--report', html]);
    expect(r.code, r.err).toBe(0);
    // the command line names the file; the pictures are in it, not on stdout
    expect(r.out).toMatch(/^report: \{"path":".*m\.html","views":\[\{"kind":"merge-error","title":"[^"]+"\},/m);
    const page = await readFile(html, 'utf8');
    expect([...page.matchAll(/<section class="view" id="view-\d" data-kind="([\w-]+)"/g)].map((m) => m[1])).toEqual(['merge-error', 'merge-energy', 'merge-contributions']);
    const { report } = await mergeLoras([{ set: samples.aitoolkit, weight: 1 }, { set: samples.kohya, weight: 0.8 }], { method: 'svd', rank: 6 });
    const bars = elements(page, 'bar');
    expect(bars.map((b) => b.attrs['data-module'])).toEqual(report.modules.map((m) => m.module));
    bars.forEach((b, i) => expect(Number(b.attrs['data-rel-error'])).toBeCloseTo(report.modules[i]!.relError, 6));
    expect(Number(/<g class="chosen-rank" data-rank="6" data-energy="([^"]+)"/.exec(page)![1])).toBeCloseTo(1 - report.relError ** 2, 5);
    expect(grids(page, 'strength').map((g) => g.attrs['data-label'])).toEqual(['flux-aitoolkit-lora.safetensors', 'flux-kohya-lora.safetensors']);
    const bad = await cliArgv(['merge', out, a!, k!, '--report', tmp.path('r.txt')]);
    expect(bad.code).toBe(2);
  });
});
