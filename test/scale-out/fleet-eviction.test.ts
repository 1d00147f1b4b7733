// Two `regmirror serve` processes on one bucket (Swift) and one Redis, with a small storage.maxSize:
// one elected replica evicts by the fleet's last access (not its own), never content used within
// redis.evictionGrace; another takes over when it dies; with Redis stopped, serving goes on and
// eviction pauses, and it resumes once Redis is back (empty: the record is filled from the bucket).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobKey } from '../../src/storage/keys.js';
import type { Digest } from '../../src/oci/digest.js';
import { ACCEPT_ALL, send, sha256 } from '../harness/http.js';
import type { MirrorProcess } from '../harness/process-mirror.js';
import { waitFor } from '../lifecycle/support.js';
import { metric } from '../support/http.js';
import { exited, seedImage, startRegistry, type Registry, type SeededImage } from '../support/index.js';
import { bucketBytes, createTestBucket, spawnReplica, type FleetMirrorOptions, type TestBucket } from './fleet.js';
import { startRedis, type RedisServer } from './redis.js';
import { startSwift, type SwiftServer } from './swift.js';

const LAYER = 1_000_000;
const MAX_SIZE = 2_500_000; // two of the 1 MB images fit, three do not
const TARGET = MAX_SIZE * 0.9;
const GRACE_MS = 2_000;
const NAMES = ['hot', 'idle', 'fresh', 'g1', 'g2', 'g3', 'k1', 'k2', 'r1', 'r2'] as const;

let swift: SwiftServer;
let redis: RedisServer;
let registry: Registry;
let bucket: TestBucket;
let options: FleetMirrorOptions;
const images = {} as Record<(typeof NAMES)[number], SeededImage>;
let a: MirrorProcess;
let b: MirrorProcess;
let c: MirrorProcess | undefined;

beforeAll(async () => {
  [swift, redis, registry] = await Promise.all([startSwift(), startRedis(), startRegistry()]);
  await Promise.all(NAMES.map(async (name) => {
    images[name] = await seedImage(registry, { repo: `team/${name}`, tag: 'v1', layerSizes: [LAYER], compressible: false, compression: 'none' });
  }));
  bucket = await createTestBucket(swift);
  options = {
    storage: { ...bucket.storage, maxSize: MAX_SIZE, lowWater: '90%' },
    upstreams: { 'quay.io': { url: registry.url } },
    defaultUpstream: 'quay.io',
    redis: { url: redis.url, lockLease: '1s', evictionGrace: `${GRACE_MS}ms` },
  };
  // A first, alone: it takes the evictor lease (and fills the empty record) before B exists.
  a = await spawnReplica(options);
  await waitFor('a elected', async () => (await metric(a.url, 'regmirror_fleet_evictor')) === 1);
  b = await spawnReplica(options);
});

afterAll(async () => {
  for (const replica of [a, b, c]) replica?.child.kill('SIGKILL');
  bucket?.close();
  await Promise.all([registry?.stop(), redis?.stop(), swift?.stop()]);
});

/** Manifest by tag, then every blob; checks every digest. */
async function pull(replica: MirrorProcess, image: SeededImage): Promise<void> {
  const manifest = await send(`${replica.url}/v2/${image.repo}/manifests/v1`, { headers: { accept: ACCEPT_ALL } });
  expect([manifest.status, sha256(manifest.body)]).toEqual([200, image.manifestDigest]);
  for (const blob of image.blobs) {
    const got = await send(`${replica.url}/v2/${image.repo}/blobs/${blob.digest}`);
    expect([got.status, sha256(got.body)]).toEqual([200, blob.digest]);
  }
}

const digestsOf = (image: SeededImage): string[] => [image.manifestDigest, ...image.blobs.map((x) => x.digest)];
const inBucket = async (digest: string): Promise<boolean> => (await bucket.driver.stat(blobKey(digest as Digest))) !== undefined;
const cached = async (image: SeededImage): Promise<boolean[]> => Promise.all(digestsOf(image).map(inBucket));
const evictions = (replica: MirrorProcess): Promise<number> => metric(replica.url, 'regmirror_evictions_total');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const logs = (): string => [a, b, c].map((r, i) => `replica ${i}:\n${r?.output() ?? ''}`).join('\n');

