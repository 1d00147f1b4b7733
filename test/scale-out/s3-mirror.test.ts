// regmirror on S3 storage (Swift), without Redis: blobs stream into the bucket while clients get
// them, become visible only verified, and any mirror on the same bucket serves them.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobKey } from '../../src/storage/keys.js';
import type { Digest } from '../../src/oci/digest.js';
import { ACCEPT_ALL, send, sha256 } from '../harness/http.js';
import {
  isBlobGet, seedImage, startFaultyStore, startFaultyUpstream, startRegistry, tempDir,
  type FaultyStore, type FaultyUpstream, type Registry, type SeededImage, type StoreFault,
} from '../support/index.js';
import { waitFor } from '../lifecycle/support.js';
import { createTestBucket, startFleetMirror, verifyBucket, type TestBucket } from './fleet.js';
import { startSwift, type SwiftServer } from './swift.js';

let swift: SwiftServer;
let registry: Registry;
let upstream: FaultyUpstream;
let store: FaultyStore;
let image: SeededImage;
const buckets: TestBucket[] = [];
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  [swift, registry] = await Promise.all([startSwift(), startRegistry()]);
  // One layer larger than an upload part (8 MiB), so the multipart path is taken.
  image = await seedImage(registry, { repo: 'team/app', tag: 'v1', layerSizes: [12_000_000, 300_000], compressible: false, compression: 'none' });
  upstream = await startFaultyUpstream(registry.url);
  store = await startFaultyStore(swift.endpoint);
});

afterAll(async () => {
  for (const close of closers) await close();
  for (const bucket of buckets) bucket.close();
  await upstream?.stop();
  await store?.stop();
  await registry?.stop();
  await swift?.stop();
});

async function bucketAndMirrors(count: number, storage: { redirect?: boolean } = {}): Promise<{ bucket: TestBucket; urls: string[] }> {
  const bucket = await createTestBucket(swift);
  buckets.push(bucket);
  const urls: string[] = [];
  for (let i = 0; i < count; i++) {
    const m = await startFleetMirror({ storage: { ...bucket.storage, ...storage }, upstreams: { 'quay.io': { url: upstream.url } } });
    closers.push(m.close);
    urls.push(m.url);
  }
  return { bucket, urls };
}

const largest = (img: SeededImage): SeededImage['blobs'][number] => img.blobs.reduce((a, b) => (b.size > a.size ? b : a));
const blobGets = (digest: string): number => upstream.count((r) => isBlobGet(r) && r.path.includes(digest));

