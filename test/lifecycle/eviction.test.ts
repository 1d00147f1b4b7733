// Size limit and LRU eviction against a real upstream registry: the cache stays under its limit,
// the least recently used image goes first, and everything still pulls correctly afterwards.
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBlobGet, seedImage, startCountingRelay, startRegistry, type Registry, type Relay, type SeededImage } from '../support/index.js';
import { sha256 } from '../harness/http.js';
import { AccessIndex } from '../../src/lifecycle/access-index.js';
import { indexFile } from '../../src/lifecycle/lifecycle.js';
import { listCache } from '../../src/lifecycle/listing.js';
import type { ReloadOutcome } from '../../src/main.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { metric } from '../support/http.js';
import { isCached, pullImage, startLimitedMirror, UPSTREAM, waitFor, type LimitedMirror } from './support.js';

let registry: Registry;
let relay: Relay;
const images: Record<'a' | 'b' | 'c' | 'd' | 'big', SeededImage> = {} as never;
const LAYER = 1_000_000;

/** What `regmirror ls` says of each repository's tag v1. */
async function cachedState(dataDir: string): Promise<Record<string, string>> {
  const index = AccessIndex.open(indexFile(dataDir), { repair: false });
  try {
    const listings = await listCache(new FilesystemDriver(dataDir), index);
    return Object.fromEntries(listings.map((l) => [l.repository, l.cached]));
  } finally {
    index.close();
  }
}

const layerOf = (image: SeededImage): string => image.blobs.reduce((x, y) => (y.size > x.size ? y : x)).digest;
const blobGetsOf = (digest: string): number => relay.count((r) => isBlobGet(r) && r.path.includes(digest));

beforeAll(async () => {
  registry = await startRegistry();
  for (const name of ['a', 'b', 'c', 'd'] as const) {
    images[name] = await seedImage(registry, { repo: `team/${name}`, tag: 'v1', layerSizes: [LAYER], compressible: false, compression: 'none' });
  }
  images.big = await seedImage(registry, { repo: 'team/big', tag: 'v1', layerSizes: [24_000_000], compressible: false, compression: 'none' });
  relay = await startCountingRelay(registry.url);
});

afterAll(async () => {
  await relay?.stop();
  await registry?.stop();
});

