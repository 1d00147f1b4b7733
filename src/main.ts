/**
 * Wires regmirror together, top to bottom: config → storage → metadata → upstream clients → caches
 * → router → HTTP listeners. The only module besides the CLI that reads the configuration.
 */
import type { BlockList } from 'node:net';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { BlobCache } from './cache/blobs.js';
import { ListCache } from './cache/lists.js';
import { ManifestCache } from './cache/manifests.js';
import { resolveCredentials } from './config/credentials.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import type { Coordination } from './coordination/coordination.js';
import { createRequestObserver, type RequestRecord } from './http/access.js';
import { cidrList } from './network/addresses.js';
import { HtpasswdAuth } from './http/client-auth.js';
import { RegistryApi } from './http/registry-api.js';
import { listen, type OpenListener } from './http/server.js';
import { MetadataStore } from './metadata/records.js';
import { CacheLifecycle, type FleetEviction } from './lifecycle/lifecycle.js';
import { Metrics, type FleetMetrics } from './metrics/metrics.js';
import { Router } from './routing/router.js';
import type { OpenProxy } from './proxy/open.js';
import { FilesystemDriver } from './storage/filesystem.js';
import type { S3Driver } from './storage/s3.js';
import { resolveS3Credentials } from './storage/s3-credentials.js';
import { HEALTH_PROBE_KEY } from './storage/keys.js';
import { TlsError } from './tls/keypair.js';
import { openListenerSource, openListenerTls } from './tls/open.js';
import { UpstreamClient } from './upstream/client.js';
import { StatusPage } from './web/page.js';
import { takeSnapshot } from './web/snapshot.js';
import { StatusTracker } from './web/tracker.js';

/** How long a presigned blob URL (storage.redirect) stays valid: long enough to start the download. */
const PRESIGNED_URL_SECONDS = 300;

/** A running mirror. */
export interface Mirror {
  listeners: OpenListener[];
  /** The CONNECT proxy, when `proxy` is configured. */
  proxy?: OpenProxy | undefined;
  /** Stops accepting requests, lets open ones finish (up to `graceMs`), closes upstream pools. */
  close(graceMs?: number): Promise<void>;
}

