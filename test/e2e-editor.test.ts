/**
 * The editor end to end in headless Chromium, against a real server with loraflow's real nodes and
 * the built-in sample files: a new user opens the page, loads an example from graphs/, sees that
 * its file params point nowhere (problems drawn on the nodes), points them at the sample files
 * through the file combos, runs it, watches progress, gets the result (files, inspect report),
 * downloads the recipe, and `loraflow run` on that download makes the same file, byte for byte.
 * The YAML download opens again as the same recipe, and dropping the output file on the canvas
 * recovers the recipe from its header. Screenshots:
 * test-results/editor.png (finished run, results) and test-results/editor-running.png (mid-run).
 *
 * The pictures (issue 15): Plot nodes show, in the Views tab, the strength by block of LoRAs
 * (relative to a base, side by side with their cosine per block), what a merge did (relative error
 * per module, energy kept against rank, each input's contribution), what an apply changed and an
 * extraction's energy curves; an inspected LoRA gets its strength picture; the block-weight node's
 * visual editor sets its vector with sliders and presets. Every picture's values are checked
 * against the same report computed here, and screenshots go to docs/screenshots/.
 */
import { registry } from '../nodes/index.ts';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSamples } from '../src/samples/write-samples.ts';
import { recipeToJson, withoutUi } from '../src/graph/index.ts';
import { GRAPHS_DIR } from '../server/static.ts';
import { startTestServer, type TestServer } from './helpers/server-harness.ts';
import { launchChromium, openPage } from './helpers/browser.ts';
import { readLora, type LoraHandle } from '../src/formats/read.ts';
import { analyzeStrength } from '../src/lora/block-strength.ts';
import { openBaseNorms } from '../src/lora/base-norms.ts';
import { applyToBase } from '../src/lora/apply.ts';
import { extractLora } from '../src/lora/extract.ts';
import { mergeLoras } from '../src/lora/merge.ts';
import { applyData } from '../src/report/apply-plot.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SCREENSHOT = path.join(REPO, 'test-results', 'editor.png');

let t: TestServer;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  t = await startTestServer({ nodes: 'real', roots: { loras: 'samples', checkpoints: 'samples', output: 'out' }, examplesDir: GRAPHS_DIR });
  await writeSamples(path.join(t.dir, 'samples'));
  browser = await launchChromium();
  page = await openPage(browser, { viewport: { width: 1500, height: 860 }, acceptDownloads: true }, pageErrors);
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

