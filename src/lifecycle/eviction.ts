/**
 * Eviction policy: content nobody pulled for `maxAge` goes; and when the cache holds more than
 * `maxSize`, the least recently used content goes — by last access, not by when it was stored —
 * until it is down to `lowWater`. One pass over the index in LRU order decides both.
 *
 * Content is evicted piece by piece (a layer, a config, a manifest document), never whole images:
 * the caches treat missing content as a miss and fetch it again, while repository links and tag
 * records stay, so an image whose manifest or layers were evicted still pulls correctly.
 * The caller says what must be left alone (blobs being streamed or downloaded). The LRU order comes
 * from a `Ranking`: a replica's access index, or the fleet-wide record in Redis.
 */
import type { StorageDriver } from '../storage/driver.js';
import { blobKey } from '../storage/keys.js';
import type { ContentRow } from './access-index.js';

/** The limits, in bytes and milliseconds. */
export interface EvictionPolicy {
  maxSize?: number | undefined;
  /** A share of maxSize (0.9: evict down to 90%). */
  lowWater: number;
  maxAge?: number | undefined;
}

/** Why content goes. */
export type EvictionReason = 'size' | 'age';

/** What eviction needs to know of a piece of content. */
export type RankedRow = Pick<ContentRow, 'digest' | 'size' | 'accessedAt'>;

/** Content in least-recently-used order, with its total size (sync for SQLite, async for Redis). */
export interface Ranking {
  /** Writes notes not counted yet, so that the latest accesses decide. */
  flush?(): void;
  usage(): { bytes: number } | Promise<{ bytes: number }>;
  /** Rows after `cursor` (exclusive), oldest access first. */
  oldest(cursor: Pick<RankedRow, 'accessedAt' | 'digest'> | undefined, limit: number): RankedRow[] | Promise<RankedRow[]>;
  /** Forgets rows about to be deleted, each only if not accessed since it was read; returns those forgotten. */
  removeUnchanged(rows: readonly RankedRow[]): RankedRow[] | Promise<RankedRow[]>;
  /** The content of rows forgotten is now deleted from storage. */
  deleted?(rows: readonly RankedRow[]): Promise<void>;
  /** Counts again rows forgotten whose content was not deleted after all. */
  restore?(rows: readonly RankedRow[]): void | Promise<void>;
}

/** A piece of content chosen for eviction. */
export interface Victim extends RankedRow {
  reason: EvictionReason;
}

/** Options of one pass. */
export interface EvictionPass {
  policy: EvictionPolicy;
  now: number;
  /** True for content that must stay this time (in use, or too recent to judge). */
  keep?: ((row: RankedRow) => boolean) | undefined;
  /**
   * Asked right before content is deleted (its row already removed): undefined when it came into
   * use meanwhile, so it stays and is counted again; otherwise a release, called once its delete ended.
   */
  reserve?: ((row: RankedRow) => (() => void) | undefined) | undefined;
  /** Content accessed after this (ms) stays, and so does everything newer: the pass ends there. */
  spareAfter?: number | undefined;
  /** Choose, but delete nothing. */
  dryRun?: boolean | undefined;
  /**
   * Between forgetting content and deleting it: resolves with the rows still to delete. A fleet's
   * evictor waits there for other replicas to rescue what they used (lifecycle/fleet.ts); a pass
   * with it forgets page by page, then waits once for all.
   */
  settle?: (<T extends RankedRow>(rows: readonly T[]) => Promise<T[]>) | undefined;
}

const PAGE = 256;

/** True when the policy can ever evict anything. */
export function hasLimits(policy: EvictionPolicy): boolean {
  return policy.maxSize !== undefined || policy.maxAge !== undefined;
}

