// How the status summary reads, shared by the page (a browser module) and `regmirror stats`
// (through format.d.ts): one set of columns and one way to write each number.

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Bytes in binary units with three significant digits: `0 B`, `512 B`, `1.50 KiB`, `12.3 GiB`. */
export function formatBytes(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

/** A count with thousands separators: `12,345`. */
export function formatCount(n) {
  return Math.round(n).toLocaleString('en-US');
}

/** A ratio as a percentage with one decimal, or `—` when there is none yet. */
export function formatPercent(ratio) {
  return ratio === null || ratio === undefined ? '—' : `${(ratio * 100).toFixed(1)}%`;
}

/** A span of seconds, in its two largest units: `45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** How long ago an epoch-ms time was, or `never`. */
export function formatAgo(at, now) {
  return at === null || at === undefined ? 'never' : `${formatDuration((now - at) / 1000)} ago`;
}

/** The last failure: `timeout, 2 min 3 s ago`, or `never`. */
export function formatFailure(lastFailure, now) {
  return lastFailure ? `${lastFailure.failure}, ${formatAgo(lastFailure.at, now)}` : 'never';
}

/** The cache's size against its limit: `1.20 GiB of 10.0 GiB (12.0%)`, or `… (no limit)`. */
export function formatCache(cache) {
  if (cache.limitBytes === null) return `${formatBytes(cache.bytes)} (no limit)`;
  return `${formatBytes(cache.bytes)} of ${formatBytes(cache.limitBytes)} (${formatPercent(cache.bytes / cache.limitBytes)})`;
}

/** Pulls left in an upstream's rate-limit window: `76 of 100 left`, or `not reported`. */
export function formatRateLimit(rateLimit) {
  if (!rateLimit || rateLimit.remaining === null) return 'not reported';
  return rateLimit.limit === null ? `${formatCount(rateLimit.remaining)} left` : `${formatCount(rateLimit.remaining)} of ${formatCount(rateLimit.limit)} left`;
}

/** A rate without its unit: two decimals below 10 (`0.25`, `0`), a whole count above (`1,204`). */
export function formatRate(v) {
  return v < 10 ? v.toFixed(v ? 2 : 0) : formatCount(v);
}

/** A per-second rate, or `—` when there is none yet: `0.25/s`. */
export function formatPerSecond(v) {
  return v === null || v === undefined ? '—' : `${formatRate(v)}/s`;
}

/** The span rates were measured over: `over the last 1 min 0 s`, or `not measured yet`. */
export function formatRateWindow(seconds) {
  return seconds === null ? 'not measured yet' : `over the last ${formatDuration(seconds)}`;
}

/** Counts by reason, most first: `host-not-listed 2, bad-target 1`, or `''` for none. */
export function formatReasons(list) {
  return list.map((r) => `${r.reason} ${formatCount(r.count)}`).join(', ');
}

/** A CONNECT outcome's heading: `Intercepted`. */
export function outcomeLabel(outcome) {
  return outcome[0].toUpperCase() + outcome.slice(1);
}

/** The proxy connections open now: `3 intercepted, 1 tunnelled`. */
export function formatOpen(open) {
  return `${formatCount(open.intercepted)} intercepted, ${formatCount(open.tunnelled)} tunnelled`;
}

/** Tunnelled bytes both ways: `1.20 KiB from clients, 4.50 MiB to clients`. */
export function formatTunnelBytes(bytes) {
  return `${formatBytes(bytes.fromClient)} from clients, ${formatBytes(bytes.toClient)} to clients`;
}

/** The handshake failures a client sends when it does not trust the certificate it was shown. */
const UNTRUSTED_CA = new Set(['unknown-ca', 'bad-certificate']);

/** What to do about the proxy's handshake failures, or null when none points at the CA. */
export function proxyHint(proxy) {
  return proxy.handshakeFailures.some((f) => UNTRUSTED_CA.has(f.reason))
    ? "clients don't trust the regmirror CA: see docs/transparent-proxy.md"
    : null;
}

/** The per-upstream table: key, heading, whether it is a number (right-aligned), and its text. */
export const UPSTREAM_COLUMNS = [
  { key: 'name', label: 'Upstream', numeric: false, text: (u) => u.name },
  { key: 'health', label: 'Health', numeric: false, text: (u) => u.health },
  { key: 'requests', label: 'Requests', numeric: true, text: (u) => formatCount(u.requests) },
  { key: 'hits', label: 'Hits', numeric: true, text: (u) => formatCount(u.hits) },
  { key: 'hitRatio', label: 'Hit ratio', numeric: true, text: (u) => formatPercent(u.hitRatio) },
  { key: 'bytesFromCache', label: 'From cache', numeric: true, text: (u) => formatBytes(u.bytesFromCache) },
  { key: 'bytesFromUpstream', label: 'From upstream', numeric: true, text: (u) => formatBytes(u.bytesFromUpstream) },
  { key: 'upstreamErrors', label: 'Errors', numeric: true, text: (u) => formatCount(u.upstreamErrors) },
  { key: 'lastFailure', label: 'Last failure', numeric: false, text: (u, now) => formatFailure(u.lastFailure, now) },
];

/** Upstreams that reported a rate limit (Docker Hub's headers). */
export function rateLimited(snapshot) {
  return snapshot.upstreams.filter((u) => u.rateLimit !== null);
}
