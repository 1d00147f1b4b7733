// The access index, eviction policy, reconciliation and gc against a real filesystem store (no registry).
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BlobCache } from '../../src/cache/blobs.js';
import { MetadataStore } from '../../src/metadata/records.js';
import { digestOf, type Digest } from '../../src/oci/digest.js';
import { AccessIndex } from '../../src/lifecycle/access-index.js';
import { evict } from '../../src/lifecycle/eviction.js';
import { collectGarbage } from '../../src/lifecycle/gc.js';
import { CacheLifecycle, indexDir, indexFile } from '../../src/lifecycle/lifecycle.js';
import { liveServer } from '../../src/lifecycle/server-mark.js';
import { reconcile } from '../../src/lifecycle/reconcile.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { blobKey, blobLinkKey } from '../../src/storage/keys.js';
import { tempDir } from '../support/index.js';

/** A store with an index on a fake clock. */
async function setup(): Promise<{ dir: string; storage: FilesystemDriver; index: AccessIndex; clock: { t: number }; reopen: () => AccessIndex }> {
  const dir = tempDir('lifecycle');
  const storage = new FilesystemDriver(dir);
  await storage.init();
  const clock = { t: 1_000 };
  const reopen = (): AccessIndex => AccessIndex.open(indexFile(dir), { repair: true, owner: true, now: () => clock.t });
  return { dir, storage, index: reopen(), clock, reopen };
}

/** A store holding a (older) and b, 100 bytes each, both counted. */
async function setupWithTwo(): Promise<Awaited<ReturnType<typeof setup>> & { a: Digest; b: Digest }> {
  const stored = await setup();
  const a = await put(stored.storage, stored.index, 'a', 100);
  stored.clock.t += 10;
  const b = await put(stored.storage, stored.index, 'b', 100);
  stored.index.flush();
  return { ...stored, a, b };
}

/** Stores `size` bytes of content and tells the index, at the clock's time. */
async function put(storage: FilesystemDriver, index: AccessIndex, seed: string, size: number): Promise<Digest> {
  const data = Buffer.alloc(size, seed);
  const digest = digestOf(data);
  await storage.put(blobKey(digest), data);
  index.stored(digest, size);
  return digest;
}

