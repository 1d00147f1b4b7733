/**
 * The cache lifecycle inside a running mirror: opens the access index (building it from storage
 * when missing or damaged), flushes the request path's notes every second, and evicts in the
 * background — expired content, and least-recently-used content while over the size limit —
 * never touching a blob that is being streamed, downloaded or redirected to (the blob cache's
 * holds, asked again right before each delete).
 *
 * With a fleet record (S3 shared by replicas, and Redis), each flush is also sent to Redis, and only
 * the replica holding the evictor lease evicts, by fleet-wide last access and size, sparing what
 * anyone accessed within the grace period, in two phases (see fleet.ts); every replica signs no URL
 * to content being deleted, and drops the index rows of content deleted.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { BlobCache, ContentUse } from '../cache/blobs.js';
import type { Digest } from '../oci/digest.js';
import type { StorageDriver } from '../storage/driver.js';
import { AccessIndex } from './access-index.js';
import { evict, hasLimits, type EvictionPass, type EvictionPolicy, type EvictionReason, type Victim } from './eviction.js';
import { evictByFleet, FLEET_SYNC_INTERVAL_MS, RESCUE_WAIT_MS, type FleetRecord, type FleetState } from './fleet.js';
import { reconcile } from './reconcile.js';
import { liveServer, markServing, type ServerMark } from './server-mark.js';

/** The folder of the access index and the server mark, inside the cache folder. */
export function indexDir(dataDir: string): string {
  return join(dataDir, '_index');
}

/** The access index file. */
export function indexFile(dataDir: string): string {
  return join(indexDir(dataDir), 'cache.db');
}

/**
 * Opens the index for a CLI tool (gc, ls) that may run beside a serving mirror; a damaged index is
 * rebuilt only when no mirror is alive. Also says which mirror serves the folder, if one does.
 */
export async function openIndexBeside(dataDir: string): Promise<{ index: AccessIndex; server: ServerMark | undefined }> {
  const server = await liveServer(indexDir(dataDir));
  return { index: AccessIndex.open(indexFile(dataDir), { repair: server === undefined }), server };
}

/** Eviction by the fleet-wide access record, for replicas sharing S3 storage through Redis. */
export interface FleetEviction {
  record: FleetRecord;
  /** Content accessed by any replica within this long is never evicted (it may be streaming there). */
  graceMs: number;
  /** A sync with Redis failed: eviction pauses until one succeeds. */
  onSyncFailed?: (() => void) | undefined;
  /** After each sync: whether this replica is the fleet's evictor. */
  onLeading?: ((leading: boolean) => void) | undefined;
  /** How long forgotten content waits for a rescue before it is deleted: tests shorten it; RESCUE_WAIT_MS otherwise. */
  rescueWaitMs?: number | undefined;
}

/**
 * What eviction asks the blob cache: which blobs are in use, and a reservation right before each
 * delete; and what it tells it: what the fleet's evictor is deleting, and has deleted.
 */
export type BlobHolds = Pick<BlobCache, 'inUse' | 'reserveForDelete' | 'fleetSynced'>;

/** Dependencies and settings of the lifecycle. */
export interface CacheLifecycleOptions {
  /** The cache folder (`storage.path`); the index lives in its `_index/`. */
  dataDir: string;
  storage: StorageDriver;
  policy: EvictionPolicy;
  logger: Logger;
  /** Called after each eviction pass that removed something, per reason. */
  onEvicted?: ((reason: EvictionReason, objects: number, bytes: number) => void) | undefined;
  /** How often notes are written to the index (and sent to the fleet record) and the size checked (default FLEET_SYNC_INTERVAL_MS). */
  flushIntervalMs?: number | undefined;
  /** How often expired content is looked for (default 1 min). */
  agePassIntervalMs?: number | undefined;
  /** Evict by the fleet's use instead of this replica's. */
  fleet?: FleetEviction | undefined;
  now?: () => number;
}

/** The index and background eviction of one mirror process. */
export class CacheLifecycle {
  private timer: NodeJS.Timeout | undefined;
  private evicting: Promise<Victim[]> | undefined;
  private lastAgePass = 0;
  private holds: BlobHolds = { inUse: () => false, reserveForDelete: () => () => undefined, fleetSynced: () => undefined };
  private closed = false;
  private lastUsage = { bytes: 0, objects: 0 };
  /** The fleet as the last successful sync saw it. */
  private fleetState: FleetState | undefined;
  private syncing: Promise<void> | undefined;
  private fleetDown = false;