/** Starts a mirror for a validated configuration. */
export async function startMirror(config: Readonly<Config>, logger: Logger): Promise<Mirror> {
  // What the configuration names (credentials, the htpasswd file, certificates) is read first, so
  // that a problem with it stops the start before storage, the index or the spool are touched.
  const metrics = new Metrics();
  const status = new StatusTracker({ upstreams: Object.keys(config.upstreams) });
  const clients = new Map<string, UpstreamClient>();
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    clients.set(name, new UpstreamClient({
      name,
      url: upstream.url,
      credentials: resolveCredentials(name, upstream.credentials),
      timeouts: upstream.timeouts,
      retries: upstream.retries,
      logger,
      ...status.upstreamObserver(name, metrics.upstreamObserver(name)),
    }));
  }
  const auth = config.access.htpasswd !== undefined ? openHtpasswd(config.access.htpasswd, config.access.realm, logger) : undefined;
  const tls = await openListenerTls(config.listeners, logger).catch((err: unknown) => {
    auth?.close();
    return tlsConfigError(err);
  });

  const storage = await openStorage(config.storage);
  await storage.init();
  // Redis (ioredis, ~25 MB of RSS) is loaded only for a fleet that configures it.
  const coordination = config.redis && (await openCoordination(config.redis, logger));
  const metadata = new MetadataStore(storage, coordination?.tags);
  const upstream = (name: string): UpstreamClient => {
    const client = clients.get(name);
    if (!client) throw new Error(`no upstream client for ${name}`);
    return client;
  };

  const { maxSize, lowWater, maxAge } = config.storage;
  const fleet = coordination && evictsByFleet(config) ? fleetEviction(coordination, fleetGraceMs(config), metrics.fleet()) : undefined;
  const lifecycle = await CacheLifecycle.open({
    dataDir: config.storage.path,
    storage,
    policy: { maxSize, lowWater, maxAge },
    logger,
    onEvicted: (reason, objects, bytes) => metrics.evicted(reason, objects, bytes),
    fleet,
  });
  metrics.useCacheUsage(() => lifecycle.usage(), maxSize);
  const blobs = new BlobCache({ storage, metadata, upstream, spoolDir: config.storage.spoolPath ?? join(config.storage.path, '_spool'), redirectSeconds: config.storage.redirect ? PRESIGNED_URL_SECONDS : undefined, logger, events: metrics.blobCacheEvents(), use: lifecycle.use, fleet: coordination?.fleet });
  await blobs.init();
  lifecycle.start(blobs);
  const manifests = new ManifestCache({
    storage,
    metadata,
    upstream,
    tagTTL: (name) => config.upstreams[name]?.tagTTL ?? config.cache.tagTTL,
    serveStaleOnError: config.cache.serveStaleOnError,
    memoryBytes: config.cache.manifestMemoryBytes,
    logger,
    onStored: (bytes) => metrics.contentStored(bytes),
    use: lifecycle.use,
  });
  const lists = new ListCache(storage, upstream, config.cache.serveStaleOnError);

  const router = new Router(
    Object.entries(config.upstreams).map(([name, u]) => ({ name, hosts: u.hosts, dockerHubNames: u.dockerHubNames ?? false })),
    config.routing.defaultUpstream,
  );
  const api = new RegistryApi({ blobs, manifests, lists });
  const account = createRequestObserver(metrics, logger, config.log.accessLog);
  // The status page names repositories, which /metrics never does: only on a listener of its own.
  const statusPage = config.admin.address === undefined ? undefined : new StatusPage({ snapshot: () => takeSnapshot({ tracker: status, metrics, cacheLimitBytes: maxSize }) });
  const deps = {
    router,
    api,
    logger,
    limits: config.http,
    trustedProxies: config.access.trustedProxies.length > 0 ? cidrList(config.access.trustedProxies) : undefined,
    auth,
    observe: (record: RequestRecord) => {
      account(record);
      status.record(record);
    },
    admin: { registry: metrics.registry, readiness: { storage: () => storage.put(HEALTH_PROBE_KEY, Buffer.from(String(Date.now()))) }, status: statusPage },
  };
  // Operator endpoints ride on the registry listeners unless they have a listener of their own.
  const allowList = (cidrs: readonly string[] | undefined): BlockList | undefined => (cidrs ? cidrList(cidrs) : undefined);
  const specs = config.listeners.map((l, i) => ({ ...parseAddress(l.address), upstream: l.upstream, registry: true, admin: config.admin.address === undefined, allow: allowList(l.allow), tls: tls[i] }));
  if (config.admin.address !== undefined) specs.push({ ...parseAddress(config.admin.address), upstream: undefined, registry: false, admin: true, allow: allowList(config.admin.allow), tls: undefined });
  const listeners: OpenListener[] = [];
  let proxy: OpenProxy | undefined;
  try {
    // The proxy opens first, so that once the registry listeners answer, everything does.
    if (config.proxy) {
      // Loaded only when configured: certificate minting pulls in an X.509 library (~15 MB of RSS).
      const { openProxy } = await import('./proxy/open.js');
      proxy = await openProxy(config.proxy, { server: deps, upstreamFor: (name) => router.lookup(name)?.name, metrics, logger, accessLog: config.log.accessLog }).catch(tlsConfigError);
    }
    for (const spec of specs) {
      const open = await listen(spec, deps);
      listeners.push(open);
      logger.info({ address: `${open.address.address}:${open.address.port}`, upstream: spec.upstream, registry: spec.registry, admin: spec.admin, tls: open.tls }, 'listening');
    }
  } catch (err) {
    await proxy?.close(0);
    await Promise.all(listeners.map((l) => new Promise((resolve) => l.server.close(resolve))));
    await Promise.all(tls.map((source) => source?.close()));
    await lifecycle.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  const close = async (graceMs: number): Promise<void> => {
    statusPage?.close();
    await Promise.all([...listeners.map((l) => new Promise<void>((resolve) => {
      l.server.close(() => resolve());
      l.server.closeIdleConnections();
      setTimeout(() => l.server.closeAllConnections(), graceMs).unref();
    })), proxy?.close(graceMs)]);
    await Promise.all([...clients.values()].map((c) => c.close()));
    await lifecycle.close();
    if (!(storage instanceof FilesystemDriver)) storage.close();
    coordination?.close();
    await Promise.all(tls.map((source) => source?.close()));
    deps.auth?.close();
  };
  return { listeners, proxy, close: (graceMs = 5_000) => (closing ??= close(graceMs)) };
}

/**
 * What `serve` reads at start besides the file, checked without starting anything (no port bound,
 * no storage opened, neither Redis nor an ACME CA asked): credentials from the environment and
 * files, the htpasswd file, the listeners' certificate files and the proxy's CA. `problems`: one
 * `config error at` line each, as the schema's; `warnings`: what would be logged at start without
 * stopping it (a certificate about to expire, htpasswd entries skipped).
 */