describe('access index', () => {
  it('keeps notes in memory until flushed, and survives a restart', async () => {
    const { storage, index, clock, reopen } = await setup();
    const a = await put(storage, index, 'a', 100);
    index.accessed(a);
    index.pulled('quay.io', 'team/app', 'v1');
    expect(index.usage()).toEqual({ bytes: 0, objects: 0 });
    expect(index.pending).toBe(3);
    clock.t = 2_000;
    index.accessed(a);
    index.flush();
    expect(index.pending).toBe(0);
    expect(index.usage()).toEqual({ bytes: 100, objects: 1 });
    expect(index.get(a)).toMatchObject({ size: 100, storedAt: 1_000, accessedAt: 2_000, hits: 2 });
    index.close();

    const again = reopen();
    expect(again.state).toBe('clean');
    expect(again.get(a)).toMatchObject({ size: 100, accessedAt: 2_000 });
    expect(again.pulls()).toEqual([{ upstream: 'quay.io', repository: 'team/app', tag: 'v1', pulledAt: 1_000, pulls: 1 }]);
    again.close();
  });

  it('dates content stored after a download by when a client asked for it, not when the download ended', async () => {
    const { storage, index, clock } = await setup();
    const data = Buffer.alloc(10, 'm');
    const digest = digestOf(data);
    index.accessed(digest); // a miss: the download starts
    index.flush(); // nothing to update yet
    clock.t = 9_000;
    await storage.put(blobKey(digest), data);
    index.stored(digest, 10); // committed much later
    index.flush();
    expect(index.get(digest)).toMatchObject({ storedAt: 9_000, accessedAt: 1_000 });
    index.close();
  });

  it('says unclean after a mirror did not close it, and new when the file is damaged', async () => {
    const { dir, storage, index, reopen } = await setup();
    expect(index.state).toBe('new');
    const a = await put(storage, index, 'a', 10);
    index.flush();
    const second = reopen(); // the first was never closed: as after kill -9
    expect(second.state).toBe('unclean');
    second.close();
    index.close();

    await writeFile(indexFile(dir), 'not a database, not at all'.repeat(200));
    for (const suffix of ['-wal', '-shm']) await writeFile(indexFile(dir) + suffix, '').catch(() => undefined);
    expect(() => AccessIndex.open(indexFile(dir), { repair: false })).toThrow(/damaged/);
    const repaired = reopen();
    expect(repaired.state).toBe('new');
    expect(repaired.get(a)).toBeUndefined();
    const found = await reconcile(repaired, storage);
    expect(found.added).toBe(1);
    expect(repaired.get(a)?.size).toBe(10);
    repaired.close();
  });

  it('reconciles: adds content it did not know, drops rows of content that is gone', async () => {
    const { storage, index, clock } = await setup();
    const kept = await put(storage, index, 'k', 5);
    const gone = await put(storage, index, 'g', 7);
    index.flush();
    await storage.delete(blobKey(gone));
    const unknown = digestOf(Buffer.from('u'));
    await storage.put(blobKey(unknown), Buffer.from('u'));
    clock.t = 5_000;
    const result = await reconcile(index, storage, () => clock.t);
    expect([result.added, result.dropped]).toEqual([1, [gone]]);
    expect(index.get(unknown)).toMatchObject({ size: 1, accessedAt: 5_000 });
    expect(index.get(kept)).toBeDefined();
    expect(index.usage()).toEqual({ bytes: 6, objects: 2 });
    index.close();
  });

  it('takes sizes from a listing that carries them (S3), and stats only an object listed without one', async () => {
    const { dir, index } = await setup();
    const unknown = [Buffer.alloc(3, 'x'), Buffer.alloc(5, 'y'), Buffer.alloc(7, 'z')];
    const unsized = blobKey(digestOf(unknown[2]!));
    // Lists with sizes as S3 does (one request per 1,000 objects), but none for `unsized`; counts the stats (HEADs on S3) asked of it.
    const storage = new (class extends FilesystemDriver {
      stats = 0;
      override stat(key: string): Promise<{ size: number } | undefined> {
        this.stats++;
        return super.stat(key);
      }
      async *listWithSizes(prefix: string): AsyncIterable<{ key: string; size?: number }> {
        for await (const key of this.list(prefix)) yield { key, size: key === unsized ? undefined : (await super.stat(key))!.size };
      }
    })(dir);
    await storage.init();
    for (const data of unknown) await storage.put(blobKey(digestOf(data)), data);
    expect((await reconcile(index, storage)).added).toBe(3);
    expect(index.usage()).toEqual({ bytes: 15, objects: 3 });
    expect(storage.stats).toBe(1);
    index.close();
  });
});

