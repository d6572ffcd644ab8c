/**
 * The editor end to end in headless Chromium, against a real server with loraflow's real nodes and
 * the built-in sample files: a new user opens the page, loads an example from graphs/, sees that
 * its file params point nowhere (problems drawn on the nodes), points them at the sample files
 * through the file combos, runs it, watches progress, gets the result (files, inspect report),
 * downloads the recipe, and `loraflow run` on that download makes the same file, byte for byte.
 * The YAML download opens again as the same recipe, and dropping the output file on the canvas
 * recovers the recipe from its header. Screenshots:
 * test-results/editor.png (finished run, results) and test-results/editor-running.png (mid-run).
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSamples } from '../src/cli/commands/samples.ts';
import { recipeToJson, withoutUi } from '../src/graph/index.ts';
import { GRAPHS_DIR } from '../server/static.ts';
import { startTestServer, type TestServer } from '../server/testing/harness.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const SCREENSHOT = path.join(REPO, 'test-results', 'editor.png');

let t: TestServer;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  t = await startTestServer({ nodes: 'real', roots: { loras: 'samples', checkpoints: 'samples', output: 'out' }, examplesDir: GRAPHS_DIR });
  await writeSamples(path.join(t.dir, 'samples'));
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1500, height: 860 }, acceptDownloads: true });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
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
      const entries = await page.locator('.litemenu-entry').allTextContents();
      expect(entries).toEqual(expect.arrayContaining(['flux-aitoolkit-lora.safetensors', 'flux-kohya-lora.safetensors', 'flux-base.safetensors']));
      await page.locator('.litemenu-entry', { hasText: new RegExp(`^${file.replace('.', '\\.')}$`) }).click();
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
