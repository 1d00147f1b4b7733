// `regmirror gc` on a replica of a fleet (Swift bucket, Redis): it judges storage.maxSize by the
// fleet-wide access record, not by its replica's index, and applies it only when no replica is the
// fleet's evictor. Two in-process replicas pull; gc runs as the real command on one's folder.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/oci/digest.js';
import { blobKey, blobLinkKey } from '../../src/storage/keys.js';
import { pullImage, regmirror, waitFor } from '../lifecycle/support.js';
import { metric } from '../support/http.js';
import { seedImage, startRegistry, tempDir, type Registry, type SeededImage } from '../support/index.js';
import { bucketBytes, createTestBucket, startFleetMirror, type FleetMirrorOptions, type TestBucket } from './fleet.js';
import { startRedis, type RedisServer } from './redis.js';
import { startSwift, type SwiftServer } from './swift.js';

const LAYER = 1_000_000;
const GC_MAX_SIZE = 2_500_000; // two of the three 1 MB images fit
const GRACE_MS = 1_000;
const NAMES = ['one', 'two', 'three'] as const;

let swift: SwiftServer;
let redis: RedisServer;
let registry: Registry;
let bucket: TestBucket;
const images = {} as Record<(typeof NAMES)[number], SeededImage>;
type Replica = Awaited<ReturnType<typeof startFleetMirror>>;
const replicas: Replica[] = [];

beforeAll(async () => {
  [swift, redis, registry] = await Promise.all([startSwift(), startRedis(), startRegistry()]);
  for (const name of NAMES) images[name] = await seedImage(registry, { repo: `team/${name}`, tag: 'v1', layerSizes: [LAYER], compressible: false, compression: 'none' });
  bucket = await createTestBucket(swift);
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.close()));
  bucket?.close();
  await Promise.all([registry?.stop(), redis?.stop(), swift?.stop()]);
});

const digestsOf = (image: SeededImage): string[] => [image.manifestDigest, ...image.blobs.map((x) => x.digest)];
const inBucket = async (digest: string): Promise<boolean> => (await bucket.driver.stat(blobKey(digest as Digest))) !== undefined;
const cached = async (image: SeededImage): Promise<boolean[]> => Promise.all(digestsOf(image).map(inBucket));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const fleetBytes = (replica: Replica): Promise<number> => metric(replica.url, 'regmirror_cache_size_bytes');

/** Makes an image's layer an orphan, as a crash between its commit and its link would; returns its digest. */
async function orphanLayer(image: SeededImage): Promise<Digest> {
  const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a)).digest as Digest; // the config is far smaller
  await bucket.driver.delete(blobLinkKey('quay.io', image.repo, layer));
  return layer;
}

/** A configuration file for `regmirror gc` on the test bucket. */
async function gcConfig(storage: Record<string, unknown>, redisSettings: Record<string, unknown>): Promise<string> {
  const config = join(tempDir('gc-config'), 'regmirror.json');
  await writeFile(config, JSON.stringify({ version: 1, storage, upstreams: { 'quay.io': { url: registry.url } }, redis: redisSettings }));
  return config;
}