describe('eviction', () => {
  it('evicts by last access, not by when content was stored, down to the low-water mark', async () => {
    const { storage, index, clock } = await setup();
    const digests: Digest[] = [];
    for (const seed of ['a', 'b', 'c', 'd']) {
      clock.t += 10;
      digests.push(await put(storage, index, seed, 100));
    }
    const [a, b, c, d] = digests as [Digest, Digest, Digest, Digest];
    clock.t += 10;
    index.accessed(a); // a is the oldest stored but now the most recently used
    const victims = await evict(index, storage, { policy: { maxSize: 350, lowWater: 0.6 }, now: clock.t });
    expect(victims.map((v) => [v.digest, v.reason])).toEqual([[b, 'size'], [c, 'size']]);
    expect(await storage.stat(blobKey(b))).toBeUndefined();
    expect(await storage.stat(blobKey(a))).toBeDefined();
    expect(await storage.stat(blobKey(d))).toBeDefined();
    expect(index.usage()).toEqual({ bytes: 200, objects: 2 });
    index.close();
  });

  it('evicts content nobody pulled for maxAge, and leaves what is in use', async () => {
    const { storage, index, clock } = await setup();
    const old = await put(storage, index, 'o', 10);
    const busy = await put(storage, index, 'b', 10);
    clock.t += 60_000;
    const fresh = await put(storage, index, 'f', 10);
    const victims = await evict(index, storage, { policy: { lowWater: 0.9, maxAge: 30_000 }, now: clock.t, keep: (row) => row.digest === busy });
    expect(victims.map((v) => [v.digest, v.reason])).toEqual([[old, 'age']]);
    expect(await storage.stat(blobKey(busy))).toBeDefined();
    expect(index.get(fresh)).toBeDefined();
    const dry = await evict(index, storage, { policy: { lowWater: 0.9, maxAge: 30_000 }, now: clock.t, dryRun: true });
    expect(dry.map((v) => v.digest)).toEqual([busy]);
    expect(await storage.stat(blobKey(busy))).toBeDefined();
    index.close();
  });

  it('counts again what it could not delete, and says why', async () => {
    const { storage, index, clock, a, b } = await setupWithTwo();
    // A store whose delete of `a` fails, as a busy or read-only file or an S3 SlowDown would.
    const failing = Object.assign(Object.create(storage) as FilesystemDriver, {
      delete: async (key: string) => (key === blobKey(a) ? Promise.reject(new Error('EACCES: permission denied')) : storage.delete(key)),
    });
    await expect(evict(index, failing, { policy: { maxSize: 50, lowWater: 0.5 }, now: clock.t })).rejects.toThrow(/1 of 2 objects .* could not be deleted \(counted again\): EACCES/);
    expect(await storage.stat(blobKey(a))).toBeDefined();
    expect(await storage.stat(blobKey(b))).toBeUndefined();
    expect(index.get(a)).toMatchObject({ size: 100 }); // still counted, so a later pass evicts it
    expect(index.usage()).toEqual({ bytes: 100, objects: 1 });
    expect((await evict(index, storage, { policy: { maxSize: 50, lowWater: 0.5 }, now: clock.t })).map((v) => v.digest)).toEqual([a]);
    index.close();
  });

  it('releases what it reserved for deletes even when a reservation throws', async () => {
    const { storage, index, clock, a, b } = await setupWithTwo();
    const released: Digest[] = [];
    const reserve = ({ digest }: { digest: Digest }): (() => void) => {
      if (digest === b) throw new Error('cannot reserve');
      return () => released.push(digest);
    };
    await expect(evict(index, storage, { policy: { maxSize: 50, lowWater: 0.5 }, now: clock.t, reserve })).rejects.toThrow('cannot reserve');
    expect(released).toEqual([a]);
    index.close();
  });

  it('keeps its notes and totals right while another process (gc) removes rows', async () => {
    const { dir, storage, index, clock } = await setup();
    const a = await put(storage, index, 'a', 10);
    const b = await put(storage, index, 'b', 20);
    index.flush();
    const other = AccessIndex.open(indexFile(dir), { repair: false });
    clock.t += 1;
    index.accessed(a); // pending in the mirror while gc removes b and a
    expect(other.removeUnchanged([other.get(b)!, other.get(a)!]).map((r) => r.digest)).toEqual([b, a]);
    index.flush(); // an access to a removed row adds nothing back
    expect(index.usage()).toEqual({ bytes: 0, objects: 0 });
    other.close();
    index.close();
  });
});

