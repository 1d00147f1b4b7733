/** `regmirror stats`: the status page's summary as a terminal table, read from a running mirror. */
import type { Command } from 'commander';
import {
  UPSTREAM_COLUMNS, formatCache, formatCount, formatDuration, formatOpen, formatPerSecond, formatRateLimit,
  formatRateWindow, formatReasons, formatTunnelBytes, outcomeLabel, proxyHint, rateLimited,
} from '../web/assets/format.js';
import type { ProxyStatus, StatusSnapshot, UpstreamStatus } from '../web/snapshot.js';

/** Adds `stats` to the program. */
export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('print the status summary of a running mirror: per upstream requests, hit ratio, bytes, errors; cache size; Docker Hub pulls left; the most-pulled images; the CONNECT proxy, if any')
    .requiredOption('-a, --admin <url>', 'its admin listener (admin.address), e.g. http://127.0.0.1:9090')
    .option('--json', 'print the status document as JSON')
    .action(async (opts: { admin: string; json?: boolean }) => {
      let snapshot: StatusSnapshot;
      try {
        snapshot = await fetchStatus(opts.admin);
      } catch (err) {
        console.error(`regmirror stats: ${(err as Error).message}`);
        process.exitCode = 1;
        return;
      }
      console.log(opts.json ? JSON.stringify(snapshot, null, 2) : renderStats(snapshot, opts.admin));
    });
}

/** Reads `/api/status` from an admin listener. */
export async function fetchStatus(admin: string): Promise<StatusSnapshot> {
  const url = new URL('api/status', admin.endsWith('/') ? admin : `${admin}/`);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach ${url.origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  if (res.status === 404) throw new Error(`${url.origin} has no status page: give the admin listener (admin.address)`);
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return (await res.json()) as StatusSnapshot;
}

/** The summary as text: the upstream table, the cache, rate limits, the most-pulled images and the proxy. */
export function renderStats(s: StatusSnapshot, source: string): string {
  const rows = s.upstreams.map((u) => UPSTREAM_COLUMNS.map((c) => c.text(u, s.time)));
  if (s.upstreams.length > 1) {
    const all: UpstreamStatus = { ...s.totals, name: 'all', health: 'unknown', lastSuccessAt: null, lastFailure: null, rateLimit: null };
    rows.push(UPSTREAM_COLUMNS.map((c) => (c.key === 'health' || c.key === 'lastFailure' ? '' : c.text(all, s.time))));
  }
  const limits = rateLimited(s);
  const lines = [
    `regmirror at ${source}, up ${formatDuration((s.time - s.startedAt) / 1000)}`,
    '',
    table([UPSTREAM_COLUMNS.map((c) => c.label.toUpperCase()), ...rows], UPSTREAM_COLUMNS.map((c) => c.numeric)),
    '',
    ...table([
      ['Cache', `${formatCache(s.cache)}, ${formatCount(s.cache.objects)} objects, ${formatCount(s.cache.downloadsInFlight)} downloads under way`],
      ['Docker Hub pulls left', limits.length ? limits.map((u) => `${u.name}: ${formatRateLimit(u.rateLimit)}`).join('; ') : 'not reported yet'],
    ], [false, false]).split('\n'),
    '',
    'Most-pulled images (manifest GETs)',
    ...(s.topImages.length
      ? indent(table(s.topImages.map((img, i) => [`${i + 1}.`, `${img.upstream}/${img.repository}`, `${img.error ? '<= ' : ''}${formatCount(img.pulls)}`]), [true, false, true]))
      : ['  none yet']),
    ...(s.proxy ? ['', ...renderProxy(s.proxy)] : []),
  ];
  return lines.join('\n');
}

/** The CONNECT proxy's lines: each outcome with its rate and reasons, open connections, TLS failures, tunnel bytes. */
function renderProxy(p: ProxyStatus): string[] {
  const hint = proxyHint(p);
  return [
    `CONNECT proxy (rates ${formatRateWindow(p.rateSeconds)})`,
    ...indent(table(Object.entries(p.connects).map(([outcome, c]) =>
      [outcomeLabel(outcome), formatCount(c.total), formatPerSecond(c.perSecond), formatReasons(c.reasons)]), [false, true, true, false])),
    ...indent(table([
      ['Open now', formatOpen(p.open)],
      ['TLS handshake failures', formatReasons(p.handshakeFailures) || 'none'],
      ['Tunnelled bytes', formatTunnelBytes(p.tunnelBytes)],
    ], [false, false])),
    ...(hint ? [`  Hint: ${hint}`] : []),
  ];
}

const indent = (text: string): string[] => text.split('\n').map((line) => `  ${line}`);

/** Columns padded to their widest cell, two spaces apart; numeric columns right-aligned. */
export function table(rows: string[][], numeric: boolean[]): string {
  const widths = numeric.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}
