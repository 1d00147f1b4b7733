// The browser the status page tests share: Debian's chromium, driven by playwright-core, and a
// page opened on the admin listener that records what it requested and any script error.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';

/** Where screenshots are kept. */
export const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Launches chromium (and makes the artifacts folder). */
export function launchBrowser(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

/** An open status page, every URL it requested, and the errors it logged. */
export interface OpenedPage {
  page: Page;
  requested: string[];
  errors: string[];
}

/** Opens the status page at `adminUrl` in a new context and waits for its first document. */
export async function openPage(browser: Browser, adminUrl: string, options: Parameters<Browser['newContext']>[0]): Promise<OpenedPage> {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const requested: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requested.push(r.url()));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${adminUrl}/`);
  await page.waitForSelector('body[data-time]');
  return { page, requested, errors };
}

/** A phone's viewport (390x844). */
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

/** Checks the page fits a phone's width (no sideways scrolling, upstreams as cards) and keeps a screenshot. */
export async function expectPhoneLayout(page: Page, screenshot: string): Promise<void> {
  const laid = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    width: window.innerWidth,
    headerShown: getComputedStyle(document.querySelector('#upstreams thead')!).display !== 'none',
    widest: Math.max(...[...document.querySelectorAll('td, .tile, figure, .hint')].map((el) => el.getBoundingClientRect().right)),
  }));
  expect(laid.scrollWidth).toBeLessThanOrEqual(laid.width);
  expect(laid.widest).toBeLessThanOrEqual(laid.width);
  expect(laid.headerShown).toBe(false);
  await page.screenshot({ path: `${ARTIFACTS}${screenshot}`, fullPage: true });
}