describe('eviction by the fleet\'s use', () => {
  it('evicts on one replica by fleet-wide last access: the image only the other replica\'s clients pull stays', async () => {
    await pull(a, images.hot); // in a's own view, hot is the oldest...
    await pull(a, images.idle);
    await sleep(GRACE_MS + 200);
    await pull(b, images.hot); // ...but b's clients keep pulling it
    await sleep(GRACE_MS + 200);
    await pull(b, images.fresh); // stored through b: only the fleet record tells a the bucket is over

    await waitFor('eviction', async () => (await evictions(a)) > 0);
    await waitFor('fleet size under the target on both', async () => (await metric(a.url, 'regmirror_cache_size_bytes')) <= TARGET && (await metric(b.url, 'regmirror_cache_size_bytes')) <= TARGET);
    expect(await cached(images.idle)).toEqual([false, false, false]);
    expect(await cached(images.hot)).toEqual([true, true, true]);
    expect(await cached(images.fresh)).toEqual([true, true, true]);
    // One replica evicted, each object once: a's count is exactly what left the bucket.
    expect([await evictions(a), await evictions(b)], logs()).toEqual([3, 0]);
    expect([await metric(a.url, 'regmirror_fleet_evictor'), await metric(b.url, 'regmirror_fleet_evictor')]).toEqual([1, 0]);
    expect(await metric(b.url, 'regmirror_cache_size_bytes')).toBe(await bucketBytes(bucket.driver));
  });

  it('never evicts content accessed within the grace period, even over the limit', async () => {
    await sleep(GRACE_MS + 200); // everything so far is out of its grace
    const before = await evictions(a);
    const names = ['g1', 'g2', 'g3'] as const;
    const pullStarted = {} as Record<(typeof names)[number], number>;
    for (const name of names) {
      pullStarted[name] = Date.now(); // its accesses are recorded at this time or later
      await pull(b, images[name]);
    }
    // hot and fresh go at once; the g images, over the limit, each only once out of its grace: seen
    // here as when its manifest leaves the bucket (seen late, never early: the check is sound however slow the machine).
    const goneAt: Partial<Record<(typeof names)[number], number>> = {};
    const watchG = async (): Promise<void> => {
      for (const name of names) if (goneAt[name] === undefined && !(await inBucket(images[name].manifestDigest))) goneAt[name] = Date.now();
    };
    await waitFor('older content evicted', async () => (await watchG(), (await evictions(a)) >= before + 6));
    await waitFor('size under the target', async () => (await watchG(), (await metric(a.url, 'regmirror_cache_size_bytes')) <= TARGET));
    // The totals drop as content is parked; its objects leave the bucket once the rescue wait is over.
    await waitFor('g1 evicted once out of its grace', async () => (await watchG(), goneAt.g1 !== undefined), 10_000);
    for (const name of names) if (goneAt[name] !== undefined) expect(goneAt[name]! - pullStarted[name]).toBeGreaterThanOrEqual(GRACE_MS);
    expect(await cached(images.g3)).toEqual([true, true, true]); // the most recent stays
    expect(await evictions(b)).toBe(0);
  });

  it('lets another replica take the eviction over when the evictor is killed mid-eviction', async () => {
    const first = images.g2.blobs.at(-1)!.digest;
    await pull(b, images.k1);
    await pull(b, images.k2); // g2 and g3 are out of their grace: a evicts them at once
    // Deleted once the rescue wait is over: a few seconds after a chose them.
    for (const until = Date.now() + 15_000; Date.now() < until && (await inBucket(first)); ) await sleep(5);
    a.child.kill('SIGKILL'); // as soon as its first delete lands
    await exited(a.child);
    c = await spawnReplica(options); // a replacement on an empty disk

    // Whichever asks first once a's lease ran out takes over: b, or c if b's tick comes late.
    const evictor = (replica: MirrorProcess): Promise<number> => metric(replica.url, 'regmirror_fleet_evictor');
    let next: MirrorProcess | undefined;
    await waitFor('b or c elected', async () => {
      next = (await evictor(b)) === 1 ? b : (await evictor(c!)) === 1 ? c : undefined;
      return next !== undefined;
    }, 10_000); // a lease of 1 s and ticks of 1 s, on a machine busy with the rest of the suite
    const other = next === b ? c : b;
    expect(await evictor(other)).toBe(0);
    for (const name of ['r1', 'r2'] as const) await pull(c, images[name]);
    await sleep(GRACE_MS);
    await waitFor('the new evictor evicts', async () => (await evictions(next!)) > 0);
    await waitFor('size under the target', async () => (await metric(next!.url, 'regmirror_cache_size_bytes')) <= TARGET);
    // Nothing counted twice, nothing left uncounted by the interrupted pass.
    await waitFor('fleet size = bucket', async () => (await metric(other.url, 'regmirror_cache_size_bytes')) === (await bucketBytes(bucket.driver)), 5_000);
    expect(await evictions(other)).toBe(0);
  });

  it('keeps serving with Redis stopped, pausing eviction, and resumes when Redis is back empty', async () => {
    const replica = c!;
    await redis.stop();
    const before = [await evictions(b), await evictions(replica)];
    for (const name of ['g1', 'hot', 'fresh'] as const) await pull(replica, images[name]); // misses and hits
    await pull(b, images.g1);
    await sleep(GRACE_MS + 1_500);
    expect(await bucketBytes(bucket.driver)).toBeGreaterThan(MAX_SIZE);
    expect([await evictions(b), await evictions(replica)]).toEqual(before); // no decision on a partial view
    expect(await metric(b.url, 'regmirror_fleet_sync_failures_total')).toBeGreaterThan(0);

    await redis.start();
    await waitFor('eviction resumed', async () => (await evictions(b)) + (await evictions(replica)) > before[0]! + before[1]!, 15_000);
    await waitFor('size under the target', async () => (await bucketBytes(bucket.driver)) <= TARGET, 15_000);
    await waitFor('fleet size = bucket', async () => (await metric(replica.url, 'regmirror_cache_size_bytes')) === (await bucketBytes(bucket.driver)), 5_000);
  });
});
