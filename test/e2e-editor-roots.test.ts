/**
 * The editor against a user's own roots (none of them holds loraflow's samples), in headless
 * Chromium: the output root exists from the start; an example offers to write the sample files,
 * after which it validates and runs; the file widgets list each file with its format and family;
 * the inspect of the written file names it by root and root-relative path; the Queue tab opens a
 * finished run's recipe again and re-runs it; a `inspect --plot out.png` picture decodes in the
 * browser with its cells' colours. Screenshots go to docs/screenshots/.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recipeToJson, withoutUi } from '../src/graph/index.ts';
import { main } from '../src/cli/main.ts';
import { GRAPHS_DIR } from '../server/static.ts';
import { startTestServer, type TestServer } from './helpers/server-harness.ts';
import { launchChromium, openPage } from './helpers/browser.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SHOTS = path.join(REPO, 'docs', 'screenshots');

let t: TestServer;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  t = await startTestServer({ nodes: 'real', roots: { loras: 'my-loras', checkpoints: 'my-models', output: 'renders/loraflow' }, examplesDir: GRAPHS_DIR });
  browser = await launchChromium();
  page = await openPage(browser, { viewport: { width: 1500, height: 900 } }, pageErrors);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

declare global {
  interface Window {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the editor's console handle, untyped JS
    loraflow: any;
  }
}

const nodeCount = () => page.evaluate(() => window.loraflow.graph._nodes.length);

describe('the editor with the user\'s own roots', () => {
  it('an example offers the sample files, then runs; file widgets show format and family; the inspect names the file in its root', async () => {
    // the output root did not exist: the server made it at start
    expect((await stat(path.join(t.dir, 'renders/loraflow'))).isDirectory()).toBe(true);
    await page.goto(`${t.url}/`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 20_000 });
    await page.selectOption('#examples', 'merge-aitoolkit-kohya');
    await page.waitForFunction(() => window.loraflow.graph._nodes.length === 4);
    await page.waitForSelector('#samples-offer:not([hidden])');
    expect(await page.textContent('#samples-offer')).toContain('This example uses 2 of loraflow\'s sample files (samples/flux-aitoolkit-lora.safetensors, …), which the loras root does not hold.');
    await page.waitForFunction(() => document.getElementById('problem-count')!.textContent === '2');
    await page.screenshot({ path: path.join(SHOTS, 'example-samples-offer.png') });
    await page.click('#btn-write-samples');
    await expect.poll(() => page.textContent('#status'), { timeout: 120_000 }).toMatch(/^wrote \d+ sample files into checkpoints\/samples, loras\/samples$/);
    expect(await page.isHidden('#samples-offer')).toBe(true);
    expect(await readdir(path.join(t.dir, 'my-loras', 'samples'))).toContain('flux-kohya-lora.safetensors');
    // the example as it is now validates
    await page.waitForFunction(() => document.getElementById('problem-count')!.hidden, null, { timeout: 20_000 });

    // a file widget lists the root's files with their format and family
    const pos = await page.evaluate(() => window.loraflow.widgetScreenPos('kohya', 'path'));
    await page.mouse.click(pos.x, pos.y);
    await page.waitForSelector('.litecontextmenu.file-menu');
    const entries = await page.locator('.litecontextmenu.file-menu .litemenu-entry').allTextContents();
    expect(entries).toEqual(expect.arrayContaining([
      'samples/flux-kohya-lora.safetensors — kohya · flux',
      'samples/flux-aitoolkit-lora.safetensors — diffusers · flux',
      'samples/sdxl-kohya-lora.safetensors — kohya · sdxl',
      'samples/flux-base.safetensors — checkpoint · flux',
    ]));
    await page.screenshot({ path: path.join(SHOTS, 'file-widget-formats.png') });
    // picking an entry sets the plain path (the label is not part of the recipe)
    await page.locator('.litecontextmenu.file-menu .litemenu-entry', { hasText: /^samples\/sdxl-kohya-lora\.safetensors — / }).click();
    expect((await page.evaluate(() => window.loraflow.currentRecipe())).nodes.kohya.params.path).toBe('samples/sdxl-kohya-lora.safetensors');
    await page.mouse.click(pos.x, pos.y);
    await page.locator('.litecontextmenu.file-menu .litemenu-entry', { hasText: /^samples\/flux-kohya-lora\.safetensors — / }).click();
    expect((await page.evaluate(() => window.loraflow.currentRecipe())).nodes.kohya.params.path).toBe('samples/flux-kohya-lora.safetensors');

    await page.click('#btn-run');
    await page.waitForSelector('.run-summary.success', { state: 'attached', timeout: 90_000 });
    // the written file, inspected: by its root and root-relative name, never the server's path
    await expect.poll(() => page.locator('#inspect-report dl.kv dd').first().textContent(), { timeout: 15_000 }).toBe('output/out/flux-merged.safetensors');
    expect(await page.textContent('#inspect-report')).not.toContain(t.dir);
    expect(await page.textContent('#inspect-report')).toContain('kohya / flux');
    await page.screenshot({ path: path.join(SHOTS, 'inspect-root-relative.png') });
    expect(pageErrors).toEqual([]);
  }, 240_000);

  it('the Queue tab opens a finished run\'s recipe in the canvas and re-runs it', async () => {
    const ran = await page.evaluate(() => window.loraflow.currentRecipe());
    await page.click('.tabs button[data-tab="queue"]');
    const row = page.locator('#queue-table tr.success').first();
    await row.waitFor();
    const runId = await row.getAttribute('data-run');
    expect(await row.textContent()).toContain('→ flux-merged.safetensors');
    await page.click('#btn-new');
    expect(await nodeCount()).toBe(0);
    await row.locator('button.q-open').click();
    await page.waitForFunction(() => window.loraflow.graph._nodes.length === 4);
    await expect.poll(() => page.textContent('#status')).toContain(`loaded recipe of run ${runId!.slice(0, 8)}`);
    expect(recipeToJson(withoutUi(await page.evaluate(() => window.loraflow.currentRecipe())))).toBe(recipeToJson(withoutUi(ran)));
    await row.locator('button.q-rerun').click();
    await expect.poll(() => page.textContent('#sweep-result')).toMatch(new RegExp(`^Run ${runId!.slice(0, 8)} queued again as [0-9a-f]{8}\\.$`));
    const again = page.locator('#queue-table tr', { hasText: `re-run of ${runId!.slice(0, 8)}` });
    await expect.poll(() => again.getAttribute('class'), { timeout: 90_000 }).toBe('success');
    const newId = await again.getAttribute('data-run');
    const rec = (await t.get(`/api/runs/${newId}`)).body;
    expect(rec.rerunOf).toBe(runId);
    // the same recipe and overrides (the server's result cache may answer it without writing again)
    const first = (await t.get(`/api/runs/${runId}`)).body;
    expect([rec.recipe, rec.overrides]).toEqual([first.recipe, first.overrides]);
    expect(first.result.written).toEqual([path.join(t.dir, 'renders/loraflow/out/flux-merged.safetensors')]);
    await page.locator('#tab-queue').screenshot({ path: path.join(SHOTS, 'queue-history.png') });
    expect(pageErrors).toEqual([]);
  }, 180_000);

  it('a PNG plot from `inspect --plot out.png` decodes in the browser at twice the SVG\'s size, its cells in their colours', async () => {
    const lora = path.join(t.dir, 'my-loras', 'samples', 'flux-kohya-lora.safetensors');
    const svgOut = path.join(t.dir, 'plot.svg');
    const pngOut = path.join(t.dir, 'plot.png');
    expect(await main(['inspect', lora, '--plot', svgOut])).toBe(0);
    expect(await main(['inspect', lora, '--plot', pngOut])).toBe(0);
    const svg = await readFile(svgOut, 'utf8');
    const cell = /<g class="cell" data-block="D03"[^>]*>[\s\S]*?<rect x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" rx="3" fill="(#[0-9a-f]{6})"/.exec(svg)!;
    const [, w, h] = /^<svg[^>]*\swidth="([\d.]+)"\s+height="([\d.]+)"/.exec(svg)!;
    const b64 = (await readFile(pngOut)).toString('base64');
    // a page of its own: the editor's page stays as it is
    const viewer = await browser.newPage({ viewport: { width: 1400, height: 700 } });
    await viewer.setContent(`<body style="margin:0;background:#000"><img id="plot" src="data:image/png;base64,${b64}"></body>`);
    const seen = await viewer.evaluate(async ([x, y]) => {
      const img = document.getElementById('plot') as HTMLImageElement;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext('2d')!;
      ctx.drawImage(img, 0, 0);
      return { width: img.naturalWidth, height: img.naturalHeight, rgb: Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)) };
    }, [(Number(cell[1]) + 4) * 2, (Number(cell[2]) + Number(cell[3]) - 4) * 2]);
    expect([seen.width, seen.height]).toEqual([Math.ceil(Number(w) * 2), Math.ceil(Number(h) * 2)]);
    const want = [1, 3, 5].map((i) => parseInt(cell[4]!.slice(i, i + 2), 16));
    seen.rgb.forEach((v, k) => expect(Math.abs(v - want[k]!)).toBeLessThanOrEqual(2));
    await viewer.locator('#plot').screenshot({ path: path.join(SHOTS, 'inspect-plot-png.png') });
    await viewer.close();
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
