// Two-phase eviction on a fleet (Swift bucket, Redis): content the evictor forgot stays parked in
// the bucket for RESCUE_WAIT_MS; another replica's use of it meanwhile (a redirect signed) rescues
// it — kept, counted once, served and redirected to afterwards — while what nobody used is deleted
// once the wait is over; and what an evictor killed while it waited left is counted again by the next.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESCUE_WAIT_MS } from '../../src/lifecycle/fleet.js';
import type { Digest } from '../../src/oci/digest.js';
import { blobKey } from '../../src/storage/keys.js';
import { sha256 } from '../harness/http.js';
import type { MirrorProcess } from '../harness/process-mirror.js';
import { pullImage, waitFor } from '../lifecycle/support.js';
import { metric } from '../support/http.js';
import { exited, seedImage, startRegistry, type Registry, type SeededImage } from '../support/index.js';
import { bucketBytes, createTestBucket, spawnReplica, startFleetMirror, type FleetMirrorOptions, type TestBucket } from './fleet.js';
import { startRedis, type RedisServer } from './redis.js';
import { startSwift, type SwiftServer } from './swift.js';

const NAMES = ['kept', 'gone', 'left'] as const;
const images = {} as Record<(typeof NAMES)[number], SeededImage>;

let swift: SwiftServer;
let redisServer: RedisServer;
let registry: Registry;
/** A client of the test's own, to look at the fleet record and age content in it. */
let redis: Redis;
/** What the tests opened, closed after them. */
const opened = { buckets: [] as TestBucket[], mirrors: [] as (() => Promise<void>)[], processes: [] as MirrorProcess[] };

beforeAll(async () => {
  [swift, redisServer, registry] = await Promise.all([startSwift(), startRedis(), startRegistry()]);
  redis = new Redis(redisServer.url);
  for (const name of NAMES) images[name] = await seedImage(registry, { repo: `team/${name}`, tag: 'v1', layerSizes: [200_000], compressible: false, compression: 'none' });
});

afterAll(async () => {
  for (const replica of opened.processes) replica.child.kill('SIGKILL');
  for (const close of opened.mirrors) await close();
  for (const bucket of opened.buckets) bucket.close();
  redis?.disconnect();
  await Promise.all([registry?.stop(), redisServer?.stop(), swift?.stop()]);
});

/**
 * Options of replicas on a bucket of their own that are always over `maxSize`, whose fleet record
 * (under `prefix`) is complete and long settled, so the evictor evicts at once whatever is out of
 * the grace: the tests age content by hand in the record, and nothing else goes.
 */
async function fleetOn(prefix: string, storage: { redirect?: boolean } = {}): Promise<FleetMirrorOptions & { bucket: TestBucket }> {
  const bucket = await createTestBucket(swift);
  opened.buckets.push(bucket);
  await redis.set(`${prefix}fleet:complete`, 'filled-by-the-test 0');
  return {
    bucket,
    storage: { ...bucket.storage, maxSize: 1_000, ...storage },
    upstreams: { 'quay.io': { url: registry.url } },
    redis: { url: redisServer.url, keyPrefix: prefix, lockLease: '1s', evictionGrace: '30s' },
  };
}

const layerOf = (image: SeededImage): Digest => image.blobs.reduce((a, b) => (b.size > a.size ? b : a)).digest as Digest;
const blobUrl = (url: string, image: SeededImage): string => `${url}/v2/${image.repo}/blobs/${layerOf(image)}?ns=quay.io`;

