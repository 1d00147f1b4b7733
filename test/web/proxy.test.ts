// The CONNECT proxy on the status page and in `regmirror stats`: curl goes through the proxy of a
// mirror with an admin listener — intercepted requests, one from a client without regmirror's CA,
// a tunnel, a refusal, a failure, and a tunnel held open — and both must show what /metrics says.
import type { Socket } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes, formatTunnelBytes, proxyHint } from '../../src/web/assets/format.js';
import { run } from '../support/index.js';
import { send } from '../harness/http.js';
import { connectVia } from '../proxy/support.js';
import { ARTIFACTS, PHONE, expectPhoneLayout, launchBrowser, openPage, type OpenedPage } from './browser.js';
import { startStatusFixture, stats, sumSamples, type StatusFixture } from './fixture.js';

const HINT = "clients don't trust the regmirror CA: see docs/transparent-proxy.md";

let fixture: StatusFixture;
let proxy: NonNullable<StatusFixture['proxy']>;
let browser: Browser;
/** A tunnel left open, to be seen as an open connection. */
let held: Socket | undefined;

beforeAll(async () => {
  [fixture, browser] = await Promise.all([startStatusFixture({ proxy: true }), launchBrowser()]);
  proxy = fixture.proxy!;
});

afterAll(async () => {
  held?.destroy();
  await browser?.close();
  await fixture?.close();
});

/** curl through the proxy, as a client configured with HTTPS_PROXY would go. */
const curl = (...args: string[]): Promise<string> =>
  run('curl', ['--silent', '--show-error', '--fail', '--noproxy', '', '--proxy', `http://${proxy.host}`, '-o', '/dev/null', ...args]);

const metricsText = async (): Promise<string> => (await send(`${fixture.adminUrl}/metrics`)).body.toString();

/**
 * What the proxy panel should hold, read from /metrics: each number's raw value, and the texts of
 * reasons and bytes (only the reasons this test causes: any other would show, and not match).
 */
function expectedPanel(text: string): Record<string, string> {
  const count = (name: string, labels: Record<string, string> = {}): number => sumSamples(text, name, labels);
  const connects = (outcome: string, reason?: string): number =>
    count('regmirror_proxy_connects_total', { outcome, ...(reason ? { reason } : {}) });
  const reason = (name: string, n: number): string => (n ? `${name} ${n}` : '');
  const failures = count('regmirror_proxy_tls_handshake_failures_total', { reason: 'unknown-ca' });
  const bytes = { fromClient: count('regmirror_proxy_tunnel_bytes_total', { direction: 'from_client' }), toClient: count('regmirror_proxy_tunnel_bytes_total', { direction: 'to_client' }) };
  return {
    intercepted: String(connects('intercepted')),
    tunnelled: String(connects('tunnelled')),
    refused: String(connects('refused')),
    refusedReasons: connects('refused') ? `· ${reason('host-not-listed', connects('refused', 'host-not-listed'))}` : '',
    failed: String(connects('failed')),
    failedReasons: connects('failed') ? `· ${reason('unreachable', connects('failed', 'unreachable'))}` : '',
    open: String(count('regmirror_proxy_connections_open')),
    handshakeFailures: String(count('regmirror_proxy_tls_handshake_failures_total')),
    handshakeReasons: reason('unknown-ca', failures) || 'none',
    tunnelBytes: String(bytes.fromClient + bytes.toClient),
    tunnelSplit: formatTunnelBytes(bytes),
  };
}

/** The proxy panel: whether it shows, and each field's raw value (or, for texts, its text). */
interface Panel {
  hidden: boolean;
  /** The hint's text, or null while it is hidden. */
  hint: string | null;
  fields: Record<string, string>;
}

function readPanel(page: Page): Promise<Panel> {
  return page.evaluate(() => {
    const root = document.querySelector<HTMLElement>('#proxy')!;
    const fields: Record<string, string> = {};
    for (const el of root.querySelectorAll<HTMLElement>('[data-field]')) fields[el.dataset.field!] = el.dataset.value || (el.textContent ?? '');
    const hint = root.querySelector<HTMLElement>('[data-field="hint"]')!;
    return { hidden: root.hidden, hint: hint.hidden ? null : hint.textContent, fields };
  });
}

/** Polls until the panel shows what /metrics says at that moment; returns both. */
async function panelMatchesMetrics(page: Page): Promise<{ shown: Panel; metrics: string }> {
  let last: { shown: Panel; metrics: string } | undefined;
  // Each round compares one scrape with one reading of the page; what differs is the failure's diff.
  await expect.poll(async () => {
    last = { metrics: await metricsText(), shown: await readPanel(page) };
    const want = expectedPanel(last.metrics);
    return Object.fromEntries(Object.entries(want).filter(([k, v]) => last!.shown.fields[k] !== v).map(([k, v]) => [k, { shown: last!.shown.fields[k], metrics: v }]));
  }, { timeout: 15_000, interval: 500 }).toEqual({});
  return last!;
}

