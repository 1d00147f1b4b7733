// Leases, the fleet single flight, shared tag records, the fleet-wide access record and its
// evictor's pass (as gc and a mirror run it) against a real redis-server.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../test/scale-out/redis.js';
import { MetadataStore, type TagRecord } from '../metadata/records.js';
import { AccessIndex, type FlushedNotes } from '../lifecycle/access-index.js';
import { settled } from '../lifecycle/fleet.js';
import { collectGarbage, type GcReport } from '../lifecycle/gc.js';
import { CacheLifecycle, indexFile } from '../lifecycle/lifecycle.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { FilesystemDriver } from '../storage/filesystem.js';
import { blobKey, blobLinkKey } from '../storage/keys.js';
import { FleetAccess } from './fleet-access.js';
import { FleetFlight, finishesAfter } from './fleet-flight.js';
import { LeaseLocks } from './lease.js';
import { connectRedis } from './redis.js';
import { RedisTagRecords } from './tags.js';

const logger = pino({ level: 'silent' });
let server: RedisServer;
let redis: Redis;
let prefixes = 0;
const locks = (leaseMs: number, client: Redis = redis): LeaseLocks => new LeaseLocks(client, { keyPrefix: `t${prefixes++}:`, leaseMs, logger });

beforeAll(async () => {
  server = await startRedis();
  redis = await connectRedis({ url: server.url }, undefined, logger);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

describe('LeaseLocks', () => {
  it('lets one holder at a time take a lock, and the next one after release', async () => {
    const l = locks(5_000);
    const first = await l.tryAcquire('a');
    expect(first).toBeDefined();
    expect(await l.tryAcquire('a')).toBeUndefined();
    expect(await l.tryAcquire('b')).toBeDefined();
    first!.release();
    await sleep(20);
    expect(await l.tryAcquire('a')).toBeDefined();
  });

  it('keeps a renewed lock past its lease, and frees a dead holder\'s lock within one lease', async () => {
    const l = locks(300);
    const holder = await l.tryAcquire('renewed');
    holder!.report(() => ({ written: 10, size: 100 }));
    await sleep(700);
    expect(await l.tryAcquire('renewed')).toBeUndefined();
    expect(await l.progress('renewed')).toMatchObject({ written: 10, size: 100 });

    // A holder that dies stops renewing: stand in for it with a raw SET.
    const raw = locks(300);
    await redis.set(`t${prefixes - 1}:lock:dead`, 'someone', 'PX', 300);
    expect(await raw.tryAcquire('dead')).toBeUndefined();
    await sleep(350);
    expect(await raw.tryAcquire('dead')).toBeDefined();
    holder!.release();
  });

  it('never deletes a lock that passed to another holder (compare-and-delete)', async () => {
    const l = locks(200);
    const stale = await l.tryAcquire('x');
    // Its holder stalls past the lease (simulated by deleting the key), and another takes it.
    await redis.del(`t${prefixes - 1}:lock:x`);
    const next = await l.tryAcquire('x');
    expect(next).toBeDefined();
    stale!.release();
    await sleep(20);
    expect(await l.tryAcquire('x')).toBeUndefined();
    next!.release();
  });
});

describe('FleetFlight', () => {
  it('gives the first claimant the download; a waiter gets "stored" once the holder commits', async () => {
    const fleet = new FleetFlight({ locks: locks(2_000), waitLimitMs: 5_000, pollMs: 20, logger });
    let stored = false;
    const isStored = async (): Promise<boolean> => stored;
    const claim = await fleet.claim('sha256:aa', isStored);
    expect(claim).not.toBe('stored');
    const waiting = fleet.claim('sha256:aa', isStored);
    await sleep(100);
    stored = true;
    (claim as Exclude<typeof claim, 'stored'>).release();
    expect(await waiting).toBe('stored');
  });

  it('takes over when the holder dies, and gives up waiting at the limit', async () => {
    const l = new LeaseLocks(redis, { keyPrefix: 'takeover:', leaseMs: 200, logger });
    const fleet = new FleetFlight({ locks: l, waitLimitMs: 10_000, pollMs: 20, logger });
    await redis.set('takeover:lock:blob:sha256:bb', 'a replica that died', 'PX', 300); // never renewed
    const started = Date.now();
    const late = await fleet.claim('sha256:bb', async () => false);
    expect(late).not.toBe('stored');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(2_000);
    (late as Exclude<typeof late, 'stored'>).release();

    const patient = new FleetFlight({ locks: locks(5_000), waitLimitMs: 300, pollMs: 20, logger });
    const held = await patient.claim('sha256:dd', async () => false);
    const before = Date.now();
    const alone = await patient.claim('sha256:dd', async () => false);
    expect(alone).not.toBe('stored');
    expect(Date.now() - before).toBeGreaterThanOrEqual(250);
    (held as Exclude<typeof held, 'stored'>).release();
  });

  it('does not wait for a download that will not finish within the limit', () => {
    const now = 1_000_000;
    expect(finishesAfter({ written: 10, size: 1_000, elapsedMs: 3_000 }, now + 5_000, now)).toBe(true);
    expect(finishesAfter({ written: 900, size: 1_000, elapsedMs: 3_000 }, now + 5_000, now)).toBe(false);
    expect(finishesAfter({ written: 0, size: 1_000, elapsedMs: 3_000 }, now + 5_000, now)).toBe(false);
    expect(finishesAfter({ written: 10, size: 1_000, elapsedMs: 500 }, now + 5_000, now)).toBe(false); // too early to tell
    expect(finishesAfter(undefined, now + 5_000, now)).toBe(false);
  });

  it('frees the lock it took when the storage look-up fails, so other replicas need not wait', async () => {
    const shared = locks(5_000);
    const fleet = new FleetFlight({ locks: shared, waitLimitMs: 5_000, pollMs: 20, logger });
    const failed = await fleet.claim('sha256:ee', async () => {
      throw new Error('storage answered 503');
    });
    expect(failed).not.toBe('stored'); // it downloads without the lock
    const next = await shared.tryAcquire('blob:sha256:ee');
    expect(next).toBeDefined(); // free at once, not held and renewed until the process exits
    next?.release();
  });

  it('downloads alone at once when Redis is unreachable', async () => {
    const dead = new Redis('redis://127.0.0.1:1', { enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => null });
    dead.on('error', () => undefined);
    const fleet = new FleetFlight({ locks: locks(1_000, dead), waitLimitMs: 10_000, logger });
    const started = Date.now();
    expect(await fleet.claim('sha256:ee', async () => false)).not.toBe('stored');
    expect(Date.now() - started).toBeLessThan(1_000);
    dead.disconnect();
  });
});

describe('shared tag records', () => {
  const record = (digest: string, checkedAt: number): TagRecord => ({ digest: digest as Digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, checkedAt });
  const storageFolder = async (): Promise<FilesystemDriver> => {
    const storage = new FilesystemDriver(await mkdtemp(join(tmpdir(), 'regmirror-tags-')));
    await storage.init();
    return storage;
  };
  /** Two replicas' metadata on one storage folder and one Redis prefix. */
  const twoReplicas = async (): Promise<{ shared: RedisTagRecords; prefix: string; a: MetadataStore; b: MetadataStore }> => {
    const storage = await storageFolder();
    const prefix = `t${prefixes++}:tag:`;
    const shared = new RedisTagRecords(redis, prefix);
    return { shared, prefix, a: new MetadataStore(storage, shared), b: new MetadataStore(storage, shared) };
  };

  it('shows one replica\'s revalidation to the others at once, and falls back to storage', async () => {
    const { shared, a, b } = await twoReplicas();
    await a.putTag('ghcr.io', 'org/app', 'v1', record('sha256:11', 1));
    expect(await b.getTag('ghcr.io', 'org/app', 'v1')).toEqual(record('sha256:11', 1)); // now in b's memory too
    await a.putTag('ghcr.io', 'org/app', 'v1', record('sha256:11', 2));
    expect((await b.getTag('ghcr.io', 'org/app', 'v1'))?.checkedAt).toBe(2);

    // Redis lost its data: storage answers, and Redis is filled again.
    await redis.flushall();
    expect((await b.getTag('ghcr.io', 'org/app', 'v1'))?.checkedAt).toBe(2);
    expect((await shared.get('repositories/ghcr.io/org/app/_tags/v1'))?.checkedAt).toBe(2);
  });

  it('never lets a revalidation that saw the old digest overwrite the digest another replica recorded', async () => {
    const { shared, prefix, a, b } = await twoReplicas();
    await a.putTag('ghcr.io', 'org/app', 'v1', record('sha256:11', 1));
    expect(await a.getTag('ghcr.io', 'org/app', 'v1')).toEqual(record('sha256:11', 1)); // a read it before b's write
    await b.putTag('ghcr.io', 'org/app', 'v1', record('sha256:22', 2)); // b's HEAD saw the tag move
    await a.confirmTag('ghcr.io', 'org/app', 'v1', record('sha256:11', 3)); // a's HEAD, answered earlier, did not
    expect(await a.getTag('ghcr.io', 'org/app', 'v1')).toEqual(record('sha256:22', 2));

    await a.confirmTag('ghcr.io', 'org/app', 'v1', record('sha256:22', 4)); // the digest recorded: renewed
    expect(await b.getTag('ghcr.io', 'org/app', 'v1')).toEqual(record('sha256:22', 4));

    // A record Redis does not have (or cannot parse) is written.
    await redis.set(`${prefix}repositories/ghcr.io/org/app/_tags/v2`, 'not json');
    expect(await shared.confirm('repositories/ghcr.io/org/app/_tags/v2', record('sha256:33', 5))).toBe(true);
    expect(await shared.confirm('repositories/ghcr.io/org/app/_tags/v3', record('sha256:44', 6))).toBe(true);
    expect(await shared.get('repositories/ghcr.io/org/app/_tags/v2')).toEqual(record('sha256:33', 5));
    expect(await shared.confirm('repositories/ghcr.io/org/app/_tags/v3', record('sha256:55', 7))).toBe(false);
  });

  it('confirms against its own records when Redis is unreachable', async () => {
    const storage = await storageFolder();
    const dead = new Redis('redis://127.0.0.1:1', { enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => null });
    dead.on('error', () => undefined);
    const a = new MetadataStore(storage, new RedisTagRecords(dead, 'dead:tag:'));
    await new MetadataStore(storage).putTag('ghcr.io', 'org/app', 'v1', record('sha256:22', 2)); // another process, through storage
    await a.confirmTag('ghcr.io', 'org/app', 'v1', record('sha256:11', 3));
    expect(await new MetadataStore(storage).getTag('ghcr.io', 'org/app', 'v1')).toEqual(record('sha256:22', 2));
    await a.confirmTag('ghcr.io', 'org/app', 'v1', record('sha256:22', 4));
    expect(await new MetadataStore(storage).getTag('ghcr.io', 'org/app', 'v1')).toEqual(record('sha256:22', 4));
    dead.disconnect();
  });
});

/** How often Redis ran `command` since it started (INFO commandstats). */
async function calls(command: string): Promise<number> {
  const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(await redis.info('commandstats'));
  return Number(match?.[1] ?? 0);
}

/** Replicas sharing one fleet-wide access record (a key prefix of their own per test). */
function fleet(count: number, leaseMs = 5_000): FleetAccess[] {
  const prefix = `f${prefixes++}:`;
  return Array.from({ length: count }, () => new FleetAccess(redis, new LeaseLocks(redis, { keyPrefix: prefix, leaseMs, logger }), prefix));
}

const stored = (entries: [string, number, number][]): FlushedNotes => ({ stored: new Map(entries.map(([d, size, at]) => [d, { size, accessedAt: at }])), accessed: new Map() });
const accessed = (entries: [string, number][]): FlushedNotes => ({ stored: new Map(), accessed: new Map(entries) });

describe('FleetAccess', () => {
  it('counts content stored by several replicas at once only once, and orders it by the latest access anywhere', async () => {
    const [a, b] = fleet(2) as [FleetAccess, FleetAccess];
    await a.seed((async function* () {})()); // an empty fleet: complete at once
    a.note(stored([['sha256:aa', 100, 10], ['sha256:bb', 200, 20]]));
    b.note(stored([['sha256:aa', 100, 15], ['sha256:cc', 50, 30]]));
    b.note(accessed([['sha256:dd', 40]])); // not stored anywhere: not recorded
    await Promise.all([a.sync(), b.sync()]);
    expect((await a.sync()).usage).toEqual({ bytes: 350, objects: 3 });
    expect((await a.oldest(undefined, 10)).map((r) => [r.digest, r.accessedAt, r.size])).toEqual([['sha256:aa', 15, 100], ['sha256:bb', 20, 200], ['sha256:cc', 30, 50]]);

    b.note(accessed([['sha256:aa', 50]]));
    a.note(accessed([['sha256:aa', 45]])); // earlier than b's: never moves it back
    await b.sync();
    await a.sync();
    expect((await a.oldest(undefined, 10)).map((r) => r.digest)).toEqual(['sha256:bb', 'sha256:cc', 'sha256:aa']);
    expect((await a.oldest({ digest: 'sha256:bb' as never, accessedAt: 20 }, 1)).map((r) => r.digest)).toEqual(['sha256:cc']);
  });

  it('parks only content not accessed since it was chosen, and tells every replica what is being deleted, then what went', async () => {
    const [a, b] = fleet(2) as [FleetAccess, FleetAccess];
    await a.seed((async function* () {})());
    a.note(stored([['sha256:aa', 100, 10], ['sha256:bb', 200, 20]]));
    await a.sync();
    await b.sync(); // b's first sync: from now on it reads the evicted log
    const chosen = await a.oldest(undefined, 2);
    b.note(accessed([['sha256:bb', 60]]));
    await b.sync();
    const removed = await a.removeUnchanged(chosen);
    expect(removed.map((r) => r.digest)).toEqual(['sha256:aa']);
    expect(await a.removeUnchanged(chosen)).toEqual([]); // a second evictor changes nothing
    expect(await b.sync()).toMatchObject({ usage: { bytes: 200, objects: 1 }, evictions: { evicting: ['sha256:aa'], all: false, kept: [], evicted: [] }, pending: 1, resync: false });

    expect(await a.claim(['sha256:aa', 'sha256:bb'])).toEqual(['sha256:aa']); // bb was never parked
    expect(await a.claim(['sha256:aa'])).toEqual([]); // claimed once
    expect((await b.sync()).evictions.evicting).toEqual([]); // no news: still being deleted
    await a.deleted(removed);
    expect(await b.sync()).toMatchObject({ usage: { bytes: 200, objects: 1 }, evictions: { evicting: [], kept: [], evicted: ['sha256:aa'] }, pending: 0 });
  });

  it('rescues parked content that a replica\'s sync accessed or stored again, counted once, until it is claimed', async () => {
    const [a, b, c] = fleet(3) as [FleetAccess, FleetAccess, FleetAccess];
    await a.seed((async function* () {})());
    a.note(stored([['sha256:aa', 100, 10], ['sha256:bb', 200, 20], ['sha256:cc', 300, 30], ['sha256:dd', 400, 40]]));
    await a.sync();
    await b.sync();
    const parked = await a.removeUnchanged(await a.oldest(undefined, 4));
    expect((await b.sync()).usage).toEqual({ bytes: 0, objects: 0 });

    b.note(accessed([['sha256:aa', 70], ['sha256:zz', 70]])); // a use of aa, as a transfer or a URL signed records it; zz is unknown
    b.note(stored([['sha256:bb', 200, 71]])); // bb stored again (a download that raced the eviction)
    const rescue = await b.sync();
    expect(rescue).toMatchObject({ usage: { bytes: 300, objects: 2 }, evictions: { evicting: [], kept: ['sha256:aa', 'sha256:bb'], evicted: [] }, pending: 2 });
    b.note(accessed([['sha256:aa', 72]]));
    b.note(stored([['sha256:bb', 200, 73]]));
    expect((await b.sync()).usage).toEqual({ bytes: 300, objects: 2 }); // never counted twice
    expect((await a.oldest(undefined, 10)).map((r) => [r.digest, r.accessedAt])).toEqual([['sha256:aa', 72], ['sha256:bb', 73]]);

    expect(await a.claim(parked.map((r) => r.digest))).toEqual(['sha256:cc', 'sha256:dd']);
    b.note(accessed([['sha256:cc', 80]])); // too late: claimed, its delete is under way
    expect((await b.sync()).usage).toEqual({ bytes: 300, objects: 2 });
    // A replica's first sync names all content being deleted, not what changed since.
    expect((await c.sync()).evictions).toEqual({ evicting: ['sha256:cc', 'sha256:dd'], all: true, kept: [], evicted: [] });

    await a.restore([parked[3]!]); // dd stayed after all (its delete failed)
    await a.deleted([parked[2]!]);
    expect(await b.sync()).toMatchObject({ usage: { bytes: 700, objects: 3 }, evictions: { evicting: [], kept: ['sha256:dd'], evicted: ['sha256:cc'] }, pending: 0 });
  });

  it('counts again what an evictor parked or claimed but did not delete (it died in between), once it is stale', async () => {
    const [a, b] = fleet(2) as [FleetAccess, FleetAccess];
    await a.seed((async function* () {})());
    a.note(stored([['sha256:aa', 100, 10], ['sha256:bb', 200, 20], ['sha256:cc', 300, 30], ['sha256:dd', 400, 40]]));
    await a.sync();
    await b.sync();
    const [first, second, third] = await a.removeUnchanged(await a.oldest(undefined, 4));
    await a.claim([first!.digest, second!.digest, third!.digest]);
    await a.deleted([first!]); // aa deleted; a dies before deleting bb and cc (cc is gone anyway), and dd is still parked
    expect((await b.sync()).usage).toEqual({ bytes: 0, objects: 0 });
    const inStorage = async (digest: string): Promise<number | undefined> => ({ 'sha256:bb': 200, 'sha256:dd': 400 } as Record<string, number>)[digest];
    expect(await b.recover(inStorage, 60_000)).toBe(0); // maybe a live evictor's, waiting or deleting
    await sleep(50);
    expect(await b.recover(inStorage, 50)).toBe(2);
    expect(await b.sync()).toMatchObject({ usage: { bytes: 600, objects: 2 }, evictions: { kept: ['sha256:bb', 'sha256:dd'], evicted: ['sha256:cc'] }, pending: 0 });
    expect(await b.recover(async () => 1, 0)).toBe(0);

    // Left by a version that deleted at once (a set of digests): counted again whatever their age.
    const prefix = `f${prefixes - 1}:`;
    await redis.sadd(`${prefix}fleet:deleting`, 'sha256:ee', 'sha256:ff');
    expect(await b.recover(async (digest) => (digest === 'sha256:ee' ? 50 : undefined), 60_000)).toBe(1);
    expect([(await b.sync()).usage, await redis.exists(`${prefix}fleet:deleting`)]).toEqual([{ bytes: 650, objects: 3 }, 0]);
  });

  it('is incomplete until seeded, and a replica that saw another generation (Redis lost its data) resyncs', async () => {
    const [a, b] = fleet(2) as [FleetAccess, FleetAccess];
    expect((await b.sync()).usage).toBeUndefined();
    await a.seed((async function* () {
      yield [{ digest: 'sha256:aa' as never, size: 10, accessedAt: 1 }];
    })());
    expect(await b.sync()).toMatchObject({ usage: { bytes: 10, objects: 1 }, resync: false });
    await a.seed((async function* () {})()); // as after a restart of Redis: a new generation
    expect((await b.sync()).resync).toBe(true);
  });

  it('tells how long ago the record was filled: settled for eviction only one grace period later', async () => {
    const [a, b] = fleet(2) as [FleetAccess, FleetAccess];
    expect((await b.sync()).filledMsAgo).toBeUndefined();
    await a.seed((async function* () {
      yield [{ digest: 'sha256:aa' as never, size: 10, accessedAt: 1 }];
    })());
    const fresh = await b.sync();
    expect(fresh.filledMsAgo).toBeGreaterThanOrEqual(0);
    expect(fresh.filledMsAgo).toBeLessThan(5_000);
    expect(settled(fresh, 60_000)).toBe(false); // b's accesses from before the filling may be missing
    await sleep(250);
    expect(settled(await b.sync(), 200)).toBe(true);
  });

  it('elects one evictor, and another once its lease expires', async () => {
    const [a, b] = fleet(2, 300) as [FleetAccess, FleetAccess];
    expect(await a.lead()).toBe(true);
    expect(await b.lead()).toBe(false);
    expect(await a.lead()).toBe(true);
    a.release();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await b.lead()).toBe(true);
    b.release();
  });

  it('runs its scripts by SHA, sending their text again only after Redis forgot them', async () => {
    const [a] = fleet(1) as [FleetAccess];
    await a.seed((async function* () {})());
    await redis.script('FLUSH'); // as after a restart
    a.note(stored([['sha256:aa', 100, 10]]));
    expect((await a.sync()).usage).toEqual({ bytes: 100, objects: 1 }); // NOSCRIPT, then EVAL
    await sleep(2_000); // leases of earlier tests renew every 1.7 s: their first renewal after the flush EVALs too
    const [evalBefore, shaBefore] = [await calls('eval'), await calls('evalsha')];
    await a.sync();
    await a.sync();
    expect([await calls('eval'), await calls('evalsha')]).toEqual([evalBefore, shaBefore + 2]);
  });

  it('keeps the notes while Redis is unreachable and sends them once it is back', async () => {
    const [a] = fleet(1) as [FleetAccess];
    await a.seed((async function* () {})());
    await a.sync();
    await server.stop();
    a.note(stored([['sha256:aa', 100, 10]]));
    await expect(a.sync()).rejects.toThrow();
    await server.start();
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // reconnect back-off is at most 2 s
    await a.seed((async function* () {})());
    expect((await a.sync()).usage).toEqual({ bytes: 100, objects: 1 });
  });
});

const GRACE_MS = 1_000;
/** Shortened for the tests: the replicas here sync when told, not every second. */
const RESCUE_WAIT_MS = 300;
/** Three objects of 100 bytes are over it; evicting the oldest brings them under the low water (225). */
const OVER_BY_ONE = { maxSize: 250, lowWater: 0.9 };
/** Evicting the two oldest of three brings them under the low water (135). */
const OVER_BY_TWO = { maxSize: 150, lowWater: 0.9 };

/** Stores a, b and c (100 bytes each, linked), in that order, and tells `stored` of each at the clock's time. */
async function storeThree(storage: FilesystemDriver, clock: { t: number }, stored: (digest: Digest) => void): Promise<Digest[]> {
  const digests: Digest[] = [];
  for (const seed of ['a', 'b', 'c']) {
    const data = Buffer.alloc(100, seed);
    await storage.put(blobKey(digestOf(data)), data);
    await storage.put(blobLinkKey('quay.io', 'team/app', digestOf(data)), Buffer.alloc(0)); // not an orphan
    stored(digestOf(data));
    digests.push(digestOf(data));
    clock.t += 10;
  }
  return digests;
}

/** gc on a cache folder of a, b and c, accessed long ago, that judges the limits by `record`. */
async function gcOnAFleet(record: FleetAccess, policy = OVER_BY_ONE): Promise<{ gc: (dryRun: boolean) => Promise<GcReport>; digests: Digest[]; index: AccessIndex; storage: FilesystemDriver }> {
  const dir = await mkdtemp(join(tmpdir(), 'regmirror-fleet-gc-'));
  const storage = new FilesystemDriver(dir);
  await storage.init();
  const clock = { t: 1_000 };
  const index = AccessIndex.open(indexFile(dir), { repair: true, owner: true, now: () => clock.t });
  const digests = await storeThree(storage, clock, (digest) => index.stored(digest, 100));
  index.flush();
  const gc = (dryRun: boolean): Promise<GcReport> => collectGarbage({
    dataDir: dir, storage, index, policy, serverRunning: false, graceMs: 600_000, dryRun, fleet: { record, graceMs: GRACE_MS, rescueWaitMs: RESCUE_WAIT_MS },
  });
  return { gc, digests, index, storage };
}

const JUST_FILLED = /^the fleet access record was just filled from storage/;

describe('the fleet evictor\'s pass', () => {
  it('in gc: fills an incomplete record (not on a dry run), then evicts nothing for one grace period', async () => {
    const [record, other] = fleet(2) as [FleetAccess, FleetAccess];
    const { gc, digests, index } = await gcOnAFleet(record);

    const dry = await gc(true);
    expect(dry).toMatchObject({ removals: [], limitsLeft: 'the fleet access record is incomplete (new, or redis lost its data); gc without --dry-run fills it' });
    expect((await other.sync()).usage).toBeUndefined();

    const filling = await gc(false);
    expect(filling).toMatchObject({ removals: [], limitsLeft: expect.stringMatching(JUST_FILLED) });
    expect((await other.sync()).usage).toEqual({ bytes: 300, objects: 3 }); // over the limit, as the record now says
    const soon = await gc(false); // the other replicas' accesses may still be on their way
    expect(soon).toMatchObject({ removals: [], limitsLeft: expect.stringMatching(JUST_FILLED) });

    await sleep(GRACE_MS);
    const later = await gc(false);
    expect(later.limitsLeft).toBeUndefined();
    expect(later.removals.map((r) => [r.kind, r.what])).toEqual([['evicted', digests[0]]]);
    index.close();
  });

  it('in gc: counts again what an interrupted eviction left before it ranks, so that it is judged with the rest', async () => {
    const [record, dead] = fleet(2) as [FleetAccess, FleetAccess];
    const { gc, digests, index } = await gcOnAFleet(record);
    await gc(false); // fills the record
    await sleep(GRACE_MS);
    // An evictor that died mid-pass: it took a out of the record's totals, and never deleted it.
    expect((await dead.removeUnchanged(await dead.oldest(undefined, 1))).map((r) => r.digest)).toEqual([digests[0]]);
    expect((await dead.sync()).usage).toEqual({ bytes: 200, objects: 2 }); // under the limit, as the record stands
    await sleep(RESCUE_WAIT_MS); // younger, it could be a live pass's, still waiting

    const run = await gc(false);
    // a, counted again as just accessed, puts the fleet over the limit: b, the oldest now, goes.
    expect(run.removals.map((r) => [r.kind, r.what])).toEqual([['evicted', digests[1]]]);
    expect((await dead.sync()).usage).toEqual({ bytes: 200, objects: 2 });
    index.close();
  });

  it('in gc: deletes what nobody used once the wait is over, and leaves what another replica used meanwhile', async () => {
    const [record, other] = fleet(2) as [FleetAccess, FleetAccess];
    const parked = `f${prefixes - 1}:fleet:parked`;
    const { gc, digests, index, storage } = await gcOnAFleet(record, OVER_BY_TWO);
    await gc(false); // fills the record
    await sleep(GRACE_MS);
    const dry = await gc(true); // only ranks: parks nothing, waits for nothing
    expect(dry.removals.map((r) => [r.kind, r.what])).toEqual([['evicted', digests[0]], ['evicted', digests[1]]]);
    expect([await redis.hlen(parked), (await other.sync()).usage]).toEqual([0, { bytes: 300, objects: 3 }]);

    const started = Date.now();
    const running = gc(false);
    while ((await redis.hlen(parked)) < 2) await sleep(5); // a and b forgotten, not deleted yet
    expect(await storage.stat(blobKey(digests[0]!))).toEqual({ size: 100 });
    other.note(accessed([[digests[0]!, Date.now()]])); // another replica serves a: its next sync rescues it
    expect((await other.sync()).usage).toEqual({ bytes: 200, objects: 2 });

    const run = await running;
    expect(Date.now() - started).toBeGreaterThanOrEqual(RESCUE_WAIT_MS);
    expect(run.removals.map((r) => [r.kind, r.what])).toEqual([['evicted', digests[1]]]);
    expect([await storage.stat(blobKey(digests[0]!)), await storage.stat(blobKey(digests[1]!))]).toEqual([{ size: 100 }, undefined]);
    expect(await other.sync()).toMatchObject({ usage: { bytes: 200, objects: 2 }, evictions: { evicting: [], evicted: [digests[1]] }, pending: 0 });
    index.close();
  });

  it('in a mirror: fills an incomplete record, then evicts nothing for one grace period', async () => {
    const [record] = fleet(1) as [FleetAccess];
    const dir = await mkdtemp(join(tmpdir(), 'regmirror-fleet-lifecycle-'));
    const storage = new FilesystemDriver(dir);
    await storage.init();
    const clock = { t: 1_000 };
    const evicted: number[] = [];
    const lifecycle = await CacheLifecycle.open({
      dataDir: dir, storage, policy: OVER_BY_ONE, logger, flushIntervalMs: 20, fleet: { record, graceMs: GRACE_MS, rescueWaitMs: RESCUE_WAIT_MS },
      onEvicted: (_reason, objects) => evicted.push(objects), now: () => clock.t,
    });
    const digests = await storeThree(storage, clock, (digest) => lifecycle.use.stored(digest, 100));
    clock.t += 3_600_000; // all out of their grace: only the record's filling holds eviction back

    const started = Date.now();
    lifecycle.start({ inUse: () => false, reserveForDelete: () => () => undefined, fleetSynced: () => undefined });
    for (let i = 0; i < 250 && evicted.length === 0; i++) await sleep(20);
    // Filled after the start, so judged no earlier than one grace period after it (Redis runs on this machine's clock).
    expect(Date.now() - started).toBeGreaterThanOrEqual(GRACE_MS);
    expect(evicted).toEqual([1]);
    expect(await storage.stat(blobKey(digests[0]!))).toBeUndefined();
    expect(await storage.stat(blobKey(digests[1]!))).toBeDefined();
    await lifecycle.close();
  });
});
