/**
 * What the lifecycle of a replica on shared storage needs from the fleet-wide access record (kept
 * in Redis by `coordination/fleet-access.ts`): every replica's accesses, so that one elected replica
 * evicts by fleet-wide LRU, and the fleet's totals for the size limit and the metrics. The evictor's
 * pass (fill, wait, recover, evict) is here too, the one the mirror's lifecycle and gc both run.
 *
 * Eviction on a fleet is two-phase, because the evictor cannot see the other replicas' transfers:
 * content is first forgotten and parked; an access any replica syncs meanwhile rescues it; only
 * after `RESCUE_WAIT_MS` does the evictor claim what is still parked and delete it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Digest } from '../oci/digest.js';
import type { StorageDriver } from '../storage/driver.js';
import { blobKey } from '../storage/keys.js';
import type { AccessIndex, FlushedNotes } from './access-index.js';
import { evict, pages, type EvictionPass, type Ranking, type RankedRow, type Victim } from './eviction.js';

/** How often every replica sends its notes to the fleet record and reads its state (the lifecycle's tick). */
export const FLEET_SYNC_INTERVAL_MS = 1_000;

/**
 * How long parked content stays in storage before the evictor claims it. A replica learns of the
 * eviction at its first sync after it (within one interval) and from then on signs no URL to the
 * content; an access it made before is sent by its next sync at the latest (one interval more).
 * The third covers a sync's round trip (Redis commands time out after 1 s) and a late timer.
 */
export const RESCUE_WAIT_MS = 3 * FLEET_SYNC_INTERVAL_MS;

/** What changed in evictions since a replica's last sync, as the evicted log tells it. */
export interface EvictionChanges {
  /** Content being deleted (parked or claimed): no URL to it is signed until it is kept or deleted. */
  evicting: string[];
  /** `evicting` is all content being deleted now, not only what changed (first sync, or after a resync). */
  all: boolean;
  /** Content no longer being deleted: a replica used it in time, or its delete did not happen. */
  kept: string[];
  /** Content deleted: its index rows go. */
  evicted: string[];
}

/** The fleet as one sync saw it. */
export interface FleetState {
  /** Bytes and objects of all content; undefined while the record is incomplete (new, or Redis lost its data). */
  usage: { bytes: number; objects: number } | undefined;
  evictions: EvictionChanges;
  /** How much content is parked or claimed: what an evictor that died left there is counted again by the next pass. */
  pending: number;
  /** This replica may have missed evictions (Redis lost its data, or it was away too long): reconcile with storage. */
  resync: boolean;
  /**
   * How long ago the record was last filled from storage (Redis time, ms). A filled record knows
   * only the filling replica's access times; the others' recent accesses arrive with their next
   * syncs, so nothing is evicted until one grace period has passed (`settled`).
   */
  filledMsAgo: number | undefined;
}

/** True once a complete record has had one grace period for every replica's accesses to arrive. */
export function settled(state: FleetState, graceMs: number): boolean {
  return state.usage !== undefined && (state.filledMsAgo === undefined || state.filledMsAgo >= graceMs);
}

/**
 * The fleet-wide access record; as a `Ranking`, it orders all content by fleet-wide last access.
 * Its `removeUnchanged` parks rows: their content is deleted only once claimed (`claim`).
 */
export interface FleetRecord extends Ranking {
  /** Queues what a flush of the local index wrote, for the next sync (memory only). */
  note(notes: FlushedNotes): void;
  /** Sends the queued notes and reads the fleet's state in one round trip; rejects when Redis is unreachable (the notes stay queued). */
  sync(): Promise<FleetState>;
  /** True while this replica holds the evictor lease; takes it when nobody does. */
  lead(): Promise<boolean>;
  /** The rows of those of `digests` that the record counts, with their fleet-wide last access; and those being evicted (parked or claimed). */
  rowsOf(digests: readonly string[]): Promise<{ rows: RankedRow[]; evicting: Set<string> }>;
  /** Fills an incomplete record with content known to be in storage, then marks it complete. */
  seed(rows: AsyncIterable<readonly RankedRow[]>): Promise<void>;
  /** Clears claimed rows whose content is deleted now; every replica then drops their index rows. */
  deleted(rows: readonly RankedRow[]): Promise<void>;
  /** Takes those of `digests` still parked (not rescued by a replica's access) for deletion; returns them. */
  claim(digests: readonly string[]): Promise<string[]>;
  /** Counts claimed rows again: their content stayed (in use here, or its delete failed). */
  restore(rows: readonly RankedRow[]): Promise<void>;
  /**
   * Counts again content that an evictor parked or claimed at least `olderThanMs` ago and never
   * deleted (it died, or storage failed in between), and clears what was deleted; `sizeOf` says
   * whether it is still in storage. Returns how many were counted again.
   */
  recover(sizeOf: (digest: string) => Promise<number | undefined>, olderThanMs: number): Promise<number>;
  /** Gives the evictor lease up. */
  release(): void;
}

