/** The browser tests' Chromium: Debian's, headless, with nothing reaching out to the network. */
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A new page whose uncaught exceptions and console errors are pushed onto `errors`, for the tests to assert empty. */
export async function openPage(browser: Browser, options: BrowserContextOptions, errors: string[]): Promise<Page> {
  const page = await browser.newPage(options);
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return page;
}