  private constructor(
    private readonly options: CacheLifecycleOptions,
    private readonly index: AccessIndex,
    private readonly unmark: () => Promise<void>,
    private background: Promise<void>,
    private readonly now: () => number,
  ) {
    const record = options.fleet?.record;
    if (record) index.forward((notes) => record.note(notes));
  }

  /** Opens the index for a mirror; awaits a rebuild when there was no usable index. */
  static async open(options: CacheLifecycleOptions): Promise<CacheLifecycle> {
    const { dataDir, storage, logger } = options;
    const now = options.now ?? Date.now;
    await mkdir(indexDir(dataDir), { recursive: true });
    const unmark = await markServing(indexDir(dataDir));
    const index = AccessIndex.open(indexFile(dataDir), { repair: true, owner: true, now });
    const check = async (): Promise<void> => {
      const { added, dropped } = await reconcile(index, storage, now);
      const how = { new: 'built from storage', clean: 'checked against storage', unclean: 'reconciled with storage after an unclean stop' }[index.state];
      logger.info({ added, dropped: dropped.length, ...index.usage() }, `access index ${how}`);
    };
    let background = Promise.resolve();
    // A new index must be complete before sizes mean anything. Any other is nearly right, but content
    // committed while the last mirror was closing (or killed) may be missing: reconcile meanwhile.
    if (index.state === 'new') await check();
    else background = check().catch((err: unknown) => logger.warn({ err }, 'access index reconciliation failed'));
    return new CacheLifecycle(options, index, unmark, background, now);
  }

  /** Evicts by `policy` from the next check on (a reload's storage limits). */
  setPolicy(policy: EvictionPolicy): void {
    this.options.policy = policy;
  }

  /** Where the caches report content use. */
  get use(): ContentUse {
    return this.index;
  }

  /**
   * Bytes and count of the content in the cache, as indexed (notes so far included: exact at a
   * scrape); with a fleet record, the fleet's totals as of the last sync.
   */
  usage(): { bytes: number; objects: number } {
    if (this.fleetState?.usage) return this.fleetState.usage;
    if (this.closed) return this.lastUsage;
    try {
      this.index.flush();
    } catch {
      // written at the next tick
    }
    return (this.lastUsage = this.index.usage());
  }

  /** Starts flushing and evicting; `holds` says which blobs must not be deleted now. */
  start(holds: BlobHolds): void {
    this.holds = holds;
    // Out of touch until the first sync: URLs signed are not taken to stay valid.
    if (this.options.fleet) holds.fleetSynced({ evicting: [], all: true, settled: [], trustedUntil: 0 });
    this.lastAgePass = this.now();
    this.timer = setInterval(() => this.tick(), this.options.flushIntervalMs ?? FLEET_SYNC_INTERVAL_MS);
    this.timer.unref();
  }

  /** Runs an eviction pass now (or joins the one running); resolves with what was evicted. */
  evictNow(): Promise<Victim[]> {
    this.evicting ??= this.pass().finally(() => (this.evicting = undefined));
    return this.evicting;
  }

  /** Stops the timer, waits for work under way, writes the last notes and closes the index. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await Promise.allSettled([this.evicting, this.background, this.syncing]);
    this.index.close();
    const record = this.options.fleet?.record;
    await record?.sync().catch(() => undefined); // the last notes
    record?.release();
    await this.unmark();
  }

  private tick(): void {
    try {
      this.index.flush();
    } catch (err) {
      this.options.logger.warn({ err }, 'access index: notes not written, retrying'); // e.g. gc held the lock
      return;
    }
    const { fleet } = this.options;
    if (fleet) {
      this.syncing ??= this.fleetTick(fleet)
        .catch((err: unknown) => this.options.logger.warn({ err }, 'fleet sync failed')) // e.g. the index busy: the next tick retries
        .finally(() => (this.syncing = undefined));
      return;
    }
    if (hasLimits(this.options.policy)) this.evictIfDue(this.index.usage().bytes);
  }

  /**
   * Starts a pass when the cache is over its size (`bytes`; undefined: not known yet) or an age pass
   * is due, or (`pending`) an evictor may have left content parked or claimed, to count again.
   */
  private evictIfDue(bytes: number | undefined, pending = false): void {
    const { policy, logger } = this.options;
    if (this.evicting) return;
    const over = bytes === undefined || (policy.maxSize !== undefined && bytes > policy.maxSize);
    const ageDue = policy.maxAge !== undefined && this.now() - this.lastAgePass >= (this.options.agePassIntervalMs ?? 60_000);
    if (over || ageDue || pending) void this.evictNow().catch((err: unknown) => logger.warn({ err }, 'eviction failed'));
  }