/** Rows per seeding call: one Redis script call each, so a large cache is sent in few round trips. */
const SEED_PAGE_ROWS = 1_000;

/** Fills an incomplete record from `index`, which must know all content (reconciled with storage just before). */
function seedFromIndex(record: FleetRecord, index: AccessIndex): Promise<void> {
  return record.seed(pages(index, SEED_PAGE_ROWS));
}

/**
 * Counts again what an interrupted eviction forgot but left in storage; resolves with how many.
 * Only what is older than one wait: younger content may be another pass's (gc's orphans), still waiting.
 */
function recoverFromStorage(record: FleetRecord, storage: StorageDriver, rescueWaitMs: number): Promise<number> {
  return record.recover(async (digest) => (await storage.stat(blobKey(digest as Digest)))?.size, rescueWaitMs);
}

/** The wait of eviction on a fleet (`EvictionPass.settle`): other replicas may rescue content meanwhile; resolves with what stays claimed. */
export function afterRescueWait(record: FleetRecord, rescueWaitMs = RESCUE_WAIT_MS): NonNullable<EvictionPass['settle']> {
  return async (rows) => {
    await sleep(rescueWaitMs);
    const claimed = new Set(await record.claim(rows.map((r) => r.digest)));
    return rows.filter((r) => claimed.has(r.digest));
  };
}

/** What an eviction pass by the fleet record needs besides the record (`evictByFleet`). */
export interface FleetPass {
  /** The pass itself (`spareAfter` is set from `graceMs`). A dry run neither fills the record nor recovers: it only ranks. */
  eviction: EvictionPass;
  /** Content any replica accessed within this long stays; a record filled less than this long ago evicts nothing. */
  graceMs: number;
  /** The replica's access index, which fills an incomplete record. */
  index: AccessIndex;
  /** Brings `index` in line with storage before it fills the record; absent when the caller just did. */
  reconcileFirst?: (() => Promise<void>) | undefined;
  /** Tests shorten it; RESCUE_WAIT_MS otherwise. */
  rescueWaitMs?: number | undefined;
}

/** What an eviction pass by the fleet record did. */
export type FleetPassOutcome =
  /** A dry run found the record incomplete: there is nothing to rank by until a real pass fills it. */
  | { kind: 'incomplete' }
  /** The record was incomplete and is filled now: nothing goes until one grace period has passed. */
  | { kind: 'seeded' }
  /** The record was filled less than one grace period ago: other replicas' accesses are still arriving. */
  | { kind: 'waiting' }
  /** `recovered`: how many objects an interrupted eviction had left in storage, counted again before the ranking. */
  | { kind: 'evicted'; victims: Victim[]; recovered: number };

/**
 * One pass of the fleet's evictor (holding the lease, unless a dry run) on the record as `state`,
 * its last sync, saw it; in the only safe order: an incomplete record is filled, not judged; a
 * just-filled one is judged only one grace period later; and what an interrupted eviction left is
 * counted again before the ranking, so that it is judged with the rest. The mirror's lifecycle and
 * gc both evict through it.
 */
export async function evictByFleet(record: FleetRecord, state: FleetState, storage: StorageDriver, fleetPass: FleetPass): Promise<FleetPassOutcome> {
  const { eviction, graceMs, index } = fleetPass;
  if (state.usage === undefined) {
    if (eviction.dryRun) return { kind: 'incomplete' };
    await fleetPass.reconcileFirst?.();
    await seedFromIndex(record, index);
    return { kind: 'seeded' };
  }
  if (!settled(state, graceMs)) return { kind: 'waiting' };
  const rescueWaitMs = fleetPass.rescueWaitMs ?? RESCUE_WAIT_MS;
  const recovered = eviction.dryRun ? 0 : await recoverFromStorage(record, storage, rescueWaitMs);
  const victims = await evict(record, storage, { ...eviction, spareAfter: eviction.now - graceMs, settle: afterRescueWait(record, rescueWaitMs) });
  return { kind: 'evicted', victims, recovered };
}