/** Runs the CLI in the server's folder; resolves with the exit code and output. */
function cli(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(REPO, 'bin', 'loraflow.js'), ...args], { cwd: t.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

declare global {
  interface Window {
    loraflow: any;
  }
}

describe('the editor, end to end', () => {
  it('loads an example, points it at the samples, runs it with progress, and its download runs headless to the same file', async () => {
    await page.goto(`${t.url}/`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 20_000 });

    // The palette comes from /api/nodes.
    await expect.poll(() => page.locator('.node-item').count()).toBe(Object.keys((await t.get('/api/nodes')).body).length);

    // Load the example that fails in sd-scripts: an ai-toolkit and a kohya LoRA merged into one.
    const examples = await page.locator('#examples option').allTextContents();
    expect(examples).toContain('Merge an ai-toolkit and a kohya FLUX LoRA');
    await page.selectOption('#examples', 'merge-aitoolkit-kohya');
    await page.waitForFunction(() => window.loraflow.graph._nodes.length === 4);

    // Its paths (samples/…) are not in our loras root (which *is* the samples folder): the problems
    // are listed and drawn on the two load nodes' path widgets.
    await page.waitForFunction(() => document.getElementById('problem-count')!.textContent === '2');
    const problems = await page.evaluate(() => window.loraflow.graph._nodes.flatMap((n: any) => n.lf.problems.map((p: any) => `${n.properties.rid}.${p.param}:${p.code}`)).sort());
    expect(problems).toEqual(['aitoolkit.path:file_not_found', 'kohya.path:file_not_found']);

    // Point them at the sample files the way a user does: click the combo, pick the file.
    for (const [rid, file] of [['aitoolkit', 'flux-aitoolkit-lora.safetensors'], ['kohya', 'flux-kohya-lora.safetensors']] as const) {
      const pos = await page.evaluate(([r]) => window.loraflow.widgetScreenPos(r, 'path'), [rid]);
      await page.mouse.click(pos.x, pos.y);
      // each file with its format and family beside it, from its header
      const entries = await page.locator('.litemenu-entry').allTextContents();
      expect(entries).toEqual(expect.arrayContaining(['flux-aitoolkit-lora.safetensors — diffusers · flux', 'flux-kohya-lora.safetensors — kohya · flux', 'flux-base.safetensors — checkpoint · flux']));
      await page.locator('.litemenu-entry', { hasText: new RegExp(`^${file.replace('.', '\\.')} — `) }).click();
    }
    await page.waitForFunction(() => document.getElementById('problem-count')!.hidden);
    const recipe = await page.evaluate(() => window.loraflow.currentRecipe());
    expect(recipe.nodes.aitoolkit.params.path).toBe('flux-aitoolkit-lora.safetensors');
    expect(recipe.nodes.kohya.params.path).toBe('flux-kohya-lora.safetensors');

    // Run it and watch.
    await page.click('#btn-run');
    await expect.poll(() => page.isEnabled('#btn-cancel')).toBe(true);
    // A node drawn as running (blue outline, percent badge, progress bar): caught frame by frame.
    await page.waitForFunction(() => window.loraflow.graph._nodes.some((n: any) => n.lf.state === 'running'), null, { polling: 'raf', timeout: 60_000 });
    await mkdir(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT.replace('.png', '-running.png') });
    await page.waitForSelector('.run-summary.success', { state: 'attached', timeout: 90_000 });
    const summary = await page.textContent('#run-summary');
    expect(summary).toMatch(/^Success in .*: 1 file\(s\) written\.$/);
    expect(await page.isEnabled('#btn-cancel')).toBe(false);
    const seen = await page.evaluate(() => ({
      progress: window.loraflow.panel.progressEvents,
      states: Object.fromEntries(window.loraflow.graph._nodes.map((n: any) => [n.properties.rid, n.lf.state])),
    }));
    expect(seen.progress).toBeGreaterThan(0);
    expect(seen.states).toEqual({ aitoolkit: 'done', kohya: 'done', merge: 'done', save: 'done' });
    const rows = await page.locator('#node-table tr').allTextContents();
    expect(rows.map((r) => r.replace(/\s+/g, ' '))).toEqual(['aitoolkit', 'kohya', 'merge', 'save'].map((id) => expect.stringMatching(new RegExp(`^${id}done\\d`))));

    // The result: the file written, and its inspection (a kohya FLUX LoRA).
    // The example writes out/flux-merged.safetensors under the output root (here: <dir>/out).
    const written = path.join(t.dir, 'out', 'out', 'flux-merged.safetensors');
    await expect.poll(() => page.textContent('#results')).toContain(written);
    await expect.poll(() => page.textContent('#inspect-report'), { timeout: 10_000 }).toContain('kohya / flux');
    await page.screenshot({ path: SCREENSHOT });

    // Download the recipe and run it headless: the same file, byte for byte.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#btn-download-json')]);
    expect(download.suggestedFilename()).toBe('merge-aitoolkit-kohya.json');
    const downloaded = path.join(t.dir, 'downloaded.json');
    await download.saveAs(downloaded);
    const text = await readFile(downloaded, 'utf8');
    expect(text).toBe(recipeToJson(JSON.parse(text)));
    const run = await cli(['run', downloaded, '--root', 'loras=samples', '--root', 'output=out-cli']);
    expect(run.code, run.out).toBe(0);
    const [fromEditor, fromCli] = await Promise.all([readFile(written), readFile(path.join(t.dir, 'out-cli', 'out', 'flux-merged.safetensors'))]);
    expect(fromCli.equals(fromEditor)).toBe(true);

    // Saved on the server by name, and loaded back.
    await page.fill('#recipe-name', 'my-merge');
    await page.click('#btn-save');
    await expect.poll(() => page.textContent('#status')).toBe('saved my-merge.json');
    const saved = await readFile(path.join(t.recipes, 'my-merge.json'), 'utf8');
    expect(saved).toBe(recipeToJson(JSON.parse(saved)));
    expect(recipeToJson(withoutUi(JSON.parse(saved)))).toBe(recipeToJson(withoutUi(JSON.parse(text))));
    await page.click('#btn-new');
    expect(await page.evaluate(() => window.loraflow.graph._nodes.length)).toBe(0);
    expect(await page.inputValue('#recipe-name')).toBe('');
    await page.fill('#recipe-name', 'my-merge');
    await page.click('#btn-load');
    await page.waitForFunction(() => window.loraflow.graph._nodes.length === 4);
    await page.fill('#recipe-name', 'merge-aitoolkit-kohya');

    // The YAML download opens again (file upload) as the same recipe.
    const [yamlDownload] = await Promise.all([page.waitForEvent('download'), page.click('#btn-download-yaml')]);
    expect(yamlDownload.suggestedFilename()).toBe('merge-aitoolkit-kohya.yaml');
    const yamlPath = path.join(t.dir, 'downloaded.yaml');
    await yamlDownload.saveAs(yamlPath);
    await page.click('#btn-new');
    await page.setInputFiles('#file-input', yamlPath);
    await expect.poll(() => page.textContent('#status')).toContain('loaded downloaded.yaml');
    expect(recipeToJson(withoutUi(await page.evaluate(() => window.loraflow.currentRecipe())))).toBe(recipeToJson(withoutUi(JSON.parse(text))));

    // Dropping the output .safetensors on the canvas brings its recipe back (the page sends only the header).
    await page.click('#btn-new');
    const bytes = (await readFile(written)).toString('base64');
    await page.evaluate((b64) => {
      const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([data], 'flux-merged.safetensors'));
      const target = document.getElementById('canvas-wrap')!;
      for (const type of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, bytes);
    await expect.poll(() => page.textContent('#status')).toContain('loaded recipe of flux-merged.safetensors');
    const recovered = await page.evaluate(() => window.loraflow.currentRecipe());
    expect(recipeToJson(withoutUi(recovered))).toBe(recipeToJson(withoutUi(JSON.parse(text))));

    expect(pageErrors).toEqual([]);
  });
});