/** When `digest` was parked (Redis ms), once it is. */
async function parkedAt(prefix: string, digest: string): Promise<number> {
  for (;;) {
    const value = await redis.hget(`${prefix}fleet:parked`, digest);
    if (value) return Number(value.split(' ')[1]);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Waits until every replica's sync has put `digests` in the record, then makes them look unused for an hour. */
async function age(prefix: string, digests: string[]): Promise<void> {
  await waitFor('accesses in the record', async () => (await redis.zmscore(`${prefix}fleet:access`, ...digests)).every((s) => s !== null));
  for (const [i, digest] of digests.entries()) await redis.zadd(`${prefix}fleet:access`, 'XX', Date.now() - 3_600_000 + i, digest);
}

/** A GET of the image's layer: the bytes, through the presigned URL when the replica redirects. */
async function getLayer(url: string, image: SeededImage): Promise<{ status: number; digest: string }> {
  const res = await fetch(blobUrl(url, image), { redirect: 'manual' });
  const location = res.headers.get('location');
  const body = location ? Buffer.from(await (await fetch(location)).arrayBuffer()) : Buffer.from(await res.arrayBuffer());
  return { status: res.status, digest: sha256(body) };
}

/** Objects and bytes in the bucket, and the fleet's totals as `url` reports them. */
async function totals(bucket: TestBucket, url: string): Promise<{ bucket: number[]; fleet: number[] }> {
  let objects = 0;
  for await (const key of bucket.driver.list('blobs/')) if (key) objects++;
  return { bucket: [objects, await bucketBytes(bucket.driver)], fleet: [await metric(url, 'regmirror_cache_objects'), await metric(url, 'regmirror_cache_size_bytes')] };
}

describe('two-phase eviction on a fleet', () => {
  it('keeps a blob another replica redirected to after it was parked, counted once, and deletes the one nobody used after the wait', async () => {
    const prefix = 'rescue:';
    const { bucket, ...options } = await fleetOn(prefix, { redirect: true });
    const a = await startFleetMirror(options);
    opened.mirrors.push(a.close);
    await waitFor('a elected', async () => (await metric(a.url, 'regmirror_fleet_evictor')) === 1);
    const b = await startFleetMirror(options);
    opened.mirrors.push(b.close);
    await pullImage(a.url, images.kept); // cold: streamed, so a holds no URL to them
    await pullImage(a.url, images.gone);
    const [kept, gone] = [layerOf(images.kept), layerOf(images.gone)];

    await age(prefix, [kept, gone]);
    const [keptParkedAt, goneParkedAt] = [await parkedAt(prefix, kept), await parkedAt(prefix, gone)];
    // Right away: b signs a URL, as in the second before the removal (or streams it, had a sync of
    // b's told it of the removal meanwhile); either way its access rescues the layer.
    const served = await getLayer(b.url, images.kept);
    expect([200, 307]).toContain(served.status);
    expect(served.digest).toBe(kept);

    await waitFor('the unused layer deleted', async () => !(await bucket.driver.stat(blobKey(gone))));
    expect(Date.now() - goneParkedAt).toBeGreaterThanOrEqual(RESCUE_WAIT_MS);
    await new Promise((resolve) => setTimeout(resolve, keptParkedAt + RESCUE_WAIT_MS + 500 - Date.now()));
    expect(await bucket.driver.stat(blobKey(kept))).toEqual({ size: images.kept.blobs.find((x) => x.digest === kept)!.size });
    expect([await redis.hexists(`${prefix}fleet:parked`, kept), await redis.hexists(`${prefix}fleet:claimed`, kept)]).toEqual([0, 0]);
    expect(Number(await redis.zscore(`${prefix}fleet:access`, kept))).toBeGreaterThan(Date.now() - 60_000); // b's access
    await waitFor('the fleet counts the bucket, each object once', async () => {
      const { bucket: inBucket, fleet } = await totals(bucket, b.url);
      return JSON.stringify(inBucket) === JSON.stringify(fleet);
    }, 5_000);
    expect([await metric(a.url, 'regmirror_evictions_total'), await metric(b.url, 'regmirror_evictions_total')]).toEqual([1, 0]);

    // Both replicas redirect to it again (b looked in storage once its sync said it was kept), and the URL works.
    expect(await getLayer(b.url, images.kept)).toEqual({ status: 307, digest: kept });
    expect(await getLayer(a.url, images.kept)).toEqual({ status: 307, digest: kept });
    expect(await getLayer(b.url, images.gone)).toEqual({ status: 200, digest: gone }); // streamed: fetched again
  });

  it('counts again what an evictor killed while it waited had parked, once another replica takes over', async () => {
    const prefix = 'killed:';
    const { bucket, ...options } = await fleetOn(prefix);
    const a = await spawnReplica(options);
    opened.processes.push(a);
    await waitFor('a elected', async () => (await metric(a.url, 'regmirror_fleet_evictor')) === 1);
    const b = await spawnReplica(options);
    opened.processes.push(b);
    await pullImage(b.url, images.left);
    const left = layerOf(images.left);

    await age(prefix, [left]);
    await parkedAt(prefix, left);
    a.child.kill('SIGKILL'); // between its removal and the delete
    await exited(a.child);
    expect(await redis.hexists(`${prefix}fleet:parked`, left)).toBe(1);

    await waitFor('b elected', async () => (await metric(b.url, 'regmirror_fleet_evictor')) === 1, 10_000);
    await waitFor('counted again', async () => (await redis.zscore(`${prefix}fleet:access`, left)) !== null, 10_000);
    expect(await redis.hlen(`${prefix}fleet:parked`)).toBe(0);
    await waitFor('the fleet counts the bucket', async () => {
      const { bucket: inBucket, fleet } = await totals(bucket, b.url);
      return JSON.stringify(inBucket) === JSON.stringify(fleet);
    }, 5_000);
    expect(await metric(b.url, 'regmirror_evictions_total')).toBe(0);
    expect(await getLayer(b.url, images.left)).toEqual({ status: 200, digest: left });
  });
});