  /** Sends the notes to the fleet record, applies what others did, and evicts when elected and due. */
  private async fleetTick(fleet: FleetEviction): Promise<void> {
    const { logger, policy } = this.options;
    let state: FleetState;
    let leading: boolean;
    try {
      state = await fleet.record.sync();
      // Only a replica with limits takes the lease: one without would hold it, evict nothing, and keep gc from applying its limits.
      leading = hasLimits(policy) && (await fleet.record.lead());
    } catch (err) {
      fleet.onSyncFailed?.();
      if (!this.fleetDown) logger.warn({ err: (err as Error).message }, 'fleet access record unavailable (redis): eviction paused, serving goes on');
      this.fleetDown = true;
      return;
    }
    if (this.fleetDown) logger.info('fleet access record available again');
    this.fleetDown = false;
    this.fleetState = state;
    const { evicting, all, kept, evicted } = state.evictions;
    if (evicted.length > 0) this.index.drop(evicted);
    // Trusted for as long as the evictor waits for rescues: an older sync may have missed a delete.
    this.holds.fleetSynced({ evicting, all, settled: [...kept, ...evicted], trustedUntil: Date.now() + (fleet.rescueWaitMs ?? RESCUE_WAIT_MS) });
    if (state.resync) this.reconcileLater('may have missed evictions by another replica');
    fleet.onLeading?.(leading);
    // An incomplete record (no usage) is filled by the pass, which then waits one grace period (see evictByFleet).
    if (leading) this.evictIfDue(state.usage?.bytes, state.pending > 0);
  }

  /** Corrects the index against storage in the background (once at a time). */
  private reconcileLater(why: string): void {
    const { logger, storage } = this.options;
    this.background = this.background.then(async () => {
      const { added, dropped } = await reconcile(this.index, storage, this.now);
      logger.info({ added, dropped: dropped.length, why }, 'access index reconciled with storage');
    }).catch((err: unknown) => logger.warn({ err }, 'access index reconciliation failed'));
  }

  private async pass(): Promise<Victim[]> {
    if (this.closed) return [];
    this.lastAgePass = this.now();
    const { fleet, storage, policy } = this.options;
    const now = this.now();
    const guard = { keep: (row: { digest: Digest }) => this.holds.inUse(row.digest), reserve: (row: { digest: Digest }) => this.holds.reserveForDelete(row.digest) };
    const pass: EvictionPass = { policy, now, ...guard };
    const victims = fleet ? await this.passByFleet(fleet, pass) : await evict(this.index, storage, pass);
    for (const reason of ['size', 'age'] as const) {
      const some = victims.filter((v) => v.reason === reason);
      if (some.length === 0) continue;
      const bytes = some.reduce((sum, v) => sum + v.size, 0);
      this.options.onEvicted?.(reason, some.length, bytes);
      const left = fleet ? undefined : this.index.usage(); // the fleet's totals come with the next sync
      this.options.logger.info({ reason, objects: some.length, bytes, cacheBytes: left?.bytes, cacheObjects: left?.objects }, 'evicted');
    }
    return victims;
  }

  /** Evicts by the fleet record (filling it first when incomplete) and logs what it did besides evicting. */
  private async passByFleet(fleet: FleetEviction, eviction: EvictionPass): Promise<Victim[]> {
    const { storage, logger } = this.options;
    // The ticks pass only after the sync that elected this replica; evictNow() may come before any sync.
    const state = this.fleetState;
    if (!state) return [];
    const outcome = await evictByFleet(fleet.record, state, storage, {
      eviction,
      graceMs: fleet.graceMs,
      rescueWaitMs: fleet.rescueWaitMs,
      index: this.index,
      reconcileFirst: async () => {
        logger.info('fleet access record incomplete (new, or redis lost its data): eviction waits while it is filled from storage');
        await reconcile(this.index, storage, this.now);
      },
    });
    if (outcome.kind === 'seeded') logger.info(this.index.usage(), 'fleet access record filled from storage');
    if (outcome.kind !== 'evicted') return [];
    if (outcome.recovered > 0) logger.info({ objects: outcome.recovered }, 'fleet access record: content an interrupted eviction left in storage counted again');
    return outcome.victims;
  }
}
