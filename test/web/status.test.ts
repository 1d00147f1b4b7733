// The status page in a real browser (Debian's chromium, driven by playwright-core): it loads
// with no network but the mirror's, updates live while images are pulled, shows exactly what
// /metrics says, and reads on a phone. Screenshots are kept in test/web/artifacts/.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes, formatCache, formatCount } from '../../src/web/assets/format.js';
import { freePort, skopeoCopyToDir, tempDir } from '../support/index.js';
import { send } from '../harness/http.js';
import { ARTIFACTS, PHONE, expectPhoneLayout, launchBrowser, openPage, type OpenedPage } from './browser.js';
import { expectedCells, expectedUpstream, startStatusFixture, stats, sumSamples, type StatusFixture } from './fixture.js';

let fixture: StatusFixture;
let browser: Browser;

beforeAll(async () => {
  [fixture, browser] = await Promise.all([startStatusFixture(), launchBrowser()]);
});

afterAll(async () => {
  await browser?.close();
  await fixture?.close();
});

const pull = (repo: string): Promise<unknown> => skopeoCopyToDir(`${fixture.mirror.host}/ghcr.io/${repo}:v1`, tempDir('status-pull'));

/** Everything the page shows with a data-value: per upstream, the totals and cache tiles, the top images. */
interface Shown {
  upstreams: Record<string, Record<string, { value: string; text: string }>>;
  tiles: Record<string, { value: string; text: string }>;
  images: { name: string; pulls: number }[];
}

function readPage(page: Page): Promise<Shown> {
  return page.evaluate(() => {
    const cell = (el: Element): { value: string; text: string } => ({ value: (el as HTMLElement).dataset.value ?? '', text: el.textContent ?? '' });
    const upstreams: Shown['upstreams'] = {};
    for (const tr of document.querySelectorAll<HTMLElement>('#upstreams tbody tr')) {
      upstreams[tr.dataset.upstream!] = Object.fromEntries([...tr.querySelectorAll<HTMLElement>('td')].map((td) => [td.dataset.field!, cell(td)]));
    }
    const tiles = Object.fromEntries([...document.querySelectorAll<HTMLElement>('#totals [data-field]')].map((el) => [el.dataset.field!, cell(el)]));
    const images = [...document.querySelectorAll<HTMLElement>('#top-images li[data-repository]')].map((li) => ({
      name: `${li.dataset.upstream}/${li.dataset.repository}`,
      pulls: Number(li.querySelector<HTMLElement>('.pulls')!.dataset.value),
    }));
    return { upstreams, tiles, images };
  });
}

describe('status page', () => {
  let desktop: OpenedPage;

  it('loads from the mirror alone and updates live while images are pulled', async () => {
    desktop = await openPage(browser, fixture.adminUrl, { viewport: { width: 1280, height: 900 } });
    const { page } = desktop;
    expect(await page.locator('#connection').getAttribute('data-state')).toBe('live');
    expect((await readPage(page)).tiles.requests!.value).toBe('0');

    await pull('team/app');
    // No reload: the numbers arrive over the event stream.
    await expect.poll(async () => Number((await readPage(page)).tiles.requests!.value), { timeout: 10_000 }).toBeGreaterThan(0);

    await pull('team/app');
    await pull('team/tool');
    expect((await send(`${fixture.mirror.url}/v2/docker.io/library/alpine/manifests/latest`)).status).toBe(404);
    expect((await send(`${fixture.mirror.url}/v2/quay.io/org/gone/manifests/v1`)).status).toBeGreaterThanOrEqual(500);
  });

  it('shows exactly the numbers /metrics has', async () => {
    const { page } = desktop;
    const metrics = (await send(`${fixture.adminUrl}/metrics`)).body.toString();
    const wanted = (upstream: string): Record<string, { value: string; text: string }> => expectedCells(metrics, upstream);
    const pick = (shown: Shown, upstream: string): Record<string, { value: string; text: string }> =>
      Object.fromEntries(Object.keys(wanted(upstream)).map((k) => [k, shown.upstreams[upstream]![k]!]));
    await expect.poll(async () => pick(await readPage(page), 'ghcr.io'), { timeout: 10_000 }).toEqual(wanted('ghcr.io'));

    const shown = await readPage(page);
    for (const upstream of ['docker.io', 'quay.io']) expect(pick(shown, upstream)).toEqual(wanted(upstream));
    const ghcr = expectedUpstream(metrics, 'ghcr.io');
    expect(ghcr.hits).toBeGreaterThan(0);
    expect(ghcr.bytesFromCache).toBeGreaterThan(0);
    // Each blob came from upstream once.
    expect(ghcr.bytesFromUpstream).toBe(fixture.images.flatMap((i) => i.blobs).reduce((n, b) => n + b.size, 0));

    expect(shown.tiles.requests!.value).toBe(String(sumSamples(metrics, 'regmirror_requests_total')));
    expect(shown.tiles.bytesFromCache!.value).toBe(String(sumSamples(metrics, 'regmirror_response_bytes_total', { outcome: 'hit' })));
    expect(shown.tiles.bytesFromUpstream!.value).toBe(String(sumSamples(metrics, 'regmirror_upstream_blob_bytes_total')));
    const cacheBytes = sumSamples(metrics, 'regmirror_cache_size_bytes');
    expect(shown.tiles.cacheBytes).toEqual({ value: String(cacheBytes), text: formatBytes(cacheBytes) });
    expect(shown.tiles.cacheObjects!.value).toBe(String(sumSamples(metrics, 'regmirror_cache_objects')));
    expect(shown.tiles.cacheLimit!.text).toBe('no limit');
    expect(shown.tiles.rateLimit!.value).toBe(String(sumSamples(metrics, 'regmirror_upstream_ratelimit_remaining', { upstream: 'docker.io' })));
    expect(shown.tiles.rateLimit!.value).toBe('76');

    expect(shown.upstreams['ghcr.io']!.health!.value).toBe('ok');
    expect(shown.upstreams['docker.io']!.health!.value).toBe('ok');
    expect(shown.upstreams['quay.io']!.health!.value).toBe('down');
    expect(shown.upstreams['quay.io']!.lastFailure!.text).toMatch(/^unreachable, \d+ s ago$/);
    expect(shown.upstreams['ghcr.io']!.lastFailure!.text).toBe('never');
    expect(shown.images.map((i) => i.name)).toEqual(['ghcr.io/team/app', 'ghcr.io/team/tool']);
    expect(shown.images[0]!.pulls).toBe(2 * shown.images[1]!.pulls);

    // The hour chart holds every request so far, drawn by uPlot.
    const status = JSON.parse((await send(`${fixture.adminUrl}/api/status`)).body.toString()) as { series: { requests: number[]; bytesFromCache: number[] } };
    const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
    expect(sum(status.series.requests)).toBe(sumSamples(metrics, 'regmirror_requests_total'));
    expect(sum(status.series.bytesFromCache)).toBe(sumSamples(metrics, 'regmirror_response_bytes_total', { outcome: 'hit' }));
    expect(await page.locator('#chart-requests canvas').count()).toBe(1);
    expect(await page.locator('#chart-bytes canvas').count()).toBe(1);

    // No proxy configured: no proxy series, no proxy part in the document, no proxy panel.
    expect(metrics).not.toContain('regmirror_proxy_');
    expect(status).not.toHaveProperty('proxy');
    expect(await page.locator('#proxy').isHidden()).toBe(true);

    await page.screenshot({ path: `${ARTIFACTS}status-desktop.png`, fullPage: true });
    const origin = new URL(fixture.adminUrl).origin;
    expect(desktop.requested.filter((url) => new URL(url).origin !== origin)).toEqual([]);
    expect(desktop.errors).toEqual([]);
  });

  it('reads on a phone: no sideways scrolling, one card per upstream', async () => {
    const { page, errors } = await openPage(browser, fixture.adminUrl, PHONE);
    await page.waitForSelector('#upstreams tbody tr');
    await expectPhoneLayout(page, 'status-phone.png');
    expect(errors).toEqual([]);
  });

  it('is only on the admin listener: a registry listener answers its paths as the registry would', async () => {
    for (const path of ['/', '/api/status', '/ui/status.js']) {
      expect([path, (await send(`${fixture.mirror.url}${path}`)).status]).toEqual([path, 404]);
    }
  });
});