const SHOTS = path.join(REPO, 'docs', 'screenshots');

/** Opens a recipe the way a user does (the file picker) and runs it; resolves when it succeeded. */
async function openAndRun(recipe: Record<string, unknown>, name: string): Promise<void> {
  const file = path.join(t.dir, `${name}.json`);
  await writeFile(file, JSON.stringify(recipe));
  await page.setInputFiles('#file-input', file);
  await expect.poll(() => page.textContent('#status')).toContain(`loaded ${name}.json`);
  await page.waitForFunction(() => document.getElementById('problem-count')!.hidden);
  const before = await page.evaluate(() => window.loraflow.state.runId ?? null);
  await page.click('#btn-run');
  await page.waitForFunction((prev) => window.loraflow.state.runId !== prev && document.getElementById('run-summary')!.classList.contains('success'), before, { timeout: 90_000 });
}

/** Every cell of the grids of one kind in a view card: block id and data- attributes. */
function gridCells(kind: string, gridKind: string, origin = 'run') {
  return page.evaluate(([k, g, o]) => Array.from(document.querySelectorAll(`.view-card[data-kind="${k}"][data-origin="${o}"] svg g.grid.${g}`)).map((grid) => ({
    data: { ...(grid as HTMLElement).dataset },
    cells: Array.from(grid.querySelectorAll('g.cell')).map((c) => ({ ...(c as HTMLElement).dataset })),
  })), [kind, gridKind, origin] as const);
}

/** The enlarged picture of a view card, as a screenshot under docs/screenshots/. */
async function enlargedShot(kind: string, file: string): Promise<void> {
  await page.click(`.view-card[data-kind="${kind}"] .view-enlarge`);
  await page.waitForSelector(`#view-modal:not([hidden]) .view-modal-svg[data-kind="${kind}"] svg`);
  await page.locator('#view-modal .modal-body').screenshot({ path: path.join(SHOTS, file) });
  await page.keyboard.press('Escape');
  await page.waitForSelector('#view-modal', { state: 'hidden' });
}

const v = (type: string) => ({ type, v: registry.get(type)!.v });

