/**
 * Wires regmirror together, top to bottom: config → what it names (startup-inputs.ts) → storage →
 * metadata → upstream clients → caches → router → HTTP listeners. With startup-inputs.ts, the only
 * module besides the CLI that reads the configuration.
 */
import type { BlockList } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BlobCache } from './cache/blobs.js';
import { ListCache } from './cache/lists.js';
import { ManifestCache } from './cache/manifests.js';
import { changesAnything, configChanges, type ConfigChanges, type CredentialsByUpstream } from './config/changes.js';
import { resolveCredentials, type Credentials } from './config/credentials.js';
import { ConfigError } from './config/error.js';
import type { Config, UpstreamConfig } from './config/schema.js';
import type { Coordination } from './coordination/coordination.js';
import { createRequestObserver, type RequestRecord } from './http/access.js';
import { cidrList, parseListenAddress } from './network/addresses.js';
import { RegistryApi } from './http/registry-api.js';
import { listen, type OpenListener } from './http/server.js';
import { MetadataStore } from './metadata/records.js';
import type { EvictionPolicy } from './lifecycle/eviction.js';
import { CacheLifecycle, type FleetEviction } from './lifecycle/lifecycle.js';
import { Metrics, type FleetMetrics } from './metrics/metrics.js';
import { RegistryError } from './oci/errors.js';
import { RepositoryFilter } from './routing/repository-filter.js';
import { Router, type RouteTarget } from './routing/router.js';
import type { OpenProxy } from './proxy/open.js';
import { readStartupInputs, type StartupInputs } from './startup-inputs.js';
import { FilesystemDriver } from './storage/filesystem.js';
import type { S3Driver } from './storage/s3.js';
import type { S3Keys } from './storage/s3-credentials.js';
import { HEALTH_PROBE_KEY } from './storage/keys.js';
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
  /**
   * Applies the configuration `load` returns (SIGHUP), whole or not at all (config/changes.ts), and
   * logs the outcome. Requests under way finish on what they started with.
   */
  reload(load: () => Readonly<Config>): ReloadOutcome;
  /** Stops accepting requests, lets open ones finish (up to `graceMs`), closes upstream pools. */
  close(graceMs?: number): Promise<void>;
}

/** What a reload did: what changed, or why nothing was applied. */
export type ReloadOutcome = { applied: true; changes: ConfigChanges } | { applied: false; error: string };

/** Starts a mirror for a validated configuration. */
export async function startMirror(config: Readonly<Config>, logger: Logger): Promise<Mirror> {
  // What the configuration names (credentials, the htpasswd file, certificates, the proxy CA) is read
  // first, so that a problem with it stops the start before storage, the index or the spool are touched.
  const inputs = await readStartupInputs(config, logger, { startAcme: true });
  try {
    return await assemble(config, logger, inputs);
  } catch (err) {
    await inputs.close(); // file watchers and ACME renewals must not outlive a start that failed
    throw err;
  }
}