describe('gc', () => {
  async function withLeftoversAndOrphan(): Promise<Awaited<ReturnType<typeof setup>> & { linked: Digest; orphan: Digest }> {
    const s = await setup();
    s.clock.t = Date.now(); // leftovers carry real modification times
    const linked = await put(s.storage, s.index, 'l', 50);
    await s.storage.put(blobLinkKey('quay.io', 'team/app', linked), Buffer.alloc(0));
    const orphan = await put(s.storage, s.index, 'x', 30);
    s.index.flush();
    await mkdir(join(s.dir, '_spool'), { recursive: true });
    await writeFile(join(s.dir, '_spool', 'dead-download'), Buffer.alloc(1000));
    await writeFile(join(s.dir, '_staging', 'dead-put'), Buffer.alloc(24));
    return { ...s, linked, orphan };
  }

  it('removes leftovers and orphans; a dry run only says so', async () => {
    const s = await withLeftoversAndOrphan();
    const options = { dataDir: s.dir, storage: s.storage, index: s.index, policy: { lowWater: 0.9 }, serverRunning: false, graceMs: 600_000, now: () => s.clock.t };
    const dry = await collectGarbage({ ...options, dryRun: true });
    expect(dry.removals.map((r) => r.kind).sort()).toEqual(['leftover', 'leftover', 'orphan']);
    expect(dry.bytes).toBe(1054);
    expect(await readdir(join(s.dir, '_spool'))).toHaveLength(1);

    const real = await collectGarbage({ ...options, dryRun: false });
    expect(real.removals.find((r) => r.kind === 'orphan')?.what).toBe(s.orphan);
    expect(real.bytes).toBe(1054);
    expect(await readdir(join(s.dir, '_spool'))).toEqual([]);
    expect(await readdir(join(s.dir, '_staging'))).toEqual([]);
    expect(await s.storage.stat(blobKey(s.orphan))).toBeUndefined();
    expect(await s.storage.stat(blobKey(s.linked))).toBeDefined();
    s.index.close();
  });

  it('while a mirror serves, spares what it touched within the grace period', async () => {
    const s = await withLeftoversAndOrphan();
    const options = { dataDir: s.dir, storage: s.storage, index: s.index, policy: { lowWater: 0.9 }, serverRunning: true, graceMs: 600_000, dryRun: false };
    const fresh = await collectGarbage({ ...options, now: () => s.clock.t });
    expect(fresh.removals).toEqual([]); // a download may be under way; a link may be about to be written
    const past = new Date(s.clock.t - 3_600_000);
    await utimes(join(s.dir, '_spool', 'dead-download'), past, past);
    const later = await collectGarbage({ ...options, now: () => s.clock.t });
    expect(later.removals.map((r) => r.kind)).toEqual(['leftover']);
    const muchLater = await collectGarbage({ ...options, now: () => s.clock.t + 3_600_000 });
    expect(muchLater.removals.map((r) => [r.kind, r.what])).toEqual([['leftover', join(s.dir, '_staging', 'dead-put')], ['orphan', s.orphan]]);
    s.index.close();
  });
});

describe('gc on shared storage', () => {
  it('spares content seen within the grace period even when no mirror runs here: another replica may be about to link it', async () => {
    const s = await setup();
    s.clock.t = Date.now();
    const orphan = await put(s.storage, s.index, 'y', 30); // as just committed by another replica, its link not written yet
    s.index.flush();
    const options = { dataDir: s.dir, storage: s.storage, index: s.index, policy: { lowWater: 0.9 }, serverRunning: false, sharedStorage: true, graceMs: 600_000, dryRun: false };
    expect((await collectGarbage({ ...options, now: () => s.clock.t })).removals).toEqual([]);
    const later = await collectGarbage({ ...options, now: () => s.clock.t + 3_600_000 });
    expect(later.removals.map((r) => [r.kind, r.what])).toEqual([['orphan', orphan]]);
    s.index.close();
  });
});

