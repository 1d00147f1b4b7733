// Three `regmirror serve` processes on one bucket (Swift) and one Redis: content and tag records are
// shared, each blob comes from upstream once for the whole fleet, and a replica that dies holding a
// download lock is taken over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorProcess } from '../harness/process-mirror.js';
import { ACCEPT_ALL, send, sha256 } from '../harness/http.js';
import {
  exited,
  isBlobGet,
  isManifestRequest,
  seedImage,
  skopeoCopyToDir,
  startFaultyUpstream,
  startRegistry,
  tempDir,
  type FaultyUpstream,
  type Registry,
  type SeededImage,
} from '../support/index.js';
import { createTestBucket, spawnReplica, verifyBucket, type FleetMirrorOptions, type TestBucket } from './fleet.js';
import { startRedis, type RedisServer } from './redis.js';
import { startSwift, type SwiftServer } from './swift.js';

let swift: SwiftServer;
let redis: RedisServer;
let registry: Registry;
let upstream: FaultyUpstream;
let bucket: TestBucket;
let options: FleetMirrorOptions;
const images: Record<string, SeededImage> = {};
let replicas: MirrorProcess[] = [];

const TAG_TTL_MS = 3_000;

beforeAll(async () => {
  [swift, redis, registry] = await Promise.all([startSwift(), startRedis(), startRegistry()]);
  const seed = (repo: string, layerSizes: number[]): Promise<SeededImage> =>
    seedImage(registry, { repo, tag: 'v1', layerSizes, compressible: false, compression: 'none' });
  [images.shared, images.cold, images.big, images.alone, images.back] = await Promise.all([
    seed('team/shared', [3_000_000, 200_000]),
    seed('team/cold', [2_000_000, 1_000_000, 500_000, 100_000]),
    seed('team/big', [20_000_000]),
    seed('team/alone', [1_500_000, 300_000]),
    seed('team/back', [1_500_000, 300_000]),
  ]);
  upstream = await startFaultyUpstream(registry.url);
  bucket = await createTestBucket(swift);
  options = {
    storage: bucket.storage,
    upstreams: { 'quay.io': { url: upstream.url } },
    defaultUpstream: 'quay.io',
    redis: { url: redis.url, lockLease: '2s', waitLimit: '30s' },
    cache: { tagTTL: `${TAG_TTL_MS}ms` },
  };
  replicas = await Promise.all([0, 1, 2].map(() => spawnReplica(options)));
});

afterAll(async () => {
  for (const replica of replicas) replica.child.kill('SIGKILL');
  bucket?.close();
  await upstream?.stop();
  await Promise.all([registry?.stop(), redis?.stop(), swift?.stop()]);
});

const blobGetsOf = (digest: string): number => upstream.count((r) => isBlobGet(r) && r.path.includes(digest));
const logs = (): string => replicas.map((r, i) => `replica ${i}:\n${r.output()}`).join('\n');
const hostOf = (replica: MirrorProcess): string => replica.url.replace('http://', '');

/** Manifest by tag, then every blob, concurrently; checks every digest. */
async function pull(url: string, image: SeededImage): Promise<void> {
  const manifest = await send(`${url}/v2/${image.repo}/manifests/v1`, { headers: { accept: ACCEPT_ALL } });
  expect(sha256(manifest.body)).toBe(image.manifestDigest);
  await Promise.all(image.blobs.map(async (blob) => {
    const got = await send(`${url}/v2/${image.repo}/blobs/${blob.digest}`);
    expect([got.status, sha256(got.body)]).toEqual([200, blob.digest]);
  }));
}

