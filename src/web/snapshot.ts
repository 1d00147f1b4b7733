/**
 * The status API's document (`GET /api/status`, and each `/api/events` message): totals read from
 * the metrics registry — the same numbers /metrics shows — joined with the tracker's history.
 */
import { CONNECT_OUTCOMES, type ConnectOutcome, type Metrics } from '../metrics/metrics.js';
import type { SeriesWindow } from './series.js';
import type { ImageCount } from './top-images.js';
import type { StatusTracker, UpstreamEvents } from './tracker.js';

/** Request and byte totals since the process started. */
export interface Counts {
  /** `regmirror_requests_total`, all outcomes. */
  requests: number;
  /** Requests with `outcome="hit"`. */
  hits: number;
  /** Requests with a cache outcome: hit, miss, coalesced, revalidated or stale. */
  cacheRequests: number;
  /** hits / cacheRequests, or null before the first such request. */
  hitRatio: number | null;
  /** Requests served stale because upstream failed (`outcome="stale"`). */
  stale: number;
  /** Requests answered with an error (`outcome="error"`). */
  failedRequests: number;
  /** `regmirror_response_bytes_total{outcome="hit"}`: bandwidth the cache saved. */
  bytesFromCache: number;
  /** `regmirror_response_bytes_total`, all outcomes. */
  bytesServed: number;
  /** `regmirror_upstream_blob_bytes_total`: blob bytes downloaded from upstream. */
  bytesFromUpstream: number;
  /** `regmirror_upstream_errors_total`: upstream requests without a usable answer. */
  upstreamErrors: number;
}

/** One upstream's line on the page. */
export interface UpstreamStatus extends Counts, UpstreamEvents {
  name: string;
  /** From Docker Hub's `ratelimit-*` headers (`regmirror_upstream_ratelimit_*`), once seen. */
  rateLimit: { limit: number | null; remaining: number | null } | null;
}

/** The status API's document. */
export interface StatusSnapshot {
  version: 1;
  /** Epoch ms when this was made. */
  time: number;
  startedAt: number;
  /** All upstreams, and requests that named none. */
  totals: Counts;
  upstreams: UpstreamStatus[];
  cache: {
    /** `regmirror_cache_size_bytes`. */
    bytes: number;
    /** `regmirror_cache_objects`. */
    objects: number;
    /** The configured size limit, or null for none. */
    limitBytes: number | null;
    /** `regmirror_downloads_in_flight`. */
    downloadsInFlight: number;
  };
  /** The most-pulled images (manifest GETs), most first. */
  topImages: ImageCount[];
  series: SeriesWindow;
  /** The CONNECT proxy's numbers; absent when no proxy is configured. */
  proxy?: ProxyStatus;
}

/** One outcome of `regmirror_proxy_connects_total`. */
export interface ConnectCount {
  total: number;
  /** Per second over `ProxyStatus.rateSeconds`; null only when no time has passed since the process started. */
  perSecond: number | null;
  /** By the `reason` label (refusals and failures have one), most first. */
  reasons: { reason: string; count: number }[];
}

/** The CONNECT proxy, from the `regmirror_proxy_*` metrics. */
export interface ProxyStatus {
  connects: Record<ConnectOutcome, ConnectCount>;
  /** The span the rates were measured over: the last minute, or since the process started when it is younger. */
  rateSeconds: number | null;
  /** `regmirror_proxy_connections_open`. */
  open: { intercepted: number; tunnelled: number };
  /** `regmirror_proxy_tls_handshake_failures_total` by reason, most first. */
  handshakeFailures: { reason: string; count: number }[];
  /** `regmirror_proxy_tunnel_bytes_total`. */
  tunnelBytes: { fromClient: number; toClient: number };
}

/** Where a snapshot's parts come from. */
export interface SnapshotSources {
  tracker: StatusTracker;
  metrics: Metrics;
  /** The cache's size limit in bytes, when one is configured. */
  cacheLimitBytes?: number | undefined;
  /** Images in the top list. Default 10. */
  topImages?: number;
}

const CACHE_OUTCOMES = new Set(['hit', 'miss', 'coalesced', 'revalidated', 'stale']);

const emptyCounts = (): Counts => ({
  requests: 0, hits: 0, cacheRequests: 0, hitRatio: null, stale: 0, failedRequests: 0,
  bytesFromCache: 0, bytesServed: 0, bytesFromUpstream: 0, upstreamErrors: 0,
});

type Labels = Partial<Record<string, string | number>>;
/** A prom-client metric, as far as reading its samples goes. */
type Sampled = { get(): Promise<{ values: { labels: Labels; value: number }[] }> };