describe('cache lifecycle in a mirror', () => {
  const logger = pino({ level: 'silent' });

  it('builds the index from storage for a cache folder without one, and marks the folder as served', async () => {
    const dir = tempDir('lifecycle-old');
    const storage = new FilesystemDriver(dir);
    await storage.init();
    for (const seed of ['a', 'b', 'c']) {
      const data = Buffer.alloc(10, seed);
      await storage.put(blobKey(digestOf(data)), data);
    }
    const lifecycle = await CacheLifecycle.open({ dataDir: dir, storage, policy: { lowWater: 0.9 }, logger });
    expect(lifecycle.usage()).toEqual({ bytes: 30, objects: 3 });
    expect(await liveServer(indexDir(dir))).toMatchObject({ pid: process.pid });
    await lifecycle.close();
    expect(await liveServer(indexDir(dir))).toBeUndefined();
  });

  it('evicts in the background when over its limit, leaving what is in use', async () => {
    const dir = tempDir('lifecycle-bg');
    const storage = new FilesystemDriver(dir);
    await storage.init();
    const evicted: number[] = [];
    const lifecycle = await CacheLifecycle.open({
      dataDir: dir, storage, policy: { maxSize: 250, lowWater: 0.5 }, logger, flushIntervalMs: 20,
      onEvicted: (_reason, objects) => evicted.push(objects),
    });
    const digests: Digest[] = [];
    for (const seed of ['a', 'b', 'c']) {
      const data = Buffer.alloc(100, seed);
      digests.push(digestOf(data));
      await storage.put(blobKey(digestOf(data)), data);
      lifecycle.use.stored(digestOf(data), 100);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const streamed = (digest: Digest): boolean => digest === digests[0]; // the oldest
    lifecycle.start({ inUse: streamed, reserveForDelete: (digest) => (streamed(digest) ? undefined : () => undefined), fleetSynced: () => undefined });
    for (let i = 0; i < 100 && evicted.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(lifecycle.usage()).toEqual({ bytes: 100, objects: 1 });
    expect(evicted).toEqual([2]);
    expect(await storage.stat(blobKey(digests[0]!))).toBeDefined();
    await lifecycle.close();
  });
});

/** Where a storage call waits: `reached` once a call arrives there, which goes on after `open()`. */
function gate(): { reached: Promise<void>; pass(): Promise<void>; open(): void } {
  let arrived!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((resolve) => (arrived = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { reached, pass: () => (arrived(), opened), open };
}

/** A filesystem store that signs URLs (as S3 does), with gates before deletes and after look-ups. */
class GatedStore extends FilesystemDriver {
  deleteGate: ReturnType<typeof gate> | undefined;
  statGate: ReturnType<typeof gate> | undefined;

  async presignGet(key: string): Promise<string> {
    return `https://storage.example/${key}`;
  }

  override async stat(key: string): Promise<{ size: number } | undefined> {
    const found = await super.stat(key);
    await this.statGate?.pass(); // looked up, not yet answered: the object may be deleted meanwhile
    return found;
  }

  override async delete(key: string): Promise<void> {
    await this.deleteGate?.pass();
    return super.delete(key);
  }
}

describe('eviction and redirects to storage', () => {
  const logger = pino({ level: 'silent' });

  /** A mirror's blob cache in redirect mode over a store holding a (older) and b, one over the limit. */
  async function redirecting(): Promise<{ store: GatedStore; lifecycle: CacheLifecycle; blobs: BlobCache; a: Digest; b: Digest }> {
    const dir = tempDir('lifecycle-redirect');
    const store = new GatedStore(dir);
    await store.init();
    const clock = { t: 1_000 };
    // Eviction runs only when the test asks (evictNow): the timer's first tick is a minute away.
    const lifecycle = await CacheLifecycle.open({ dataDir: dir, storage: store, policy: { maxSize: 150, lowWater: 0.9 }, logger, flushIntervalMs: 60_000, now: () => clock.t });
    const metadata = new MetadataStore(store);
    const blobs = new BlobCache({ storage: store, metadata, upstream: () => { throw new Error('no upstream'); }, spoolDir: join(dir, '_spool'), logger, redirectSeconds: 300, use: lifecycle.use });
    const stored: Digest[] = [];
    for (const data of [Buffer.alloc(100, 'a'), Buffer.alloc(100, 'b')]) {
      stored.push(digestOf(data));
      await store.put(blobKey(digestOf(data)), data);
      await metadata.linkBlob('quay.io', 'team/app', digestOf(data));
      lifecycle.use.stored(digestOf(data), 100);
      clock.t += 1_000;
    }
    lifecycle.start(blobs);
    return { store, lifecycle, blobs, a: stored[0]!, b: stored[1]! };
  }

  it('signs no URL to a blob while eviction is deleting it', async () => {
    const { store, lifecycle, blobs, a } = await redirecting();
    store.deleteGate = gate();
    const evicting = lifecycle.evictNow();
    await store.deleteGate.reached; // a's delete is under way: its object is still there
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBeUndefined(); // streamed instead: a miss once gone
    store.deleteGate.open();
    expect((await evicting).map((v) => v.digest)).toEqual([a]);
    await lifecycle.close();
  });

  it('evicts no blob while a URL to it is being signed', async () => {
    const { store, lifecycle, blobs, a, b } = await redirecting();
    store.statGate = gate();
    const signing = blobs.presigned('quay.io', 'team/app', a);
    await store.statGate.reached; // the presign found a in storage, and is about to sign
    expect((await lifecycle.evictNow()).map((v) => v.digest)).toEqual([b]); // a, the oldest, is held
    store.statGate.open();
    expect(await signing).toBe(`https://storage.example/${blobKey(a)}`);
    expect(await store.stat(blobKey(a))).toEqual({ size: 100 });
    await lifecycle.close();
  });
  it('redirects to a blob again after a driver\'s delete of it threw at once', async () => {
    const { store, lifecycle, blobs, a } = await redirecting();
    store.delete = (): Promise<void> => {
      throw new Error('driver bug');
    };
    await expect(lifecycle.evictNow()).rejects.toThrow(/1 of 1 objects .* could not be deleted \(counted again\): driver bug/);
    expect(lifecycle.usage()).toEqual({ bytes: 200, objects: 2 });
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBe(`https://storage.example/${blobKey(a)}`); // no longer reserved for its delete
    await lifecycle.close();
  });

  it('signs no URL to a blob the fleet\'s evictor is deleting, and looks in storage again once it is kept or gone', async () => {
    const { store, lifecycle, blobs, a, b } = await redirecting();
    const news = { evicting: [] as string[], all: false, settled: [] as string[], trustedUntil: Number.POSITIVE_INFINITY };
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBe(`https://storage.example/${blobKey(a)}`);
    blobs.fleetSynced({ ...news, evicting: [a] }); // a sync: another replica parked a
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBeUndefined(); // streamed: its access rescues it, or it goes
    blobs.fleetSynced({ ...news, settled: [a] }); // kept: a replica used it in time
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBeDefined();

    blobs.fleetSynced({ ...news, evicting: [b] });
    blobs.fleetSynced({ ...news, evicting: [], all: true }); // a first sync after a resync: b is no longer being deleted
    expect(await blobs.presigned('quay.io', 'team/app', b)).toBeDefined();
    await store.delete(blobKey(a)); // as the fleet's evictor does elsewhere
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBeDefined(); // still believed valid: no look-up
    blobs.fleetSynced({ ...news, settled: [a] }); // gone
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBeUndefined(); // streamed: a miss, fetched again
    await lifecycle.close();
  });

  it('looks in storage before every redirect while out of touch with the fleet', async () => {
    const { store, lifecycle, blobs, a } = await redirecting();
    blobs.fleetSynced({ evicting: [], all: true, settled: [], trustedUntil: Date.now() + 60_000 });
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBeDefined();
    await store.delete(blobKey(a)); // by the evictor, at a time this replica's syncs fail
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBeDefined(); // synced recently: its URL still trusted
    blobs.fleetSynced({ evicting: [], all: false, settled: [], trustedUntil: Date.now() - 1 }); // no sync for longer than the evictor waits
    expect(await blobs.presigned('quay.io', 'team/app', a)).toBeUndefined();
    await lifecycle.close();
  });
});
