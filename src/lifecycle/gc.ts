/**
 * `regmirror gc`: removes what the eviction policy says should go, content no repository links to,
 * and spool and staging files left by a process that died mid-download; corrects the access index.
 *
 * Safe while a mirror serves the folder: then files and content touched within the grace period
 * are spared (they may be a download under way, or content whose link is about to be written), and
 * every index row is removed only if nobody accessed it meanwhile. When no mirror is alive (the
 * mark in `_index/` names a dead process, or none), nothing needs sparing — unless the storage is
 * shared (a bucket): another replica may be committing content whose link it has yet to write, so
 * content is spared by the same grace there (by when this index first saw it) whatever runs here.
 *
 * On a fleet (replicas sharing a bucket through Redis) the size and age limits are judged by the
 * fleet-wide access record, as the fleet's evictor judges them: one replica's index does not know
 * what the others' clients pull. gc applies them only when no replica is the evictor (it takes the
 * evictor lease for the run); otherwise the evictor does, and gc says so. Orphans it removes
 * leave the fleet record as evicted content does, so the fleet's totals stay true; while Redis is
 * unreachable they stay for a later run.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { StorageDriver } from '../storage/driver.js';
import type { AccessIndex, ContentRow } from './access-index.js';
import { evict, hasLimits, removeContent, type EvictionPass, type EvictionPolicy, type RankedRow, type Victim } from './eviction.js';
import { afterRescueWait, evictByFleet, type FleetState } from './fleet.js';
import type { FleetEviction } from './lifecycle.js';
import { reconcile } from './reconcile.js';

/** What gc removes, and why. */
export type RemovalKind = 'leftover' | 'orphan' | 'expired' | 'evicted';

/** One thing removed (or, in a dry run, to be removed). */
export interface Removal {
  kind: RemovalKind;
  /** A digest, or a local file path for leftovers. */
  what: string;
  bytes: number;
}

/** The outcome of a run. */
export interface GcReport {
  removals: Removal[];
  /** Bytes freed (or to be freed). */
  bytes: number;
  /** Index corrections: content found that it did not know, and rows of content already gone. */
  indexAdded: number;
  indexDropped: number;
  /** Why orphans were not removed by this run (on a fleet). */
  orphansLeft?: string | undefined;
  /** Why the size and age limits were not applied by this run (on a fleet). */
  limitsLeft?: string | undefined;
}

/** The fleet-wide access record and its grace, for gc on a replica that shares its bucket. */
export type GcFleet = Pick<FleetEviction, 'record' | 'graceMs' | 'rescueWaitMs'>;

/** What gc works on. */
export interface GcOptions {
  dataDir: string;
  /** Where spool files are (default `<dataDir>/_spool`). */
  spoolDir?: string | undefined;
  storage: StorageDriver;
  index: AccessIndex;
  policy: EvictionPolicy;
  /** A mirror is serving the folder now: spare what it touched within `graceMs`. */
  serverRunning: boolean;
  /** Other processes write the same storage (a bucket): spare content seen within `graceMs` anyway. */
  sharedStorage?: boolean | undefined;
  graceMs: number;
  dryRun: boolean;
  /** Judge the limits by the fleet's use (see the module comment). */
  fleet?: GcFleet | undefined;
  now?: () => number;
}

/** Runs gc; see the module comment. */
export async function collectGarbage(options: GcOptions): Promise<GcReport> {
  const now = (options.now ?? Date.now)();
  const within = (at: number): boolean => at > now - options.graceMs;
  const recent = (at: number): boolean => options.serverRunning && within(at);
  const removals: Removal[] = [];

  for (const dir of [options.spoolDir ?? join(options.dataDir, '_spool'), join(options.dataDir, '_staging')]) {
    for (const leftover of await leftovers(dir)) {
      if (recent(leftover.modifiedAt)) continue;
      if (!options.dryRun) await rm(leftover.path, { force: true });
      removals.push({ kind: 'leftover', what: leftover.path, bytes: leftover.bytes });
    }
  }

  const { index, storage } = options;
  const { present, added, dropped } = await reconcile(index, storage, () => now);
  const linked = await linkedDigests(storage);
  const orphans = [...present].filter((digest) => !linked.has(digest)).flatMap((digest) => {
    const row = index.get(digest);
    if (!row) return [];
    // On shared storage another replica may be about to link it, whether or not a mirror runs here.
    const spared = (options.serverRunning || options.sharedStorage) && within(row.accessedAt);
    return spared ? [] : [row];
  });
  const { removed: removedOrphans, left: orphansLeft } = options.dryRun ? { removed: orphans } : await removeOrphans(orphans, options, within);
  removals.push(...removedOrphans.map((row) => ({ kind: 'orphan' as const, what: row.digest, bytes: row.size })));

  const orphanDigests = new Set(orphans.map((row) => row.digest));
  // A dry run has removed no orphan: do not count one twice.
  const counted = (row: RankedRow): boolean => options.dryRun && orphanDigests.has(row.digest);
  const pass: EvictionPass = { policy: options.policy, now, dryRun: options.dryRun, keep: (row) => recent(row.accessedAt) || counted(row) };
  // On a fleet, the fleet's grace (any replica's recent use) takes the place of this folder's.
  const { victims, limitsLeft } = options.fleet && hasLimits(options.policy)
    ? await evictAsFleetEvictor(options.fleet, index, storage, { ...pass, keep: counted })
    : { victims: await evict(index, storage, pass), limitsLeft: undefined };
  removals.push(...victims.map((v) => ({ kind: v.reason === 'age' ? ('expired' as const) : ('evicted' as const), what: v.digest, bytes: v.size })));

  return { removals, bytes: removals.reduce((sum, r) => sum + r.bytes, 0), indexAdded: added, indexDropped: dropped.length, orphansLeft, limitsLeft };
}