describe('regmirror gc on a fleet', () => {
  it('leaves the limits to a live evictor, and applies them by the fleet\'s use once no replica evicts', async () => {
    const redisSettings = { url: redis.url, lockLease: '1s', evictionGrace: `${GRACE_MS}ms` };
    const upstreams = { 'quay.io': { url: registry.url } };
    // The replicas' own limit is far away; they keep the fleet record (the evictor fills it).
    const replica = (path?: string): FleetMirrorOptions => ({ storage: { ...bucket.storage, ...(path ? { path } : {}), maxSize: 1_000_000_000 }, upstreams, defaultUpstream: 'quay.io', redis: redisSettings });
    const folder = tempDir('gc-replica');
    const r = await startFleetMirror(replica(folder));
    replicas.push(r);
    await waitFor('r elected', async () => (await metric(r.url, 'regmirror_fleet_evictor')) === 1);
    const s = await startFleetMirror(replica());
    replicas.push(s);

    await pullImage(r.url, images.one); // in r's own index, one is older than two...
    await pullImage(r.url, images.two);
    await sleep(GRACE_MS + 200);
    await pullImage(s.url, images.one); // ...but s's clients pulled it since
    await pullImage(s.url, images.three);
    await sleep(GRACE_MS + 1_200); // out of the grace, and the last notes synced (every second)

    const config = await gcConfig({ ...bucket.storage, path: folder, maxSize: GC_MAX_SIZE, lowWater: '90%' }, redisSettings);

    const left = await regmirror(['gc', '--config', config]);
    expect(left.code, left.stderr).toBe(0);
    expect(left.stdout).toContain('size and age limits not applied here: another replica is the fleet\'s evictor and applies them');
    for (const name of NAMES) expect(await cached(images[name])).toEqual([true, true, true]);

    const dry = await regmirror(['gc', '--config', config, '--dry-run']);
    expect(dry.stdout.match(/would remove over-limit .*/g)?.map((line) => line.split(/\s+/).at(-1)).sort()).toEqual(digestsOf(images.two).sort());

    await r.close(); // the fleet stops: nobody holds the evictor lease
    await s.close();
    const gc = await regmirror(['gc', '--config', config]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).not.toContain('not applied');
    expect(gc.stdout.match(/removed over-limit/g), gc.stdout).toHaveLength(3);
    expect(await cached(images.two)).toEqual([false, false, false]); // the fleet's least recently used
    expect(await cached(images.one)).toEqual([true, true, true]);
    expect(await cached(images.three)).toEqual([true, true, true]);
  });

  it('takes the orphans it removes out of the fleet\'s totals, as eviction does', async () => {
    const redisSettings = { url: redis.url, lockLease: '1s', evictionGrace: `${GRACE_MS}ms` };
    const folder = tempDir('gc-orphans');
    // A limit of its own makes it the evictor, which fills the record should this test run alone.
    const r = await startFleetMirror({ storage: { ...bucket.storage, path: folder, maxSize: 1_000_000_000 }, upstreams: { 'quay.io': { url: registry.url } }, defaultUpstream: 'quay.io', redis: redisSettings });
    replicas.push(r);
    const image = await seedImage(registry, { repo: 'team/orphaned', tag: 'v1', layerSizes: [LAYER], compressible: false, compression: 'none' });
    await pullImage(r.url, image);
    const layer = await orphanLayer(image);
    await waitFor('the fleet record counts the bucket', async () => (await fleetBytes(r)) === (await bucketBytes(bucket.driver)));
    await sleep(GRACE_MS + 200);

    const gc = await regmirror(['gc', '--config', await gcConfig({ ...bucket.storage, path: folder }, redisSettings), '--grace', `${GRACE_MS}ms`]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(new RegExp(`removed orphan .* ${layer}`));
    expect(await inBucket(layer)).toBe(false);
    await waitFor('the fleet record counts the bucket without the orphan', async () => (await fleetBytes(r)) === (await bucketBytes(bucket.driver)), 5_000);
  });

  it('says so and keeps everything when Redis is unreachable, orphans too (removed then, they would stay counted)', async () => {
    await orphanLayer(images.three);
    const config = await gcConfig({ ...bucket.storage, path: tempDir('gc-replica'), maxSize: 1_000, lowWater: '90%' }, { url: 'redis://127.0.0.1:1' });
    const gc = await regmirror(['gc', '--config', config, '--grace', '0s']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/orphans not removed here: the fleet access record is unreachable \(redis: .+\)/);
    expect(gc.stdout).toMatch(/size and age limits not applied here: the fleet access record is unreachable \(redis: .+\)/);
    for (const name of ['one', 'three'] as const) expect(await cached(images[name])).toEqual([true, true, true]);
  });
});