describe('the editor\'s pictures', () => {
  let kohya: LoraHandle;
  let aitoolkit: LoraHandle;
  const sample = (f: string) => path.join(t.dir, 'samples', f);

  beforeAll(async () => {
    await mkdir(SHOTS, { recursive: true });
    [kohya, aitoolkit] = await Promise.all([readLora(sample('flux-kohya-lora.safetensors')), readLora(sample('flux-aitoolkit-lora.safetensors'))]);
    await page.setViewportSize({ width: 1500, height: 900 });
    // a fresh page: these tests do not depend on the one above
    await page.goto(`${t.url}/`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 20_000 });
  });
  afterAll(async () => {
    await Promise.all([kohya?.close(), aitoolkit?.close()]);
  });

  it('a Plot node shows two LoRAs\' strength by block relative to the base, with their cosine per block', async () => {
    await openAndRun({
      format: 'loraflow.recipe', schemaVersion: 1, meta: { name: 'Strength of two LoRAs' },
      nodes: {
        aitoolkit: { ...v('load-lora'), params: { path: 'flux-aitoolkit-lora.safetensors' } },
        kohya: { ...v('load-lora'), params: { path: 'flux-kohya-lora.safetensors' } },
        base: { ...v('load-model'), params: { path: 'flux-base.safetensors' } },
        plot: { ...v('plot'), in: { loras: ['aitoolkit.lora', 'kohya.lora'], base: 'base.model' } },
      },
    }, 'plot-strength');
    // the Views tab opens with the picture; the Results tab names it without its SVG text
    await expect.poll(() => page.locator('#tab-views').isVisible()).toBe(true);
    expect(await page.textContent('#results')).toContain('(shown in the Views tab)');
    const strips = await gridCells('strength', 'strength');
    const norms = await openBaseNorms(sample('flux-base.safetensors'), [aitoolkit, kohya]);
    const a = await analyzeStrength([aitoolkit, kohya], { baseNorm2: norms.norm2 }).finally(() => norms.close());
    expect(strips.map((g) => g.data.label)).toEqual(['flux-aitoolkit-lora.safetensors', 'flux-kohya-lora.safetensors']);
    strips.forEach((g, s) => {
      expect(g.cells.map((c) => c.block)).toEqual(a.ids);
      g.cells.forEach((c, i) => {
        const b = a.sets[s]!.blocks[i]!;
        expect(Number(c.norm)).toBeCloseTo(b.norm, 10);
        if (b.modules) expect(Number(c.relative)).toBeCloseTo(b.relative!, 10);
      });
    });
    const [cos] = await gridCells('strength', 'cosine');
    expect(cos!.cells).toHaveLength(61);
    cos!.cells.forEach((c, i) => {
      const x = a.cosines[0]!.blocks[i]!.cosine;
      if (x === null) expect(c.cosine).toBe('none');
      else expect(Number(c.cosine)).toBeCloseTo(x, 10);
    });
    // hover text: rank and alpha of every module of the block
    const title = await page.evaluate(() => document.querySelector('.view-card[data-kind="strength"] g.grid.strength[data-set="1"] g.cell[data-block="D03"] title')!.textContent);
    expect(title).toContain('lora_unet_double_blocks_3_img_attn_qkv: rank 8, alpha 4, ‖ΔW‖');
    await page.screenshot({ path: path.join(SHOTS, 'editor-views.png') });
    await enlargedShot('strength', 'strength-by-block.png');
  });

  it('a merge\'s Plot: relative error per module, energy kept against rank, each input\'s contribution; the merged file\'s own strength', async () => {
    await openAndRun({
      format: 'loraflow.recipe', schemaVersion: 1, meta: { name: 'SVD merge with its pictures' },
      nodes: {
        aitoolkit: { ...v('load-lora'), params: { path: 'flux-aitoolkit-lora.safetensors' } },
        kohya: { ...v('load-lora'), params: { path: 'flux-kohya-lora.safetensors' } },
        merge: { ...v('merge-loras'), v: '1.1.0', params: { method: 'svd', rank: 6, weights: [1, 0.8] }, in: { loras: ['aitoolkit.lora', 'kohya.lora'] } },
        save: { ...v('save-lora'), params: { path: 'out/merged-svd.safetensors' }, in: { lora: 'merge.lora' } },
        plot: { ...v('plot'), params: { weights: [1, 0.8] }, in: { loras: ['aitoolkit.lora', 'kohya.lora'], report: 'merge.report', result: 'merge.lora' } },
      },
    }, 'plot-merge');
    const { report } = await mergeLoras([{ set: aitoolkit, weight: 1 }, { set: kohya, weight: 0.8 }], { method: 'svd', rank: 6 });
    const bars = await page.evaluate(() => Array.from(document.querySelectorAll('.view-card[data-kind="merge-error"] svg g.bar')).map((b) => ({ ...(b as HTMLElement).dataset })));
    expect(bars.map((b) => b.module)).toEqual(report.modules.map((m) => m.module));
    bars.forEach((b, i) => expect(Number(b.relError)).toBeCloseTo(report.modules[i]!.relError, 6));
    const chosen = await page.evaluate(() => ({ ...(document.querySelector('.view-card[data-kind="merge-energy"] svg g.chosen-rank') as HTMLElement).dataset }));
    expect(chosen.rank).toBe('6');
    expect(Number(chosen.energy)).toBeCloseTo(1 - report.relError ** 2, 5);
    const lineCount = await page.locator('.view-card[data-kind="merge-energy"] svg g.line').count();
    expect(lineCount).toBe(report.modules.length + 1);
    const inputs = await gridCells('merge-contributions', 'strength');
    const weighted = await analyzeStrength([aitoolkit, kohya], { weights: [1, 0.8] });
    inputs.forEach((g, s) => g.cells.forEach((c, i) => expect(Number(c.norm)).toBeCloseTo(weighted.sets[s]!.blocks[i]!.norm, 10)));
    // the written file was inspected: its strength picture is there too
    await page.waitForSelector('.view-card[data-origin="file"][data-file="output/out/merged-svd.safetensors"] svg');
    const own = await gridCells('strength', 'strength', 'file');
    expect(own.map((g) => g.cells.length)).toContain(61);
    await page.screenshot({ path: path.join(SHOTS, 'editor-merge-views.png') });
    await enlargedShot('merge-error', 'merge-relative-error.png');
    await enlargedShot('merge-energy', 'merge-energy-vs-rank.png');
    await enlargedShot('merge-contributions', 'merge-contributions.png');
  });

  it('an apply\'s Plot: ‖ΔW‖ / ‖W‖ per block, from the norms the apply collects while streaming', async () => {
    await openAndRun({
      format: 'loraflow.recipe', schemaVersion: 1, meta: { name: 'What an apply changed' },
      nodes: {
        base: { ...v('load-model'), params: { path: 'flux-base.safetensors' } },
        kohya: { ...v('load-lora'), params: { path: 'flux-kohya-lora.safetensors' } },
        apply: { ...v('merge-into-base'), v: '1.1.0', params: { path: 'out/applied.safetensors', weights: [0.7] }, in: { base: 'base.model', loras: ['kohya.lora'] } },
        plot: { ...v('plot'), in: { report: 'apply.report', loras: ['kohya.lora'] } },
      },
    }, 'plot-apply');
    const expected = applyData(await applyToBase({ base: sample('flux-base.safetensors'), out: path.join(t.dir, 'applied-here.safetensors'), loras: [{ set: kohya, weight: 0.7 }] }), 'flux');
    const [g] = await gridCells('apply-change', 'apply-change');
    expect(g!.cells.map((c) => c.block)).toEqual(expected.ids);
    g!.cells.forEach((c, i) => {
      const b = expected.blocks[i]!;
      expect(Number(c.tensors)).toBe(b.tensors.length);
      expect(Number(c.relative)).toBeCloseTo(b.relative, 9);
    });
    await enlargedShot('apply-change', 'apply-change-by-block.png');
  });

  it('an extraction\'s Plot: energy kept against rank per module', async () => {
    await openAndRun({
      format: 'loraflow.recipe', schemaVersion: 1, meta: { name: 'Extraction with its energy curves' },
      nodes: {
        base: { ...v('load-model'), params: { path: 'flux-base.safetensors' } },
        tuned: { ...v('load-model'), params: { path: 'flux-finetune.safetensors' } },
        extract: { ...v('extract-lora'), params: { rank: 3 }, in: { base: 'base.model', tuned: 'tuned.model' } },
        save: { ...v('save-lora'), params: { path: 'out/extracted.safetensors' }, in: { lora: 'extract.lora' } },
        plot: { ...v('plot'), in: { report: 'extract.report', result: 'extract.lora' } },
      },
    }, 'plot-extract');
    const { report } = await extractLora({ base: sample('flux-base.safetensors'), tuned: sample('flux-finetune.safetensors'), rank: 3 });
    const lines = await page.evaluate(() => Array.from(document.querySelectorAll('.view-card[data-kind="extract-energy"] svg g.line')).map((l) => ({ ...(l as HTMLElement).dataset })));
    const modules = lines.filter((l) => l.module !== 'all');
    expect(modules.map((l) => l.module)).toEqual(report.modules.map((m) => m.key));
    modules.forEach((l, i) => expect(Number(l.energy!.split(' ')[2])).toBeCloseTo(1 - report.modules[i]!.relError ** 2, 5));
    await enlargedShot('extract-energy', 'extract-energy-vs-rank.png');
  });

  it('the block-weight node\'s visual editor: a slider per FLUX block id on its grid, presets, and the spec it writes', async () => {
    await page.click('#btn-new');
    const file = path.join(t.dir, 'blocks.json');
    await writeFile(file, JSON.stringify({
      format: 'loraflow.recipe', schemaVersion: 1, meta: { name: 'Block weights' },
      nodes: {
        kohya: { ...v('load-lora'), params: { path: 'flux-kohya-lora.safetensors' } },
        blocks: { ...v('block-weights'), params: { weights: 'OUT=0' }, in: { lora: 'kohya.lora' } },
        save: { ...v('save-lora'), params: { path: 'out/blocks.safetensors' }, in: { lora: 'blocks.lora' } },
      },
    }));
    await page.setInputFiles('#file-input', file);
    await expect.poll(() => page.textContent('#status')).toContain('loaded blocks.json');
    const pos = await page.evaluate(() => window.loraflow.widgetScreenPos('blocks', 'edit blocks…'));
    await page.mouse.click(pos.x, pos.y);
    await page.waitForSelector('#block-editor:not([hidden]) .bw-grid');
    // the family comes from the linked LoRA's file; the current weights are shown
    expect(await page.textContent('#block-editor .bw-why')).toBe('from flux-kohya-lora.safetensors (flux)');
    const ids = await page.evaluate(() => Array.from(document.querySelectorAll('#block-editor input.bw-slider')).map((i) => (i as HTMLElement).dataset.block));
    expect(ids).toHaveLength(61);
    expect(await page.inputValue('#block-editor input.bw-value[data-block="OUT"]')).toBe('0');
    expect(await page.inputValue('#block-editor input.bw-value[data-block="D03"]')).toBe('1');
    expect(await page.evaluate(() => Array.from(document.querySelectorAll('#block-editor .bw-row')).map((r) => r.querySelectorAll('.bw-cell').length))).toEqual([3, 19, 19, 19, 1]);
    await page.click('#block-editor button.bw-preset[data-preset="D00–D18 only"]');
    expect(await page.inputValue('#block-editor input.bw-value[data-block="S07"]')).toBe('0');
    expect(await page.inputValue('#block-editor input.bw-value[data-block="OUT"]')).toBe('0');
    await page.fill('#block-editor input.bw-value[data-block="D05"]', '0.5');
    await page.dispatchEvent('#block-editor input.bw-value[data-block="D05"]', 'change');
    expect(await page.inputValue('#block-editor input.bw-slider[data-block="D05"]')).toBe('0.5');
    await expect.poll(() => page.inputValue('#block-editor .bw-spec')).toBe('CLIP=0,T5=0,IN=0,D05=0.5,S00-S37=0,OUT=0');
    await page.locator('#block-editor .modal-body').screenshot({ path: path.join(SHOTS, 'block-weight-editor.png') });
    await page.click('#block-editor button.bw-apply');
    await page.waitForSelector('#block-editor', { state: 'hidden' });
    const recipe = await page.evaluate(() => window.loraflow.currentRecipe());
    expect(recipe.nodes.blocks.params.weights).toBe('CLIP=0,T5=0,IN=0,D05=0.5,S00-S37=0,OUT=0');
    await page.waitForFunction(() => document.getElementById('problem-count')!.hidden);
    // opened again: the sliders read the spec back
    await page.mouse.click(pos.x, pos.y);
    await page.waitForSelector('#block-editor:not([hidden]) .bw-grid');
    expect(await page.inputValue('#block-editor input.bw-value[data-block="D05"]')).toBe('0.5');
    expect(await page.inputValue('#block-editor input.bw-value[data-block="S20"]')).toBe('0');
    await page.click('#block-editor button.bw-cancel');
    expect(pageErrors).toEqual([]);
  });

  it('the node search lists loraflow\'s node types only; a link released on empty canvas opens it filtered to nodes that take the link, and connects the pick', async () => {
    await page.click('#btn-new');
    const file = path.join(t.dir, 'one-lora.json');
    await writeFile(file, JSON.stringify({ format: 'loraflow.recipe', schemaVersion: 1, nodes: { kohya: { ...v('load-lora'), params: { path: 'flux-kohya-lora.safetensors' } } }, ui: { nodes: { kohya: { pos: [60, 80] } }, viewport: { scale: 1, offset: [0, 0] } } }));
    await page.setInputFiles('#file-input', file);
    await expect.poll(() => page.textContent('#status')).toContain('loaded one-lora.json');
    const defs = (await t.get('/api/nodes')).body as Record<string, { type: string; category: string; inputs: Record<string, { type: string | string[] }> }>;
    const box = (await page.locator('#graph-canvas').boundingBox())!;
    // double-click on empty canvas: every node type, no placeholder for unknown types
    await page.mouse.dblclick(box.x + box.width - 200, box.y + box.height - 150);
    await page.waitForSelector('.litesearchbox');
    const all = await page.locator('.litesearchbox .lite-search-item').allTextContents();
    expect(all).toHaveLength(Object.keys(defs).length);
    expect(all.join(' ')).not.toMatch(/unknown/i);
    await page.keyboard.press('Escape');
    await page.waitForSelector('.litesearchbox', { state: 'detached' });
    // drag from the load node's lora output and let go on empty canvas
    const from = await page.evaluate(() => {
      const n = window.loraflow.graph._nodes.find((x: any) => x.properties.rid === 'kohya');
      const [x, y] = window.loraflow.canvas.ds.convertOffsetToCanvas(n.getConnectionPos(false, 0));
      const r = document.getElementById('graph-canvas')!.getBoundingClientRect();
      return { x: r.left + x, y: r.top + y };
    });
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    for (let i = 1; i <= 8; i++) await page.mouse.move(from.x + 40 * i, from.y + 25 * i);
    await page.mouse.up();
    await page.waitForSelector('.litesearchbox[data-link-type="LORA"]');
    const types = await page.locator('.litesearchbox .lite-search-item .lite-search-item-type').allTextContents();
    const takesLora = Object.values(defs).filter((d) => Object.values(d.inputs).some((p) => [p.type].flat().join(',').split(',').includes('LORA'))).map((d) => `${d.category}/${d.type}`);
    expect(types.sort()).toEqual(takesLora.sort());
    expect(types).not.toContain('load/load-lora');
    await page.keyboard.type('save lora');
    await expect.poll(() => page.locator('.litesearchbox .lite-search-item').allTextContents()).toEqual(['Save LoRAsave/save-lora']);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.loraflow.graph._nodes.length === 2);
    const added = () => page.evaluate(() => Object.values(window.loraflow.currentRecipe().nodes as Record<string, { type: string; in?: Record<string, string> }>).find((n) => n.type === 'save-lora')?.in);
    await expect.poll(added).toEqual({ lora: 'kohya.lora' });
    await page.screenshot({ path: path.join(SHOTS, 'node-search.png') });
    expect(pageErrors).toEqual([]);
  });

  it('editing habits: copy/paste keeps params, Delete, undo/redo, groups kept in the recipe, Ctrl+Enter runs, the shortcut list', async () => {
    await page.click('#btn-new');
    const file = path.join(t.dir, 'habits.json');
    await writeFile(file, JSON.stringify({
      format: 'loraflow.recipe', schemaVersion: 1, meta: { name: 'habits' },
      nodes: {
        kohya: { ...v('load-lora'), params: { path: 'flux-kohya-lora.safetensors' } },
        save: { ...v('save-lora'), params: { path: 'out/habits.safetensors' }, in: { lora: 'kohya.lora' } },
      },
      ui: { nodes: { kohya: { pos: [60, 80] }, save: { pos: [420, 80] } }, viewport: { scale: 1, offset: [0, 0] } },
    }));
    await page.setInputFiles('#file-input', file);
    await expect.poll(() => page.textContent('#status')).toContain('loaded habits.json');
    const count = () => page.evaluate(() => window.loraflow.graph._nodes.length);
    const loads = () => page.evaluate(() => Object.entries(window.loraflow.currentRecipe().nodes as Record<string, any>).filter(([, n]) => n.type === 'load-lora').map(([id, n]) => [id, n.params?.path]));
    const title = await page.evaluate(() => {
      const n = window.loraflow.graph._nodes.find((x: any) => x.properties.rid === 'kohya');
      const [x, y] = window.loraflow.canvas.ds.convertOffsetToCanvas([n.pos[0] + 60, n.pos[1] - 15]);
      const r = document.getElementById('graph-canvas')!.getBoundingClientRect();
      return { x: r.left + x, y: r.top + y, empty: { x: r.left + 200, y: r.top + 420 } };
    });
    // copy the load node, paste it elsewhere: a new id, the same file
    await page.mouse.click(title.x, title.y);
    expect(await page.evaluate(() => Object.values(window.loraflow.canvas.selected_nodes).map((n: any) => n.properties.rid))).toEqual(['kohya']);
    await page.keyboard.press('Control+c');
    await page.mouse.move(title.empty.x, title.empty.y);
    await page.keyboard.press('Control+v');
    await expect.poll(count).toBe(3);
    const pasted = await loads();
    expect(pasted).toHaveLength(2);
    expect(new Set(pasted.map(([id]) => id)).size).toBe(2);
    expect(pasted.map(([, p]) => p)).toEqual(['flux-kohya-lora.safetensors', 'flux-kohya-lora.safetensors']);
    // Delete removes the pasted (selected) node; undo brings it back, redo removes it again
    await page.keyboard.press('Delete');
    await expect.poll(count).toBe(2);
    await page.keyboard.press('Control+z');
    await expect.poll(count).toBe(3);
    expect((await loads()).map(([, p]) => p)).toEqual(['flux-kohya-lora.safetensors', 'flux-kohya-lora.safetensors']);
    await page.keyboard.press('Control+z');
    await expect.poll(count).toBe(2);
    await page.keyboard.press('Control+Shift+z');
    await expect.poll(count).toBe(3);
    await page.keyboard.press('Control+z');
    await expect.poll(count).toBe(2);
    // select all, group: the group is kept in the recipe's ui block and comes back with it
    // (clicks on empty canvas at different places: two at one place are a double-click, which opens the search)
    await page.mouse.click(title.empty.x + 300, title.empty.y);
    await page.keyboard.press('Control+a');
    await page.keyboard.press('Control+g');
    const recipe = await page.evaluate(() => window.loraflow.currentRecipe());
    expect(recipe.ui.groups).toHaveLength(1);
    const [gx, gy, gw, gh] = recipe.ui.groups[0].bounding;
    for (const id of ['kohya', 'save']) {
      const [x, y] = recipe.ui.nodes[id].pos;
      expect(x > gx && y > gy && x < gx + gw && y < gy + gh, `${id} inside the group`).toBe(true);
    }
    await page.evaluate((r) => window.loraflow.loadRecipe(r, 'again'), recipe);
    expect(await page.evaluate(() => window.loraflow.graph._groups.length)).toBe(1);
    await page.screenshot({ path: path.join(SHOTS, 'editor-group.png') });
    // Ctrl+Enter runs the graph
    const before = await page.evaluate(() => window.loraflow.state.runId ?? null);
    await page.mouse.click(title.empty.x + 500, title.empty.y + 100);
    expect(await page.locator('.litesearchbox').count()).toBe(0);
    await page.keyboard.press('Control+Enter');
    await page.waitForFunction((prev) => window.loraflow.state.runId !== prev && document.getElementById('run-summary')!.classList.contains('success'), before, { timeout: 60_000 });
    // the shortcut list
    await page.keyboard.press('?');
    await page.waitForSelector('#shortcuts:not([hidden])');
    const keys = await page.locator('#shortcuts kbd').allTextContents();
    expect(keys).toEqual(expect.arrayContaining(['Ctrl+Enter', 'Ctrl+Z', 'Ctrl+C / Ctrl+V', 'Delete / Backspace', 'Ctrl+G']));
    await page.locator('#shortcuts .modal-body').screenshot({ path: path.join(SHOTS, 'shortcuts.png') });
    await page.keyboard.press('Escape');
    await page.waitForSelector('#shortcuts', { state: 'hidden' });
    expect(pageErrors).toEqual([]);
  });

  it('dropping a LoRA or a checkpoint adds a load node for it (found in its root by name and size); a recipe file opens', async () => {
    await page.click('#btn-new');
    /** Drops files (name → bytes) on the canvas the way a file manager does. */
    const drop = (files: { name: string; b64: string }[]) => page.evaluate((list) => {
      const dt = new DataTransfer();
      for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
      const target = document.getElementById('canvas-wrap')!;
      const r = target.getBoundingClientRect();
      for (const type of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true, clientX: r.left + 300, clientY: r.top + 200 }));
    }, files);
    const bytes = async (f: string) => (await readFile(f)).toString('base64');
    await drop([{ name: 'flux-kohya-lora.safetensors', b64: await bytes(sample('flux-kohya-lora.safetensors')) }, { name: 'flux-base.safetensors', b64: await bytes(sample('flux-base.safetensors')) }]);
    await expect.poll(() => page.evaluate(() => window.loraflow.graph._nodes.length)).toBe(2);
    await expect.poll(() => page.textContent('#status')).toContain('added Load checkpoint for flux-base.safetensors (flux)');
    const recipe = await page.evaluate(() => window.loraflow.currentRecipe());
    expect(Object.values(recipe.nodes).map((n: any) => [n.type, n.params?.path]).sort()).toEqual([['load-lora', 'flux-kohya-lora.safetensors'], ['load-model', 'flux-base.safetensors']]);
    await page.waitForFunction(() => document.getElementById('problem-count')!.hidden);
    // a LoRA the roots do not hold (another name): said, with what to do
    await drop([{ name: 'my-own-lora.safetensors', b64: await bytes(sample('flux-kohya-lora.safetensors')) }]);
    await expect.poll(() => page.textContent('#status')).toMatch(/my-own-lora\.safetensors is not in the loras root .*copy it there, or start the server with --root loras=/);
    expect(await page.evaluate(() => window.loraflow.graph._nodes.length)).toBe(2);
    // a recipe file dropped on the canvas opens
    await drop([{ name: 'dropped.json', b64: Buffer.from(JSON.stringify({ format: 'loraflow.recipe', schemaVersion: 1, nodes: { only: { ...v('load-lora'), params: { path: 'flux-aitoolkit-lora.safetensors' } } } })).toString('base64') }]);
    await expect.poll(() => page.textContent('#status')).toContain('loaded dropped.json');
    expect(await page.evaluate(() => Object.keys(window.loraflow.currentRecipe().nodes))).toEqual(['only']);
    expect(pageErrors).toEqual([]);
  });
});