describe('regmirror on S3 storage', () => {
  it('commits a pulled image to the bucket; a second mirror on the bucket serves it without upstream', async () => {
    const { bucket, urls: [a, b] } = await bucketAndMirrors(2);
    upstream.reset();
    const manifest = await send(`${a}/v2/team/app/manifests/v1?ns=quay.io`, { headers: { accept: ACCEPT_ALL } });
    expect(sha256(manifest.body)).toBe(image.manifestDigest);
    for (const blob of image.blobs) {
      const got = await send(`${a}/v2/team/app/blobs/${blob.digest}?ns=quay.io`);
      expect([got.status, sha256(got.body)]).toEqual([200, blob.digest]);
    }
    // The commit follows the last byte to the client closely; wait for it.
    for (const blob of image.blobs) await waitFor(`${blob.digest} in the bucket`, async () => (await bucket.driver.stat(blobKey(blob.digest as Digest)))?.size === blob.size);

    const before = upstream.requests.length;
    const again = await send(`${b}/v2/team/app/manifests/v1?ns=quay.io`, { headers: { accept: ACCEPT_ALL } });
    expect(sha256(again.body)).toBe(image.manifestDigest);
    for (const blob of image.blobs) {
      const got = await send(`${b}/v2/team/app/blobs/${blob.digest}?ns=quay.io`);
      expect([got.status, got.headers.get('x-regmirror-cache'), sha256(got.body)]).toEqual([200, 'hit', blob.digest]);
    }
    expect(upstream.requests.slice(before).filter(isBlobGet)).toEqual([]);
    const ranged = await send(`${b}/v2/team/app/blobs/${largest(image).digest}?ns=quay.io`, { headers: { range: 'bytes=9000000-9000099' } });
    expect([ranged.status, ranged.body.length, ranged.headers.get('content-range')]).toEqual([206, 100, `bytes 9000000-9000099/${largest(image).size}`]);
    expect(await verifyBucket(bucket.driver)).toEqual({ checked: image.blobs.length + 1, corrupt: [] }); // + the manifest
    expect(await bucket.openUploads()).toBe(0);
  });

  it('stores nothing when upstream sends corrupt or truncated bytes, and aborts the multipart upload', async () => {
    const { bucket, urls: [a] } = await bucketAndMirrors(1);
    const layer = largest(image);
    for (const fault of ['corrupt', 'truncate'] as const) {
      upstream.setFault(fault, 1);
      const res = await fetch(`${a}/v2/team/app/blobs/${layer.digest}?ns=quay.io`);
      await expect(res.arrayBuffer()).rejects.toThrow();
      await waitFor('no multipart upload left open', async () => (await bucket.openUploads()) === 0);
      expect(await bucket.driver.stat(blobKey(layer.digest as Digest))).toBeUndefined();
    }
    upstream.setFault(null);
    const good = await send(`${a}/v2/team/app/blobs/${layer.digest}?ns=quay.io`);
    expect(sha256(good.body)).toBe(layer.digest);
    expect(blobGets(layer.digest)).toBeGreaterThanOrEqual(3);
    await waitFor('the layer in the bucket', async () => (await bucket.driver.stat(blobKey(layer.digest as Digest))) !== undefined);
    expect(await verifyBucket(bucket.driver)).toEqual({ checked: 1, corrupt: [] });
  });

  it('redirects GETs of stored blobs to a presigned URL with storage.redirect, and streams cold ones', async () => {
    const { urls: [a] } = await bucketAndMirrors(1, { redirect: true });
    const layer = largest(image);
    const cold = await fetch(`${a}/v2/team/app/blobs/${layer.digest}?ns=quay.io`, { redirect: 'manual' });
    expect([cold.status, cold.headers.get('x-regmirror-cache'), sha256(Buffer.from(await cold.arrayBuffer()))]).toEqual([200, 'miss', layer.digest]);
    await waitFor('a hit for the layer', async () => (await fetch(`${a}/v2/team/app/blobs/${layer.digest}?ns=quay.io`, { method: 'HEAD' })).headers.get('x-regmirror-cache') === 'hit');
    let warm: Response | undefined;
    await waitFor('a redirect', async () => {
      warm = await fetch(`${a}/v2/team/app/blobs/${layer.digest}?ns=quay.io`, { redirect: 'manual' });
      await warm.body?.cancel();
      return warm.status === 307;
    });
    const location = warm!.headers.get('location')!;
    expect(location.startsWith(`${swift.endpoint}/`)).toBe(true);
    const direct = await send(location, { headers: { range: 'bytes=0-99' } });
    expect([direct.status, direct.body.equals((await send(`${a}/v2/team/app/blobs/${layer.digest}?ns=quay.io`)).body.subarray(0, 100))]).toEqual([206, true]);
    const followed = await send(`${a}/v2/team/app/blobs/${layer.digest}?ns=quay.io`);
    expect([followed.status, sha256(followed.body)]).toEqual([200, layer.digest]);
    const otherRepo = await fetch(`${a}/v2/team/other/blobs/${layer.digest}?ns=quay.io`, { redirect: 'manual' });
    await otherRepo.body?.cancel();
    expect(otherRepo.status).not.toBe(307); // never handed to a repository that does not hold it
  });

  it('keeps a blob it redirected to while the presigned URL is valid, though eviction takes everything else', async () => {
    const bucket = await createTestBucket(swift);
    buckets.push(bucket);
    const m = await startFleetMirror({ storage: { ...bucket.storage, redirect: true, maxSize: 1_000 }, upstreams: { 'quay.io': { url: upstream.url } } });
    closers.push(m.close);
    const layer = largest(image);
    const small = image.blobs.find((b) => b.digest !== layer.digest)!;
    const inBucket = async (digest: string): Promise<boolean> => (await bucket.driver.stat(blobKey(digest as Digest))) !== undefined;
    const small1 = await send(`${m.url}/v2/team/app/blobs/${small.digest}?ns=quay.io`);
    expect(sha256(small1.body)).toBe(small.digest);
    // Nothing fits in 1 kB: every blob nobody uses is evicted within a pass (a second). Ask for the
    // layer until it is redirected: a miss stores it (until its upload completes, requests are
    // served from the spool; on a busy machine that takes a while), and a pass may take it before
    // the next request.
    let location = null as string | null;
    await waitFor('a redirect to the layer', async () => {
      const res = await fetch(`${m.url}/v2/team/app/blobs/${layer.digest}?ns=quay.io`, { redirect: 'manual' });
      await res.arrayBuffer();
      location = res.status === 307 ? res.headers.get('location') : null;
      return location !== null;
    });
    await waitFor('the small blob evicted', async () => !(await inBucket(small.digest))); // eviction runs
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // two more passes
    expect(await inBucket(layer.digest)).toBe(true);
    const direct = await send(location!);
    expect([direct.status, sha256(direct.body)]).toEqual([200, layer.digest]);
  });
});