describe('regmirror stats', () => {
  it('prints the same summary as a table, with the numbers /metrics has', async () => {
    const metrics = (await send(`${fixture.adminUrl}/metrics`)).body.toString();
    const out = await stats('--admin', fixture.adminUrl);
    const lines = out.split('\n');
    const row = (name: string): string[] => lines.find((l) => l.startsWith(`${name} `))!.trim().split(/ {2,}/);
    expect(lines.find((l) => l.startsWith('UPSTREAM'))!.split(/ {2,}/)).toEqual(
      ['UPSTREAM', 'HEALTH', 'REQUESTS', 'HITS', 'HIT RATIO', 'FROM CACHE', 'FROM UPSTREAM', 'ERRORS', 'LAST FAILURE']);
    for (const upstream of ['ghcr.io', 'docker.io', 'quay.io']) {
      const cells = expectedCells(metrics, upstream);
      expect(row(upstream).slice(2, 8)).toEqual(['requests', 'hits', 'hitRatio', 'bytesFromCache', 'bytesFromUpstream', 'upstreamErrors'].map((k) => cells[k]!.text));
    }
    expect(row('ghcr.io')[1]).toBe('ok');
    expect(row('ghcr.io')[8]).toBe('never');
    expect(row('quay.io').slice(1, 2)).toEqual(['down']);
    expect(row('quay.io')[8]).toMatch(/^unreachable, \d+ s ago$/);
    expect(row('all')[1]).toBe(formatCount(sumSamples(metrics, 'regmirror_requests_total')));
    const cache = { bytes: sumSamples(metrics, 'regmirror_cache_size_bytes'), objects: 0, limitBytes: null, downloadsInFlight: 0 };
    expect(out).toContain(`Cache                  ${formatCache(cache)}, ${sumSamples(metrics, 'regmirror_cache_objects')} objects`);
    expect(out).toContain('Docker Hub pulls left  docker.io: 76 of 100 left');
    expect(out).toMatch(/^ {2}1\. {2}ghcr\.io\/team\/app {3}2$/m);
    expect(out).toMatch(/^ {2}2\. {2}ghcr\.io\/team\/tool {2}1$/m);
    expect(out).not.toMatch(/proxy/i);
  });

  it('prints the status document with --json', async () => {
    const doc = JSON.parse(await stats('--admin', `${fixture.adminUrl}/`, '--json')) as { version: number; upstreams: { name: string }[] };
    expect(doc.version).toBe(1);
    expect(doc.upstreams.map((u) => u.name)).toEqual(['ghcr.io', 'docker.io', 'quay.io']);
  });

  it('says why when there is no status page to read', async () => {
    await expect(stats('--admin', `http://127.0.0.1:${await freePort()}`)).rejects.toThrow(/regmirror stats: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    await expect(stats('--admin', fixture.mirror.url)).rejects.toThrow(/has no status page: give the admin listener/);
  });
});