/** Chooses and (unless dry-run) deletes what the policy says should go; returns what went. */
export async function evict(ranking: Ranking, storage: StorageDriver, pass: EvictionPass): Promise<Victim[]> {
  const { policy } = pass;
  ranking.flush?.();
  let projected = (await ranking.usage()).bytes;
  const target = policy.maxSize === undefined ? Number.POSITIVE_INFINITY : policy.maxSize * policy.lowWater;
  const overSize = policy.maxSize !== undefined && projected > policy.maxSize;
  const expiredBefore = policy.maxAge === undefined ? Number.NEGATIVE_INFINITY : pass.now - policy.maxAge;
  if (!overSize && policy.maxAge === undefined) return [];

  const victims: Victim[] = [];
  const forgotten: Victim[] = [];
  for await (const rows of pages(ranking)) {
    const chosen: Victim[] = [];
    let done = false;
    for (const row of rows) {
      const reason: EvictionReason | undefined = row.accessedAt < expiredBefore ? 'age' : overSize && projected > target ? 'size' : undefined;
      if (!reason || row.accessedAt > (pass.spareAfter ?? Number.POSITIVE_INFINITY)) {
        done = true; // later rows are newer: neither expired nor needed, or spared
        break;
      }
      if (pass.keep?.(row)) continue;
      chosen.push({ ...row, reason });
      projected -= row.size;
    }
    if (pass.dryRun) victims.push(...chosen);
    else if (pass.settle) forgotten.push(...(await forget(ranking, chosen, pass)));
    else victims.push(...(await removeContent(ranking, storage, chosen, pass)));
    if (done) break;
  }
  if (forgotten.length > 0) victims.push(...(await deleteForgotten(ranking, storage, forgotten, pass)));
  return victims;
}

/** The ranking's rows, oldest access first, `size` at a time (the next page starts after the last row of this one). */
export async function* pages(ranking: Pick<Ranking, 'oldest'>, size = PAGE): AsyncGenerator<RankedRow[]> {
  for (let cursor: RankedRow | undefined; ; ) {
    const rows = await ranking.oldest(cursor, size);
    if (rows.length > 0) yield rows;
    if (rows.length < size) return;
    cursor = rows.at(-1);
  }
}

/**
 * Deletes content: its row first (only if not accessed meanwhile), then the object; returns what
 * went. Objects that cannot be deleted are counted again, and the call fails with why. Eviction's
 * path, and gc's for orphans, so the ranking's totals (a fleet's too) follow every delete.
 */
export async function removeContent<T extends RankedRow>(ranking: Ranking, storage: StorageDriver, chosen: readonly T[], guard: Guard = {}): Promise<T[]> {
  return deleteForgotten(ranking, storage, await forget(ranking, chosen, guard), guard);
}

type Guard = Pick<EvictionPass, 'keep' | 'reserve' | 'settle'>;

/** Removes the rows of `chosen` not in use and not accessed since they were read; returns those removed. */
async function forget<T extends RankedRow>(ranking: Ranking, chosen: readonly T[], guard: Guard): Promise<T[]> {
  // Checked again right before: a request may have started reading one while the page was chosen.
  const still = chosen.filter((v) => !guard.keep?.(v));
  const removed = new Set((await ranking.removeUnchanged(still)).map((r) => r.digest));
  return still.filter((v) => removed.has(v.digest));
}

/** Deletes the objects of rows removed (those `settle` leaves), counting again those that stay; returns those deleted. */
async function deleteForgotten<T extends RankedRow>(ranking: Ranking, storage: StorageDriver, forgotten: readonly T[], guard: Guard): Promise<T[]> {
  const unchanged = guard.settle && forgotten.length > 0 ? await guard.settle(forgotten) : forgotten;
  // Reserved only now, after the rows' removal (and on a fleet the wait): content that came
  // into use meanwhile (a redirect signed) stays, counted again; the rest stays unused until deleted.
  const releases: ((() => void) | undefined)[] = [];
  let gone: T[];
  let outcomes: PromiseSettledResult<void>[];
  try {
    for (const victim of unchanged) releases.push(guard.reserve ? guard.reserve(victim) : () => undefined);
    gone = unchanged.filter((_, i) => releases[i]);
    // Each delete in an async function: a driver's delete that throws at once fails its object like one that rejects.
    outcomes = await Promise.allSettled(gone.map(async (v) => storage.delete(blobKey(v.digest))));
  } finally {
    // Whatever happened, nothing stays reserved: a blob left reserved would never be redirected to again.
    for (const release of releases) release?.();
  }
  const failures = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [{ victim: gone[i]!, reason: o.reason as Error }] : []));
  const deleted = gone.filter((_, i) => outcomes[i]!.status === 'fulfilled');
  await ranking.deleted?.(deleted);
  const stayed = [...unchanged.filter((_, i) => !releases[i]), ...failures.map((f) => f.victim)];
  if (stayed.length > 0) await ranking.restore?.(stayed);
  if (failures.length > 0) {
    throw new Error(`${failures.length} of ${gone.length} objects chosen for eviction could not be deleted (counted again): ${failures[0]!.reason.message}`, { cause: failures[0]!.reason });
  }
  return deleted;
}