describe('status page with a CONNECT proxy', () => {
  let desktop: OpenedPage;

  it('shows the proxy panel, at zero, before any CONNECT', async () => {
    desktop = await openPage(browser, fixture.adminUrl, { viewport: { width: 1280, height: 900 } });
    const { shown } = await panelMatchesMetrics(desktop.page);
    expect(shown.hidden).toBe(false);
    expect(shown.fields.intercepted).toBe('0');
    expect(shown.hint).toBeNull();
  });

  it('shows exactly the numbers /metrics has after curl went through the proxy, and the CA hint', async () => {
    const { page } = desktop;
    const [app] = fixture.images;
    await curl('--cacert', proxy.caCert, '-H', `Accept: ${app!.mediaType}`, `https://ghcr.io/v2/${app!.repo}/manifests/${app!.tag}`);
    await curl('--cacert', proxy.caCert, 'https://ghcr.io/v2/');
    // The system's CAs only: curl rejects regmirror's certificate with an unknown-ca alert.
    await expect(curl('https://ghcr.io/v2/')).rejects.toThrow(/certificate/);
    await curl('--proxytunnel', `http://${proxy.tunnelTo}/v2/`);
    await expect(curl('https://example.com/')).rejects.toThrow(/403/);
    await expect(curl('--proxytunnel', `http://${proxy.unreachable}/v2/`)).rejects.toThrow();
    held = (await connectVia(proxy.host, proxy.tunnelTo)).socket;

    const { shown, metrics } = await panelMatchesMetrics(page);
    expect(sumSamples(metrics, 'regmirror_proxy_connects_total', { outcome: 'intercepted' })).toBe(3);
    expect(sumSamples(metrics, 'regmirror_proxy_connects_total', { outcome: 'tunnelled' })).toBe(2);
    expect(sumSamples(metrics, 'regmirror_proxy_connects_total', { outcome: 'failed', reason: 'unreachable' })).toBe(1);
    expect(sumSamples(metrics, 'regmirror_proxy_connections_open', { outcome: 'tunnelled' })).toBe(1);
    expect(shown.fields.openSplit).toBe('0 intercepted, 1 tunnelled');
    expect(Number(shown.fields.tunnelBytes)).toBeGreaterThan(0);
    expect(await page.locator('[data-field="tunnelBytes"]').textContent()).toBe(formatBytes(Number(shown.fields.tunnelBytes)));
    expect(shown.hint).toBe(HINT);
    // Rates: measured since an earlier document, never more than the total allows.
    const seconds = Number(shown.fields.rateSeconds);
    expect(seconds).toBeGreaterThan(0);
    expect(Number(shown.fields.interceptedPerSecond)).toBeGreaterThan(0);
    expect(Number(shown.fields.interceptedPerSecond) * seconds).toBeLessThanOrEqual(3 + 1e-9);

    await page.screenshot({ path: `${ARTIFACTS}status-proxy-desktop.png`, fullPage: true });
    const origin = new URL(fixture.adminUrl).origin;
    expect(desktop.requested.filter((url) => new URL(url).origin !== origin)).toEqual([]);
    expect(desktop.errors).toEqual([]);

    held.destroy();
    await expect.poll(async () => (await readPanel(page)).fields.open, { timeout: 10_000 }).toBe('0');
  });

  it('reads on a phone with the proxy panel and its hint', async () => {
    const { page, errors } = await openPage(browser, fixture.adminUrl, PHONE);
    await page.waitForSelector('#proxy:not([hidden]) [data-field="intercepted"]');
    await expectPhoneLayout(page, 'status-proxy-phone.png');
    expect(errors).toEqual([]);
  });
});

describe('regmirror stats with a CONNECT proxy', () => {
  it('prints the proxy lines with the numbers /metrics has', async () => {
    const metrics = await metricsText();
    const out = await stats('--admin', fixture.adminUrl);
    const lines = out.split('\n');
    const row = (label: string): string[] => lines.find((l) => l.startsWith(`  ${label} `))!.trim().split(/ {2,}/);
    const connects = (outcome: string): string => String(sumSamples(metrics, 'regmirror_proxy_connects_total', { outcome }));
    expect(lines).toContainEqual(expect.stringMatching(/^CONNECT proxy \(rates over the last \d+ (s|min \d+ s)\)$/));
    expect(row('Intercepted').slice(0, 2)).toEqual(['Intercepted', connects('intercepted')]);
    expect(row('Intercepted')[2]).toMatch(/^\d+\.\d\d\/s$/);
    expect(row('Tunnelled').slice(0, 2)).toEqual(['Tunnelled', connects('tunnelled')]);
    expect(row('Refused')).toEqual(['Refused', connects('refused'), expect.stringMatching(/\/s$/), 'host-not-listed 1']);
    expect(row('Failed')).toEqual(['Failed', connects('failed'), expect.stringMatching(/\/s$/), 'unreachable 1']);
    expect(row('Open now')).toEqual(['Open now', '0 intercepted, 0 tunnelled']);
    expect(row('TLS handshake failures')).toEqual(['TLS handshake failures', `unknown-ca ${sumSamples(metrics, 'regmirror_proxy_tls_handshake_failures_total', { reason: 'unknown-ca' })}`]);
    const bytes = { fromClient: sumSamples(metrics, 'regmirror_proxy_tunnel_bytes_total', { direction: 'from_client' }), toClient: sumSamples(metrics, 'regmirror_proxy_tunnel_bytes_total', { direction: 'to_client' }) };
    expect(row('Tunnelled bytes')).toEqual(['Tunnelled bytes', formatTunnelBytes(bytes)]);
    expect(lines).toContain(`  Hint: ${HINT}`);
    expect(proxyHint({ handshakeFailures: [{ reason: 'timeout', count: 1 }] } as Parameters<typeof proxyHint>[0])).toBeNull();
  });

  it('puts the proxy part in --json', async () => {
    const doc = JSON.parse(await stats('--admin', fixture.adminUrl, '--json')) as { proxy?: { connects: { intercepted: { total: number } } } };
    expect(doc.proxy?.connects.intercepted.total).toBe(sumSamples(await metricsText(), 'regmirror_proxy_connects_total', { outcome: 'intercepted' }));
  });
});