/** Reads the registry and the tracker into one document. */
export async function takeSnapshot(sources: SnapshotSources): Promise<StatusSnapshot> {
  const { tracker, metrics } = sources;
  const now = tracker.now();
  const byUpstream = new Map<string, Counts>(tracker.upstreamNames.map((name) => [name, emptyCounts()]));
  const totals = emptyCounts();
  /** Adds every sample of a metric to its upstream's counts and the totals. */
  const add = async (metric: Sampled, apply: (c: Counts, labels: Labels, value: number) => void): Promise<void> => {
    for (const { labels, value } of (await metric.get()).values) {
      const counts = byUpstream.get(String(labels.upstream ?? ''));
      if (counts) apply(counts, labels, value);
      apply(totals, labels, value);
    }
  };
  await add(metrics.requests, (c, { outcome }, v) => {
    c.requests += v;
    if (outcome === 'hit') c.hits += v;
    if (outcome === 'stale') c.stale += v;
    if (outcome === 'error') c.failedRequests += v;
    if (CACHE_OUTCOMES.has(String(outcome))) c.cacheRequests += v;
  });
  await add(metrics.responseBytes, (c, { outcome }, v) => {
    c.bytesServed += v;
    if (outcome === 'hit') c.bytesFromCache += v;
  });
  await add(metrics.upstreamBlobBytes, (c, _, v) => (c.bytesFromUpstream += v));
  await add(metrics.upstreamErrors, (c, _, v) => (c.upstreamErrors += v));
  for (const c of [totals, ...byUpstream.values()]) c.hitRatio = c.cacheRequests > 0 ? c.hits / c.cacheRequests : null;

  const limits = await byLabel(metrics.rateLimitLimit, 'upstream');
  const remaining = await byLabel(metrics.rateLimitRemaining, 'upstream');
  const upstreams = tracker.upstreamNames.map((name): UpstreamStatus => {
    const seen = limits.has(name) || remaining.has(name);
    return {
      name,
      ...byUpstream.get(name)!,
      ...tracker.upstream(name, now),
      rateLimit: seen ? { limit: limits.get(name) ?? null, remaining: remaining.get(name) ?? null } : null,
    };
  });
  return {
    version: 1,
    time: Math.round(now),
    startedAt: Math.round(tracker.startedAt),
    totals,
    upstreams,
    cache: {
      bytes: await gaugeValue(metrics.cacheBytes),
      objects: await gaugeValue(metrics.cacheObjects),
      limitBytes: sources.cacheLimitBytes ?? null,
      downloadsInFlight: await gaugeValue(metrics.downloadsInFlight),
    },
    topImages: tracker.topImages(sources.topImages ?? 10),
    series: tracker.window(now),
    ...(await proxyStatus(metrics, tracker, now)),
  };
}

/** The proxy's part of the document: nothing when its metrics were never registered (no proxy). */
async function proxyStatus(metrics: Metrics, tracker: StatusTracker, now: number): Promise<{ proxy?: ProxyStatus }> {
  const proxy = metrics.proxyIfRunning;
  if (!proxy) return {};
  const connects = (await proxy.connects.get()).values;
  const counts = Object.fromEntries(CONNECT_OUTCOMES.map((o): [string, ConnectCount] => [o, { total: 0, perSecond: null, reasons: [] }])) as Record<ConnectOutcome, ConnectCount>;
  for (const { labels, value } of connects) {
    const count = counts[labels.outcome as ConnectOutcome];
    count.total += value;
    if (labels.reason) count.reasons.push({ reason: String(labels.reason), count: value });
  }
  const rates = tracker.proxyRates.observe(now, Object.fromEntries(CONNECT_OUTCOMES.map((o) => [o, counts[o].total])) as Record<ConnectOutcome, number>);
  for (const o of CONNECT_OUTCOMES) {
    counts[o].perSecond = rates?.perSecond[o] ?? null;
    counts[o].reasons = byCount(counts[o].reasons);
  }
  const open = await byLabel(proxy.connections, 'outcome');
  const bytes = await byLabel(proxy.tunnelBytes, 'direction');
  const failures = await byLabel(proxy.handshakeFailures, 'reason');
  return {
    proxy: {
      connects: counts,
      rateSeconds: rates?.seconds ?? null,
      open: { intercepted: open.get('intercepted') ?? 0, tunnelled: open.get('tunnelled') ?? 0 },
      handshakeFailures: byCount([...failures].map(([reason, count]) => ({ reason, count }))),
      tunnelBytes: { fromClient: bytes.get('from_client') ?? 0, toClient: bytes.get('to_client') ?? 0 },
    },
  };
}

const byCount = (list: { reason: string; count: number }[]): { reason: string; count: number }[] =>
  list.filter((r) => r.count > 0).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));

/** A metric's values by one label. */
async function byLabel(metric: Sampled, label: string): Promise<Map<string, number>> {
  return new Map((await metric.get()).values.map(({ labels, value }) => [String(labels[label]), value]));
}

async function gaugeValue(gauge: Sampled): Promise<number> {
  return (await gauge.get()).values[0]?.value ?? 0;
}