/**
 * Deletes orphans the way eviction deletes content. On a fleet, those the fleet record counts leave
 * it as evicted content does (its totals drop; every replica drops their index rows), unless any
 * replica used them within the grace; those the evictor is deleting are its own; the rest (a record
 * not filled yet) go by the index alone.
 */
async function removeOrphans(orphans: ContentRow[], { index, storage, fleet }: GcOptions, within: (at: number) => boolean): Promise<{ removed: RankedRow[]; left?: string }> {
  if (!fleet) return { removed: await removeContent(index, storage, orphans) };
  let counted: RankedRow[];
  let evicting: ReadonlySet<string>;
  try {
    ({ rows: counted, evicting } = await fleet.record.rowsOf(orphans.map((row) => row.digest)));
  } catch (err) {
    return { removed: [], left: unreachable(err) }; // deleting them now would leave them in the fleet's totals
  }
  // Deleted as the evictor deletes: after other replicas had their chance to rescue what they used.
  const byFleet = await removeContent(fleet.record, storage, counted.filter((row) => !within(row.accessedAt)), { settle: afterRescueWait(fleet.record, fleet.rescueWaitMs) });
  index.drop(byFleet.map((row) => row.digest));
  const countedDigests = new Set(counted.map((row) => row.digest));
  const byIndex = await removeContent(index, storage, orphans.filter((row) => !countedDigests.has(row.digest) && !evicting.has(row.digest)));
  return { removed: [...byFleet, ...byIndex] };
}

/** Evicts by the fleet's record, as its evictor for this run; or says why not. A dry run only ranks. */
async function evictAsFleetEvictor(fleet: GcFleet, index: AccessIndex, storage: StorageDriver, pass: EvictionPass): Promise<{ victims: Victim[]; limitsLeft?: string }> {
  const { record } = fleet;
  let state: FleetState;
  try {
    state = await record.sync();
    if (!pass.dryRun && !(await record.lead())) return { victims: [], limitsLeft: 'another replica is the fleet\'s evictor and applies them' };
  } catch (err) {
    return { victims: [], limitsLeft: unreachable(err) };
  }
  try {
    // The index was just reconciled with storage: it knows every piece of content, as filling the record needs.
    const outcome = await evictByFleet(record, state, storage, { eviction: pass, graceMs: fleet.graceMs, rescueWaitMs: fleet.rescueWaitMs, index });
    if (outcome.kind === 'evicted') {
      if (!pass.dryRun) index.drop(outcome.victims.map((v) => v.digest));
      return { victims: outcome.victims };
    }
    return {
      victims: [],
      limitsLeft: outcome.kind === 'incomplete'
        ? 'the fleet access record is incomplete (new, or redis lost its data); gc without --dry-run fills it'
        : 'the fleet access record was just filled from storage: the limits apply once every replica\'s accesses are in, one grace period later',
    };
  } finally {
    record.release();
  }
}

/** Why gc left something to a later run: Redis did not answer. */
function unreachable(err: unknown): string {
  return `the fleet access record is unreachable (redis: ${(err as Error).message})`;
}

/** Files under a local work folder, with size and modification time. */
async function leftovers(dir: string): Promise<{ path: string; bytes: number; modifiedAt: number }[]> {
  const names = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  const found = [];
  for (const name of names) {
    const path = join(dir, String(name));
    const s = await stat(path).catch(() => undefined);
    if (s?.isFile()) found.push({ path, bytes: s.size, modifiedAt: s.mtimeMs });
  }
  return found;
}

/** Every digest some repository links to (`_blobs/` and `_manifests/` links). */
async function linkedDigests(storage: StorageDriver): Promise<Set<string>> {
  const linked = new Set<string>();
  for await (const key of storage.list('repositories/')) {
    const m = /\/_(?:blobs|manifests)\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(key);
    if (m) linked.add(`${m[1]}:${m[2]}`);
  }
  return linked;
}