describe('regmirror on S3 storage when the bucket fails during a cold blob\'s upload', () => {
  const smallest = (img: SeededImage): SeededImage['blobs'][number] => img.blobs.reduce((a, b) => (b.size < a.size ? b : a));

  it.each([
    ['UploadPart', 'error', largest],
    ['UploadPart', 'cut', largest],
    ['PutObject', 'error', smallest],
    ['PutObject', 'cut', smallest],
    ['CompleteMultipartUpload', 'error', largest],
    ['CompleteMultipartUpload', 'cut', largest],
  ] as const)('%s failing (%s): the client gets the blob, nothing is stored, and once healed it is fetched again and stored', async (operation, how, pick) => {
    const bucket = await createTestBucket(swift);
    buckets.push(bucket);
    const folder = tempDir('s3-fault');
    const m = await startFleetMirror({ storage: { ...bucket.storage, endpoint: store.url, path: folder }, upstreams: { 'quay.io': { url: upstream.url } } });
    closers.push(m.close);
    const blob = pick(image);
    const prefix = bucket.storage.prefix!;
    const url = `${m.url}/v2/team/app/blobs/${blob.digest}?ns=quay.io`;
    const fault: StoreFault = { operation, how, pathContains: `${prefix}blobs/` };
    store.setFault(fault);
    const faultedBefore = store.faulted;
    upstream.reset();

    const first = await send(url);
    expect([first.status, first.headers.get('x-regmirror-cache'), first.body.length, sha256(first.body)]).toEqual([200, 'miss', blob.size, blob.digest]);
    // The spool file goes once the commit has ended, stored or not.
    await waitFor('the spool folder empty', async () => (await readdir(join(folder, '_spool'))).length === 0);
    expect(store.faulted).toBeGreaterThan(faultedBefore);
    expect(store.countOf('AbortMultipartUpload', prefix)).toBe(operation === 'PutObject' ? 0 : 1);
    const keys: string[] = [];
    for await (const key of bucket.driver.list('')) keys.push(key);
    expect(keys).toEqual([]); // neither the blob nor its repository's link
    expect(await bucket.openUploads()).toBe(0);
    expect(await swift.swiftObjects('regmirror-test+segments', prefix)).toEqual([]); // no part left behind either

    store.setFault(null);
    const second = await send(url);
    expect([second.status, second.headers.get('x-regmirror-cache'), sha256(second.body)]).toEqual([200, 'miss', blob.digest]);
    expect(blobGets(blob.digest)).toBe(2); // nothing was cached: fetched from upstream again
    await waitFor('the blob in the bucket', async () => (await bucket.driver.stat(blobKey(blob.digest as Digest)))?.size === blob.size);
    expect(await verifyBucket(bucket.driver)).toEqual({ checked: 1, corrupt: [] });
    expect(await bucket.openUploads()).toBe(0);
    const third = await send(url);
    expect([third.status, third.headers.get('x-regmirror-cache'), sha256(third.body), blobGets(blob.digest)]).toEqual([200, 'hit', blob.digest, 2]);
  });
});