/** Opens storage and the rest with what was read; the mirror's close() closes `inputs` too. */
async function assemble(config: Readonly<Config>, logger: Logger, inputs: StartupInputs): Promise<Mirror> {
  const metrics = new Metrics();
  const status = new StatusTracker({ upstreams: Object.keys(config.upstreams) });
  const newClient = (name: string, upstream: UpstreamConfig, credentials: Credentials | undefined): UpstreamClient => new UpstreamClient({
    name,
    url: upstream.url,
    credentials,
    timeouts: upstream.timeouts,
    retries: upstream.retries,
    logger,
    ...status.upstreamObserver(name, metrics.upstreamObserver(name)),
  });
  const clients = new Map<string, UpstreamClient>();
  for (const [name, upstream] of Object.entries(config.upstreams)) clients.set(name, newClient(name, upstream, inputs.upstreamCredentials.get(name)));
  // Clients a reload replaced, closing once the requests they carry are done.
  const retiring = new Set<Promise<void>>();
  const retire = (client: UpstreamClient): void => {
    const closed: Promise<void> = client.close().catch(() => undefined).finally(() => retiring.delete(closed));
    retiring.add(closed);
  };
  // What the running mirror was configured with: the start's configuration, then each reload's.
  let running: { config: Readonly<Config>; credentials: CredentialsByUpstream } = { config, credentials: inputs.upstreamCredentials };
  const router = new Router(routeTargets(config), config.routing.defaultUpstream);
  // Who may connect and whose X-Forwarded-For counts are read per request: a reload replaces them here.
  let applyAccess: (next: Readonly<Config>) => void = () => undefined;

  // What the start opens from here on. shutdown() closes whatever of it is open: when a later step
  // of the start fails (a port taken, an index that cannot be opened) as when the mirror closes.
  const opened: { storage?: FilesystemDriver | S3Driver; coordination?: Coordination; lifecycle?: CacheLifecycle; statusPage?: StatusPage; proxy?: OpenProxy } = {};
  const listeners: OpenListener[] = [];
  const shutdown = async (graceMs: number): Promise<void> => {
    const { storage, coordination, lifecycle, statusPage, proxy } = opened;
    statusPage?.close();
    await Promise.all([...listeners.map((l) => new Promise<void>((resolve) => {
      l.server.close(() => resolve());
      l.server.closeIdleConnections();
      setTimeout(() => l.server.closeAllConnections(), graceMs).unref();
    })), proxy?.close(graceMs)]);
    await Promise.all([...[...clients.values()].map((c) => c.close()), ...retiring]);
    await lifecycle?.close();
    if (storage && !(storage instanceof FilesystemDriver)) storage.close();
    coordination?.close();
  };
  try {
    const storage = (opened.storage = await openStorage(config.storage, inputs.s3Credentials));
    await storage.init();
    // Redis (ioredis, ~25 MB of RSS) is loaded only for a fleet that configures it.
    const coordination = config.redis && (opened.coordination = await openCoordination(config.redis, inputs.redisPassword, logger));
    const metadata = new MetadataStore(storage, coordination?.tags);
    const upstream = (name: string): UpstreamClient => {
      const client = clients.get(name);
      // Only a request routed just before a reload removed its upstream finds none.
      if (!client) throw new RegistryError('NAME_UNKNOWN', `registry ${name} is no longer mirrored here`, { registry: name });
      return client;
    };

    const fleet = coordination && evictsByFleet(config) ? fleetEviction(coordination, fleetGraceMs(config), metrics.fleet()) : undefined;
    const lifecycle = (opened.lifecycle = await CacheLifecycle.open({
      dataDir: config.storage.path,
      storage,
      policy: evictionPolicy(config),
      logger,
      onEvicted: (reason, objects, bytes) => metrics.evicted(reason, objects, bytes),
      fleet,
    }));
    metrics.useCacheUsage(() => lifecycle.usage(), config.storage.maxSize);
    const blobs = new BlobCache({ storage, metadata, upstream, spoolDir: config.storage.spoolPath ?? join(config.storage.path, '_spool'), redirectSeconds: config.storage.redirect ? PRESIGNED_URL_SECONDS : undefined, logger, events: metrics.blobCacheEvents(), use: lifecycle.use, fleet: coordination?.fleet });
    await blobs.init();
    lifecycle.start(blobs);
    const manifests = new ManifestCache({
      storage,
      metadata,
      upstream,
      tagTTL: (name) => running.config.upstreams[name]?.tagTTL ?? running.config.cache.tagTTL,
      serveStaleOnError: config.cache.serveStaleOnError,
      memoryBytes: config.cache.manifestMemoryBytes,
      logger,
      onStored: (bytes) => metrics.contentStored(bytes),
      use: lifecycle.use,
    });
    const lists = new ListCache(storage, upstream, config.cache.serveStaleOnError);

    const api = new RegistryApi({ blobs, manifests, lists });
    const account = createRequestObserver(metrics, logger, config.log.accessLog);
    // The status page names repositories, which /metrics never does: only on a listener of its own.
    const statusPage = config.admin.address === undefined ? undefined : (opened.statusPage = new StatusPage({ snapshot: () => takeSnapshot({ tracker: status, metrics, cacheLimitBytes: running.config.storage.maxSize }) }));
    const deps = {
      router,
      api,
      logger,
      limits: config.http,
      trustedProxies: trustedProxies(config),
      auth: inputs.auth,
      observe: (record: RequestRecord) => {
        account(record);
        status.record(record);
      },
      admin: { registry: metrics.registry, readiness: { storage: () => storage.put(HEALTH_PROBE_KEY, Buffer.from(String(Date.now()))) }, status: statusPage },
    };
    // Operator endpoints ride on the registry listeners unless they have a listener of their own.
    const allowList = (cidrs: readonly string[] | undefined): BlockList | undefined => (cidrs ? cidrList(cidrs) : undefined);
    const specs = config.listeners.map((l, i) => ({ ...parseListenAddress(l.address), upstream: l.upstream, registry: true, admin: config.admin.address === undefined, allow: allowList(l.allow), tls: inputs.listenerTls[i] }));
    if (config.admin.address !== undefined) specs.push({ ...parseListenAddress(config.admin.address), upstream: undefined, registry: false, admin: true, allow: allowList(config.admin.allow), tls: undefined });
    applyAccess = (next) => {
      deps.trustedProxies = trustedProxies(next);
      next.listeners.forEach((l, i) => (specs[i]!.allow = allowList(l.allow)));
      if (next.admin.address !== undefined) specs.at(-1)!.allow = allowList(next.admin.allow); // the admin listener's, last
    };
    // The proxy opens first, so that once the registry listeners answer, everything does.
    // The CA was read with the other inputs: it is there exactly when the proxy is configured.
    if (config.proxy && inputs.proxyCa) {
      const { openProxy } = await import('./proxy/open.js');
      opened.proxy = await openProxy(config.proxy, inputs.proxyCa, { server: deps, upstreamFor: (name) => router.lookup(name)?.name, metrics, logger, accessLog: config.log.accessLog });
    }
    for (const spec of specs) {
      const open = await listen(spec, deps);
      listeners.push(open);
      logger.info({ address: `${open.address.address}:${open.address.port}`, upstream: spec.upstream, registry: spec.registry, admin: spec.admin, tls: open.tls }, 'listening');
    }
  } catch (err) {
    await shutdown(0);
    throw err;
  }

  let closing: Promise<void> | undefined;
  const reload = (load: () => Readonly<Config>): ReloadOutcome => {
    let next: Readonly<Config>;
    let changes: ConfigChanges;
    let credentials: Map<string, Credentials | undefined>;
    let targets: RouteTarget[];
    try {
      if (closing) throw new Error('the mirror is shutting down');
      next = load();
      credentials = new Map(Object.entries(next.upstreams).map(([name, upstream]) => [name, resolveCredentials(name, upstream.credentials)]));
      changes = configChanges(running.config, running.credentials, next, credentials);
      if (changes.needRestart.length > 0) throw new ConfigError(`${changes.needRestart.join(', ')} changed, which a reload cannot apply: restart regmirror for them`);
      targets = routeTargets(next);
    } catch (err) {
      metrics.configLoaded(false);
      const error = (err as Error).message;
      logger.error({ error }, 'configuration not reloaded; the running one stays');
      return { applied: false, error };
    }
    // Nothing from here on can fail: the new configuration applies whole.
    for (const name of [...changes.removed, ...changes.changed]) {
      retire(clients.get(name)!);
      clients.delete(name);
    }
    for (const name of [...changes.added, ...changes.changed]) clients.set(name, newClient(name, next.upstreams[name]!, credentials.get(name)));
    router.reconfigure(targets, next.routing.defaultUpstream);
    opened.lifecycle!.setPolicy(evictionPolicy(next));
    applyAccess(next);
    metrics.cacheLimitIs(next.storage.maxSize);
    status.setUpstreams(Object.keys(next.upstreams), changes.changed);
    logger.level = next.log.level;
    running = { config: next, credentials };
    metrics.configLoaded(true);
    const { added, removed, changed, settings } = changes;
    if (changesAnything(changes)) logger.info({ added, removed, changed, settings }, 'configuration reloaded');
    else logger.info('configuration reloaded: no change');
    return { applied: true, changes };
  };

  const close = async (graceMs: number): Promise<void> => {
    await shutdown(graceMs);
    await inputs.close();
  };
  return { listeners, proxy: opened.proxy, reload, close: (graceMs = 5_000) => (closing ??= close(graceMs)) };
}