export async function startupProblems(config: Readonly<Config>): Promise<{ problems: string[]; warnings: string[] }> {
  const warnings: string[] = [];
  const logger = pino({ level: 'warn', base: undefined, timestamp: false }, {
    write(line: string) {
      const { msg, level: _level, ...fields } = JSON.parse(line) as Record<string, unknown>;
      warnings.push(Object.keys(fields).length > 0 ? `${String(msg)} (${JSON.stringify(fields)})` : String(msg));
    },
  });
  const problems: string[] = [];
  const check = async (resolve: () => unknown): Promise<void> => {
    try {
      await resolve();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err.message);
    }
  };
  for (const [i, { tls }] of config.listeners.entries()) {
    // An ACME listener would order its certificate: only certificate files are read.
    if (tls !== undefined && tls.acme === undefined) await check(() => openListenerSource(i, tls, logger).then((source) => source.close(), tlsConfigError));
  }
  const { htpasswd, realm } = config.access;
  if (htpasswd !== undefined) await check(() => openHtpasswd(htpasswd, realm, logger).close());
  if (config.storage.driver === 's3') await check(() => asConfigError(() => resolveS3Credentials(config.storage.credentials)));
  const { redis, proxy } = config;
  if (redis) {
    const { resolveRedisPassword } = await import('./coordination/redis.js');
    await check(() => asConfigError(() => resolveRedisPassword(redis)));
  }
  if (proxy) {
    const { openProxyCa } = await import('./proxy/open.js');
    await check(() => openProxyCa(proxy, logger).then((ca) => ca.close(), tlsConfigError));
  }
  for (const [name, upstream] of Object.entries(config.upstreams)) await check(() => resolveCredentials(name, upstream.credentials));
  return { problems, warnings };
}

/** Eviction by the fleet-wide record in Redis, with its metrics. */
function fleetEviction(coordination: Coordination, graceMs: number, metrics: FleetMetrics): FleetEviction {
  return {
    record: coordination.access,
    graceMs,
    onSyncFailed: () => metrics.syncFailures.inc(),
    onLeading: (leading) => metrics.evictor.set(leading ? 1 : 0),
  };
}

/** Replicas on one bucket with Redis evict by the fleet's use (docs/scale-out.md). */
export function evictsByFleet(config: Readonly<Config>): boolean {
  return config.redis !== undefined && config.storage.driver === 's3';
}

/** How recently any replica must have accessed content for fleet eviction to spare it. */
export function fleetGraceMs(config: Readonly<Config>): number {
  // A presigned URL may be first used just before it expires; its transfer then needs the grace too.
  return (config.redis?.evictionGrace ?? 0) + (config.storage.redirect ? PRESIGNED_URL_SECONDS * 1_000 : 0);
}

/** A certificate or key that cannot be used is a configuration error naming the key and the file. */
function tlsConfigError(err: unknown): never {
  throw err instanceof TlsError ? new ConfigError(`config error at ${err.message}`) : err;
}

/** The users of the htpasswd file; a file that cannot be read is a ConfigError naming the key. */
function openHtpasswd(path: string, realm: string, logger: Logger): HtpasswdAuth {
  try {
    return new HtpasswdAuth(path, realm, logger);
  } catch (err) {
    throw new ConfigError(`config error at access.htpasswd: ${(err as Error).message}`);
  }
}

/**
 * The storage driver the configuration names. The S3 driver (and the AWS SDK, ~17 MB of RSS) is
 * loaded only when configured.
 */
export async function openStorage(settings: Config['storage']): Promise<FilesystemDriver | S3Driver> {
  if (settings.driver === 'filesystem') return new FilesystemDriver(settings.path);
  const credentials = asConfigError(() => resolveS3Credentials(settings.credentials));
  const { bucket, prefix, endpoint, region, forcePathStyle } = settings;
  const { S3Driver: Driver } = await import('./storage/s3.js');
  return new Driver({ bucket: bucket!, prefix, endpoint, region, forcePathStyle, credentials });
}

/** Connects to Redis for fleet coordination. */
export async function openCoordination(settings: NonNullable<Config['redis']>, logger: Logger): Promise<Coordination> {
  const [{ Coordination: Fleet }, { resolveRedisPassword }] = await Promise.all([import('./coordination/coordination.js'), import('./coordination/redis.js')]);
  return Fleet.open(settings, asConfigError(() => resolveRedisPassword(settings)), logger);
}

/** Runs `resolve`, turning its error into a ConfigError (a setting that cannot be used). */
function asConfigError<T>(resolve: () => T): T {
  try {
    return resolve();
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

/** Splits `host:port` (`[v6]:port`, `:port` for every interface). */
export function parseAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(at + 1)) };
}