describe('size limit', () => {
  let mirror: LimitedMirror;
  const maxSize = 2_500_000; // two of the 1 MB images fit, three do not

  beforeAll(async () => {
    mirror = await startLimitedMirror(relay.url, { maxSize, lowWater: '90%' });
  });
  afterAll(async () => mirror?.close());

  const size = (): Promise<number> => metric(mirror.url, 'regmirror_cache_size_bytes');
  const cached = (image: SeededImage): Promise<boolean> => isCached(mirror.dataDir, layerOf(image));

  it('keeps the cache under its limit, evicting the least recently used image first', async () => {
    await pullImage(mirror.url, images.a);
    await pullImage(mirror.url, images.b);
    await sleep(5);
    await pullImage(mirror.url, images.a); // a was stored first, but b is now the least recently used
    await waitFor('a and b indexed', async () => (await size()) > 2 * LAYER);
    await pullImage(mirror.url, images.c);

    await waitFor('eviction', async () => (await metric(mirror.url, 'regmirror_evictions_total')) > 0);
    expect(await size()).toBeLessThanOrEqual(maxSize * 0.9);
    expect([await cached(images.a), await cached(images.b), await cached(images.c)]).toEqual([true, false, true]);
    for (const blob of images.b.blobs) expect(await isCached(mirror.dataDir, blob.digest)).toBe(false);
    expect(await isCached(mirror.dataDir, images.b.manifestDigest)).toBe(false);
    expect(await cachedState(mirror.dataDir)).toEqual({ 'team/a': 'complete', 'team/b': 'evicted', 'team/c': 'complete' });
    expect(await metric(mirror.url, 'regmirror_evicted_bytes_total')).toBeGreaterThanOrEqual(LAYER);
    expect(await metric(mirror.url, 'regmirror_cache_limit_bytes')).toBe(maxSize);

    // Every image still pulls correctly: b is fetched again from upstream, a is not.
    relay.reset();
    for (const name of ['a', 'b', 'c'] as const) await pullImage(mirror.url, images[name]);
    expect(blobGetsOf(layerOf(images.b))).toBe(1);
    expect(blobGetsOf(layerOf(images.a))).toBe(0);
  });

  it('serves a manifest whose layers were evicted, and fetches the layers again', async () => {
    const fresh = await startLimitedMirror(relay.url, { maxSize, lowWater: '90%' });
    const pullCommitted = async (image: SeededImage): Promise<void> => {
      await pullImage(fresh.url, image);
      await waitFor('the layer stored', () => isCached(fresh.dataDir, layerOf(image)));
      await sleep(5);
    };
    try {
      await pullCommitted(images.a);
      await pullCommitted(images.c);
      // Touch only a's manifest: a's config and layer are now the least recently used content.
      const manifest = await fetch(`${fresh.url}/v2/${images.a.repo}/manifests/v1?ns=${UPSTREAM}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect([manifest.status, manifest.headers.get('x-regmirror-cache')]).toEqual([200, 'hit']);
      await manifest.arrayBuffer();
      await sleep(5);
      await pullImage(fresh.url, images.d);
      await waitFor('eviction', async () => (await metric(fresh.url, 'regmirror_evictions_total')) > 0);
      expect(await isCached(fresh.dataDir, images.a.manifestDigest)).toBe(true);
      expect([await isCached(fresh.dataDir, layerOf(images.a)), await isCached(fresh.dataDir, layerOf(images.c))]).toEqual([false, true]);
      expect(await cachedState(fresh.dataDir)).toEqual({ 'team/a': 'partial', 'team/c': 'complete', 'team/d': 'complete' });

      relay.reset();
      await pullImage(fresh.url, images.a);
      expect(blobGetsOf(layerOf(images.a))).toBe(1);
      expect(relay.count((r) => r.path.includes('/manifests/'))).toBe(0);
    } finally {
      await fresh.close();
    }
  });
});

/** The settings a reload applied, sorted; its error if it applied nothing. */
const settingsChanged = (outcome: ReloadOutcome): string[] | string => (outcome.applied ? [...outcome.changes.settings].sort() : outcome.error);

describe('a reload', () => {
  it('sets, lowers and lifts the size limit of a running mirror: eviction follows from the next check', async () => {
    const mirror = await startLimitedMirror(relay.url);
    const size = (): Promise<number> => metric(mirror.url, 'regmirror_cache_size_bytes');
    try {
      for (const name of ['a', 'b', 'c'] as const) {
        await pullImage(mirror.url, images[name]);
        await sleep(5);
      }
      await waitFor('a, b and c indexed', async () => (await size()) > 3 * LAYER);
      expect(await metric(mirror.url, 'regmirror_cache_limit_bytes')).toBe(0);

      expect(settingsChanged(mirror.reload({ maxSize: 2_500_000, lowWater: '80%' }))).toEqual(['storage.lowWater', 'storage.maxSize']);
      await waitFor('eviction to the new limit', async () => (await size()) <= 2_500_000 * 0.8);
      expect([await isCached(mirror.dataDir, layerOf(images.a)), await isCached(mirror.dataDir, layerOf(images.c))]).toEqual([false, true]);
      expect(await metric(mirror.url, 'regmirror_cache_limit_bytes')).toBe(2_500_000);

      expect(settingsChanged(mirror.reload({}))).toEqual(['storage.lowWater', 'storage.maxSize']);
      const evictions = await metric(mirror.url, 'regmirror_evictions_total');
      await pullImage(mirror.url, images.a);
      await pullImage(mirror.url, images.d);
      await waitFor('all four indexed', async () => (await size()) > 3 * LAYER);
      await sleep(1_500); // more than a check's interval: no limit, no eviction
      expect(await metric(mirror.url, 'regmirror_evictions_total')).toBe(evictions);
      expect(await metric(mirror.url, 'regmirror_cache_limit_bytes')).toBe(0);
    } finally {
      await mirror.close();
    }
  });
});

describe('eviction and transfers', () => {
  it('never deletes a blob while it is streamed to a client', async () => {
    const mirror = await startLimitedMirror(relay.url, { maxSize: 1_000 }); // nothing fits: every pass evicts all it may
    try {
      await pullImage(mirror.url, images.big);
      const layer = layerOf(images.big);
      await waitFor('the idle layer evicted', async () => !(await isCached(mirror.dataDir, layer)));
      await pullImage(mirror.url, images.big); // cached again (a miss)...
      await waitFor('the layer stored', () => isCached(mirror.dataDir, layer));

      // ...and now read by a client that stops reading: the blob stays while the stream is open.
      // An eviction pass may take the idle layer between the wait above and this request: that
      // request is a miss (which stores it again), so ask until the answer comes from the cache.
      let res: import('node:http').IncomingMessage | undefined;
      for (let attempt = 0; attempt < 5 && res?.headers['x-regmirror-cache'] !== 'hit'; attempt++) {
        res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
          get(`${mirror.url}/v2/${images.big.repo}/blobs/${layer}?ns=${UPSTREAM}`, resolve).once('error', reject);
        });
        if (res.headers['x-regmirror-cache'] !== 'hit') await new Promise((resolve) => res!.resume().once('end', resolve));
      }
      if (!res) throw new Error('no response');
      expect(res.headers['x-regmirror-cache']).toBe('hit');
      res.pause();
      const evictions = await metric(mirror.url, 'regmirror_evictions_total');
      await waitFor('an eviction pass', async () => (await metric(mirror.url, 'regmirror_evictions_total')) > evictions).catch(() => undefined);
      await sleep(1_500);
      expect(await isCached(mirror.dataDir, layer)).toBe(true);

      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.resume();
      await new Promise((resolve) => res.once('end', resolve));
      expect(sha256(Buffer.concat(chunks))).toBe(layer);
      await waitFor('evicted once the stream closed', async () => !(await isCached(mirror.dataDir, layer)));
    } finally {
      await mirror.close();
    }
  });

  it('never breaks a transfer while eviction runs during concurrent pulls', async () => {
    const mirror = await startLimitedMirror(relay.url, { maxSize: 1_500_000, lowWater: '50%' });
    try {
      const all = [images.a, images.b, images.c, images.d];
      for (let round = 0; round < 4; round++) {
        await Promise.all([...all, ...all].map((image) => pullImage(mirror.url, image)));
        await sleep(600);
      }
      expect(await metric(mirror.url, 'regmirror_evictions_total')).toBeGreaterThan(0);
      await waitFor('back under the limit', async () => (await metric(mirror.url, 'regmirror_cache_size_bytes')) <= 1_500_000);
    } finally {
      await mirror.close();
    }
  });
});