/** The proxies whose X-Forwarded-For is believed (`access.trustedProxies`), if any. */
function trustedProxies(config: Readonly<Config>): BlockList | undefined {
  return config.access.trustedProxies.length > 0 ? cidrList(config.access.trustedProxies) : undefined;
}

/** The cache's limits (`storage.maxSize`, `lowWater`, `maxAge`). */
function evictionPolicy(config: Readonly<Config>): EvictionPolicy {
  const { maxSize, lowWater, maxAge } = config.storage;
  return { maxSize, lowWater, maxAge };
}

/** What the router knows of each configured upstream. */
function routeTargets(config: Readonly<Config>): RouteTarget[] {
  return Object.entries(config.upstreams).map(([name, u]) => ({ name, hosts: u.hosts, dockerHubNames: u.dockerHubNames ?? false, repositories: RepositoryFilter.compile(u.repositories) }));
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

/**
 * The storage driver the configuration names; `credentials` are the S3 keys read by
 * readS3Credentials (startup-inputs.ts). The S3 driver (and the AWS SDK, ~17 MB of RSS) is loaded
 * only when configured.
 */
export async function openStorage(settings: Config['storage'], credentials: S3Keys | undefined): Promise<FilesystemDriver | S3Driver> {
  if (settings.driver === 'filesystem') return new FilesystemDriver(settings.path);
  const { bucket, prefix, endpoint, region, forcePathStyle } = settings;
  const { S3Driver: Driver } = await import('./storage/s3.js');
  return new Driver({ bucket: bucket!, prefix, endpoint, region, forcePathStyle, credentials });
}

/** Connects to Redis for fleet coordination, with the password read by readRedisPassword (startup-inputs.ts). */
export async function openCoordination(settings: NonNullable<Config['redis']>, password: string | undefined, logger: Logger): Promise<Coordination> {
  const { Coordination: Fleet } = await import('./coordination/coordination.js');
  return Fleet.open(settings, password, logger);
}
