/**
 * Every metric regmirror exports, defined in one place. Names carry the `regmirror_` prefix and
 * their unit; labels are bounded (upstream names come from the config, never repositories or digests).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Kinds of registry request, as labelled. */
export type RequestKind = 'base' | 'manifest' | 'blob' | 'tags' | 'referrers' | 'upload' | 'catalog' | 'invalid';

/** The metrics of one regmirror process. */
export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'regmirror_requests_total',
    help: 'Registry API requests answered, by upstream, kind, cache outcome (or denied: refused by a repository filter) and HTTP status',
    labelNames: ['upstream', 'kind', 'outcome', 'status'] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: 'regmirror_request_duration_seconds',
    help: 'Time from request to the last byte of the response, by kind and cache outcome',
    labelNames: ['kind', 'outcome'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  readonly responseBytes = new Counter({
    name: 'regmirror_response_bytes_total',
    help: 'Bytes sent to clients, by upstream, kind and cache outcome (hit: served from the cache)',
    labelNames: ['upstream', 'kind', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly upstreamRequests = new Counter({
    name: 'regmirror_upstream_requests_total',
    help: 'Requests sent to upstream registries (redirect hops included, token requests not), by method and status',
    labelNames: ['upstream', 'method', 'status'] as const,
    registers: [this.registry],
  });

  readonly upstreamDuration = new Histogram({
    name: 'regmirror_upstream_response_seconds',
    help: 'Time until an upstream answered with headers',
    labelNames: ['upstream'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly upstreamErrors = new Counter({
    name: 'regmirror_upstream_errors_total',
    help: 'Upstream requests (token requests included) that got no usable answer: unreachable, timeout, tls, redirect-refused, unavailable, auth, protocol, or a 5xx/429 status',
    labelNames: ['upstream', 'failure'] as const,
    registers: [this.registry],
  });

  readonly upstreamBlobBytes = new Counter({
    name: 'regmirror_upstream_blob_bytes_total',
    help: 'Blob bytes downloaded from upstream registries',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  readonly downloadsInFlight = new Gauge({
    name: 'regmirror_downloads_in_flight',
    help: 'Blob downloads from upstream under way',
    registers: [this.registry],
  });

  readonly downloadJoins = new Counter({
    name: 'regmirror_download_joins_total',
    help: 'Clients that joined a blob download already under way instead of starting another',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  readonly downloadFailures = new Counter({
    name: 'regmirror_download_failures_total',
    help: 'Blob downloads that did not verify or did not finish, by reason',
    labelNames: ['upstream', 'reason'] as const,
    registers: [this.registry],
  });

  /** Where the cache size is read at each scrape (the access index), once one is given. */
  private cacheUsage: (() => { bytes: number; objects: number }) | undefined;

  readonly cacheBytes = new Gauge({
    name: 'regmirror_cache_size_bytes',
    help: 'Bytes of blob and manifest content in the cache',
    registers: [this.registry],
    collect: () => {
      if (this.cacheUsage) this.cacheBytes.set(this.cacheUsage().bytes);
    },
  });

  readonly cacheObjects = new Gauge({
    name: 'regmirror_cache_objects',
    help: 'Blobs and manifests in the cache',
    registers: [this.registry],
    collect: () => {
      if (this.cacheUsage) this.cacheObjects.set(this.cacheUsage().objects);
    },
  });

  readonly cacheLimit = new Gauge({
    name: 'regmirror_cache_limit_bytes',
    help: 'The size limit of the cache (storage.maxSize); 0 when there is none',
    registers: [this.registry],
  });

  readonly evictions = new Counter({
    name: 'regmirror_evictions_total',
    help: 'Blobs and manifests evicted from the cache, by reason (size: over storage.maxSize; age: older than storage.maxAge)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly evictedBytes = new Counter({
    name: 'regmirror_evicted_bytes_total',
    help: 'Bytes of content evicted from the cache, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly rateLimitLimit = new Gauge({
    name: 'regmirror_upstream_ratelimit_limit',
    help: "Pull limit of the current window, from an upstream's ratelimit-limit header (Docker Hub)",
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  readonly rateLimitRemaining = new Gauge({
    name: 'regmirror_upstream_ratelimit_remaining',
    help: "Pulls left in the current window, from an upstream's ratelimit-remaining header (Docker Hub)",
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  });

  // Named as Prometheus names its own, so that the usual alert on a failed reload fits.
  readonly configReloadSuccessful = new Gauge({
    name: 'regmirror_config_last_reload_successful',
    help: 'Whether the last configuration reload (SIGHUP) was applied, or changed nothing: 1, or 0 when it failed',
    registers: [this.registry],
  });

  readonly configReloadSuccessTime = new Gauge({
    name: 'regmirror_config_last_reload_success_timestamp_seconds',
    help: 'When the configuration was last loaded successfully (at start, or by a reload), in Unix seconds',
    registers: [this.registry],
  });

  private proxyMetrics: ProxyMetrics | undefined;
  private fleetMetrics: FleetMetrics | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'regmirror_' });
    this.configLoaded(true);
  }

  /** The outcome of loading the configuration: at start, and at each reload. */
  configLoaded(ok: boolean): void {
    this.configReloadSuccessful.set(ok ? 1 : 0);
    if (ok) this.configReloadSuccessTime.set(Date.now() / 1000);
  }

  /** The CONNECT proxy's metrics, registered at the first call (by a process that runs the proxy). */
  proxy(): ProxyMetrics {
    return (this.proxyMetrics ??= new ProxyMetrics(this.registry));
  }

  /** The CONNECT proxy's metrics if the proxy registered them; undefined in a mirror without one. */
  get proxyIfRunning(): ProxyMetrics | undefined {
    return this.proxyMetrics;
  }

  /** Callbacks for an upstream client: requests, latency, errors, rate-limit headers. */
  upstreamObserver(upstream: string): {
    onResponse: (info: { method: string; status: number; durationMs: number; headers: Record<string, string | string[] | undefined> }) => void;
    onFailure: (failure: string) => void;
  } {
    return {
      onResponse: ({ method, status, durationMs, headers }) => {
        this.upstreamRequests.inc({ upstream, method, status: String(status) });
        this.upstreamDuration.observe({ upstream }, durationMs / 1000);
        if (status >= 500 || status === 429) this.upstreamErrors.inc({ upstream, failure: String(status) });
        this.observeRateLimit(upstream, headers);
      },
      onFailure: (failure) => this.upstreamErrors.inc({ upstream, failure }),
    };
  }

  /** Callbacks for the blob cache: downloads, joins, failures, stored content. */
  blobCacheEvents(): {
    downloadStarted(upstream: string): void;
    downloadEnded(upstream: string, bytes: number, failure?: string): void;
    joined(upstream: string): void;
    stored(bytes: number): void;
  } {
    return {
      downloadStarted: () => this.downloadsInFlight.inc(),
      downloadEnded: (upstream, bytes, failure) => {
        this.downloadsInFlight.dec();
        this.upstreamBlobBytes.inc({ upstream }, bytes);
        if (failure) this.downloadFailures.inc({ upstream, reason: failure });
      },
      joined: (upstream) => this.downloadJoins.inc({ upstream }),
      stored: (bytes) => this.contentStored(bytes),
    };
  }

  /** The fleet eviction's metrics, registered at the first call (by a replica with S3 storage and Redis). */
  fleet(): FleetMetrics {
    return (this.fleetMetrics ??= new FleetMetrics(this.registry));
  }

  /** Reads the cache size from `usage` at every scrape (exact, and shared with `regmirror gc`). */
  useCacheUsage(usage: () => { bytes: number; objects: number }, limit: number | undefined): void {
    this.cacheUsage = usage;
    this.cacheLimitIs(limit);
  }

  /** The cache's size limit, at start and after a reload; undefined: none. */
  cacheLimitIs(limit: number | undefined): void {
    this.cacheLimit.set(limit ?? 0);
  }

  /** Content was evicted. */
  evicted(reason: 'size' | 'age', objects: number, bytes: number): void {
    this.evictions.inc({ reason }, objects);
    this.evictedBytes.inc({ reason }, bytes);
  }

  /** Content of `bytes` was added to the cache. */
  contentStored(bytes: number): void {
    this.cacheBytes.inc(bytes);
    this.cacheObjects.inc();
  }

  /** Reads Docker Hub's `ratelimit-limit: 100;w=21600` style headers, when present. */
  observeRateLimit(upstream: string, headers: Record<string, string | string[] | undefined>): void {
    const limit = firstNumber(headers['ratelimit-limit']);
    const remaining = firstNumber(headers['ratelimit-remaining']);
    if (limit !== undefined) this.rateLimitLimit.set({ upstream }, limit);
    if (remaining !== undefined) this.rateLimitRemaining.set({ upstream }, remaining);
  }
}

/** What a CONNECT came to, as labelled. */
export const CONNECT_OUTCOMES = ['intercepted', 'tunnelled', 'refused', 'failed'] as const;
export type ConnectOutcome = (typeof CONNECT_OUTCOMES)[number];
/** The outcomes that leave a connection open (intercepted or tunnelled). */
export const OPEN_OUTCOMES = ['intercepted', 'tunnelled'] as const;

/**
 * The CONNECT proxy's metrics. Registered only where the proxy runs: a mirror without one exports
 * no series that could never move.
 */
export class ProxyMetrics {
  readonly connects: Counter<'outcome' | 'reason'>;
  readonly connections: Gauge<'outcome'>;
  readonly handshakeFailures: Counter<'reason'>;
  readonly tunnelBytes: Counter<'direction'>;

  constructor(registry: Registry) {
    this.connects = new Counter({
      name: 'regmirror_proxy_connects_total',
      help: 'CONNECT requests answered by the proxy, by outcome (intercepted, tunnelled, refused, failed) and the reason of a refusal or failure',
      labelNames: ['outcome', 'reason'] as const,
      registers: [registry],
    });
    this.connections = new Gauge({
      name: 'regmirror_proxy_connections_open',
      help: 'Intercepted and tunnelled proxy connections open now',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    this.handshakeFailures = new Counter({
      name: 'regmirror_proxy_tls_handshake_failures_total',
      help: "Intercepted connections whose TLS handshake failed, by reason (unknown-ca: the client does not trust regmirror's CA)",
      labelNames: ['reason'] as const,
      registers: [registry],
    });
    this.tunnelBytes = new Counter({
      name: 'regmirror_proxy_tunnel_bytes_total',
      help: 'Bytes passed through tunnels, by direction (from_client, to_client), counted when a tunnel closes',
      labelNames: ['direction'] as const,
      registers: [registry],
    });
    // Series that exist from the start, so that rate() sees their first increase.
    for (const outcome of OPEN_OUTCOMES) {
      this.connects.inc({ outcome, reason: '' }, 0);
      this.connections.set({ outcome }, 0);
    }
    for (const direction of ['from_client', 'to_client']) this.tunnelBytes.inc({ direction }, 0);
  }
}

/** Metrics of eviction by fleet-wide use; registered only on replicas that do it. */
export class FleetMetrics {
  readonly syncFailures: Counter;
  readonly evictor: Gauge;

  constructor(registry: Registry) {
    this.syncFailures = new Counter({
      name: 'regmirror_fleet_sync_failures_total',
      help: 'Syncs of access notes with the fleet-wide record in Redis that failed; eviction pauses until one succeeds, serving goes on',
      registers: [registry],
    });
    this.evictor = new Gauge({
      name: 'regmirror_fleet_evictor',
      help: "1 while this replica holds the fleet's eviction lease (the one replica that evicts), else 0",
      registers: [registry],
    });
  }
}

function firstNumber(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) ? n : undefined;
}
