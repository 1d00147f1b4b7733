// Leases, the fleet single flight and shared tag records against a real redis-server.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../test/scale-out/redis.js';
import { MetadataStore, type TagRecord } from '../metadata/records.js';
import type { Digest } from '../oci/digest.js';
import { FilesystemDriver } from '../storage/filesystem.js';
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

  it('shows one replica\'s revalidation to the others at once, and falls back to storage', async () => {
    const storage = new FilesystemDriver(await mkdtemp(join(tmpdir(), 'regmirror-tags-')));
    await storage.init();
    const shared = new RedisTagRecords(redis, `t${prefixes++}:tag:`);
    const a = new MetadataStore(storage, shared);
    const b = new MetadataStore(storage, shared);
    await a.putTag('ghcr.io', 'org/app', 'v1', record('sha256:11', 1));
    expect(await b.getTag('ghcr.io', 'org/app', 'v1')).toEqual(record('sha256:11', 1)); // now in b's memory too
    await a.putTag('ghcr.io', 'org/app', 'v1', record('sha256:11', 2));
    expect((await b.getTag('ghcr.io', 'org/app', 'v1'))?.checkedAt).toBe(2);

    // Redis lost its data: storage answers, and Redis is filled again.
    await redis.flushall();
    expect((await b.getTag('ghcr.io', 'org/app', 'v1'))?.checkedAt).toBe(2);
    expect((await shared.get('repositories/ghcr.io/org/app/_tags/v1'))?.checkedAt).toBe(2);
  });
});