describe('replicas on one bucket and one Redis', () => {
  it('serves an image pulled through one replica from any other, without asking upstream; tag revalidation is shared', async () => {
    const [a, b, c] = replicas as [MirrorProcess, MirrorProcess, MirrorProcess];
    const image = images.shared!;
    const first = await skopeoCopyToDir(`${hostOf(a)}/${image.repo}:v1`, tempDir('pull-a'));
    expect(first.manifestDigest).toBe(image.manifestDigest);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the commit follows the last byte
    const before = upstream.requests.length;
    const second = await skopeoCopyToDir(`${hostOf(b)}/${image.repo}:v1`, tempDir('pull-b'));
    expect(second.blobs.map((x) => x.digest).sort()).toEqual(first.blobs.map((x) => x.digest).sort());
    expect(upstream.requests.slice(before)).toEqual([]); // neither blobs nor the tag

    await new Promise((resolve) => setTimeout(resolve, TAG_TTL_MS + 100));
    const beforeRevalidation = upstream.requests.length;
    await pull(a.url, image);
    expect(upstream.requests.slice(beforeRevalidation).map((r) => `${r.method} ${r.path}`)).toEqual([`HEAD /v2/${image.repo}/manifests/v1`]);
    await pull(b.url, image);
    await pull(c.url, image);
    expect(upstream.requests.length).toBe(beforeRevalidation + 1);
  });

  it('fetches each blob from upstream once for 16 concurrent cold pulls spread across the replicas', async () => {
    const image = images.cold!;
    await Promise.all(Array.from({ length: 16 }, (_, i) => pull(replicas[i % replicas.length]!.url, image)));
    for (const blob of image.blobs) expect([blob.digest, blobGetsOf(blob.digest)], logs()).toEqual([blob.digest, 1]);
    expect(upstream.count((r) => isManifestRequest(r) && r.path.includes('team/cold'))).toBeLessThanOrEqual(replicas.length * 2);
  });

  it('lets every client complete when the replica holding the download lock is killed mid-transfer', async () => {
    const [a, b, c] = replicas as [MirrorProcess, MirrorProcess, MirrorProcess];
    const layer = images.big!.blobs.reduce((x, y) => (y.size > x.size ? y : x));
    const path = `/v2/${images.big!.repo}/blobs/${layer.digest}`;
    upstream.setFault('stall', 1); // the first download stops halfway and hangs
    const onA = fetch(`${a.url}${path}`).then((res) => res.arrayBuffer()).then(() => 'completed', () => 'cut');
    for (let i = 0; i < 200 && blobGetsOf(layer.digest) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(blobGetsOf(layer.digest)).toBe(1); // a holds the lock
    const waiting = [b, c, b, c].map((r) => send(`${r.url}${path}`));
    await new Promise((resolve) => setTimeout(resolve, 500));
    a.child.kill('SIGKILL');
    await exited(a.child);

    for (const got of await Promise.all(waiting)) expect([got.status, sha256(got.body)]).toEqual([200, layer.digest]);
    expect(await onA).toBe('cut'); // its client retries elsewhere, as containerd would
    const retried = await send(`${b.url}${path}`);
    expect([retried.status, retried.headers.get('x-regmirror-cache'), sha256(retried.body)]).toEqual([200, 'hit', layer.digest]);
    expect(blobGetsOf(layer.digest)).toBe(2); // the stalled download and one takeover
    await pull(c.url, images.big!);
  });

  it('serves from the bucket at once after a restart with an empty local disk', async () => {
    const restarted = await spawnReplica(options); // a new local folder
    replicas[0] = restarted;
    const before = upstream.requests.length;
    for (const image of [images.shared!, images.cold!, images.big!]) await pull(restarted.url, image);
    expect(upstream.requests.slice(before).filter(isBlobGet)).toEqual([]);
    expect(await verifyBucket(bucket.driver)).toMatchObject({ corrupt: [] });
    // At most the killed replica's multipart upload is left open: invisible, aborted by age.
    expect(await bucket.openUploads()).toBeLessThanOrEqual(1);
  });

  it('keeps serving, uncoordinated and uncorrupted, while Redis is down, and coordinates again when it is back', async () => {
    await redis.stop();
    await Promise.all(Array.from({ length: 6 }, (_, i) => pull(replicas[i % replicas.length]!.url, images.alone!)));
    for (const blob of images.alone!.blobs) expect(blobGetsOf(blob.digest)).toBeGreaterThanOrEqual(1); // duplicates allowed
    expect(await verifyBucket(bucket.driver)).toMatchObject({ corrupt: [] });
    await redis.start(); // empty, as after a crash
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // reconnect back-off is at most 2 s
    await Promise.all(Array.from({ length: 6 }, (_, i) => pull(replicas[i % replicas.length]!.url, images.back!)));
    for (const blob of images.back!.blobs) expect([blob.digest, blobGetsOf(blob.digest)], logs()).toEqual([blob.digest, 1]);
  });

  it('reports not ready and fails requests quickly (never hangs) while the bucket is unreachable', async () => {
    await swift.stop();
    const replica = replicas[1]!;
    const ready = await send(`${replica.url}/readyz`);
    expect(ready.status).toBe(503);
    const started = Date.now();
    const blob = await send(`${replica.url}/v2/${images.shared!.repo}/blobs/${images.shared!.blobs[0]!.digest}`);
    expect(blob.status).toBeGreaterThanOrEqual(500);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
