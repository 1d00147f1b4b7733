// Blob caching against a real registry: single flight, verification, faults, ranges, retries.
import { readdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isBlobGet, seedImage, startFaultyUpstream, startRegistry, type FaultyUpstream, type Registry, type SeededImage } from '../support/index.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { closeServer, listen } from '../support/http.js';
import { errorCodes, send, sha256 } from '../harness/http.js';

let registry: Registry;
let upstream: FaultyUpstream;
let mirror: TestMirror;
let image: SeededImage;
const big = (): { digest: string; size: number } => image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
const blobUrl = (digest: string, repo = 'team/big'): string => `${mirror.url}/v2/${repo}/blobs/${digest}?ns=quay.io`;

/** Every blob file in the store (keys under blobs/). */
async function storedBlobs(): Promise<string[]> {
  const root = join(mirror.dataDir, 'blobs', 'sha256');
  const found: string[] = [];
  for (const prefix of await readdir(root).catch(() => [])) {
    for (const name of await readdir(join(root, prefix))) found.push(`sha256:${name}`);
  }
  return found;
}

/**
 * Waits until a blob is committed and linked: a client gets its last byte a moment before the
 * commit, and until the commit ends, requests still join the download ("coalesced").
 */
async function waitForStored(digest: string): Promise<void> {
  let outcome: string | null = null;
  for (let i = 0; i < 200 && outcome !== 'hit'; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 20));
    const res = await fetch(blobUrl(digest), { method: 'HEAD' });
    outcome = res.headers.get('x-regmirror-cache');
  }
  expect(outcome).toBe('hit');
  expect(await storedBlobs()).toContain(digest);
}

/** Reads a response body until the server ends or cuts it; returns what arrived and how it ended. */
async function readUntilCut(url: string, init: RequestInit = {}): Promise<{ status: number; bytes: number; complete: boolean }> {
  const res = await fetch(url, init);
  let bytes = 0;
  try {
    for await (const chunk of res.body!) bytes += (chunk as Uint8Array).length;
    return { status: res.status, bytes, complete: true };
  } catch {
    return { status: res.status, bytes, complete: false };
  }
}

beforeAll(async () => {
  registry = await startRegistry();
  image = await seedImage(registry, { repo: 'team/big', tag: 'v1', layerSizes: [24_000_000, 3_000_000], compressible: false, compression: 'none' });
  await seedImage(registry, { repo: 'team/other', tag: 'v1', layerSizes: [10_000] });
  upstream = await startFaultyUpstream(registry.url);
});

beforeEach(async () => {
  await mirror?.close();
  upstream.setFault(null);
  upstream.reset();
  mirror = await startTestMirror({ upstreams: { 'quay.io': { url: upstream.url, retries: 2 } } });
});

afterAll(async () => {
  await mirror?.close();
  await upstream?.stop();
  await registry?.stop();
});

describe('blob cache', () => {
  it('N concurrent pulls of one large uncached blob cause exactly one upstream download', async () => {
    const { digest, size } = big();
    const results = await Promise.all(Array.from({ length: 8 }, () => send(blobUrl(digest))));
    for (const res of results) {
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(size);
      expect(sha256(res.body)).toBe(digest);
    }
    expect(results.map((r) => r.headers.get('x-regmirror-cache')).sort()).toEqual(['coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'coalesced', 'miss']);
    expect(upstream.count(isBlobGet)).toBe(1);
    expect(upstream.bytesFor(isBlobGet)).toBe(size);
    await waitForStored(digest);
    const again = await send(blobUrl(digest));
    expect(again.headers.get('x-regmirror-cache')).toBe('hit');
    expect(upstream.count(isBlobGet)).toBe(1);
    expect(await storedBlobs()).toContain(digest);
  });

  it('aborts the transfer and stores nothing when upstream sends wrong bytes', async () => {
    const { digest, size } = big();
    upstream.setFault('corrupt');
    const cut = await readUntilCut(blobUrl(digest));
    expect(cut.status).toBe(200);
    expect(cut.complete).toBe(false);
    expect(cut.bytes).toBeLessThan(size);
    expect(await storedBlobs()).not.toContain(digest);
    upstream.setFault(null);
    const ok = await send(blobUrl(digest));
    expect(sha256(ok.body)).toBe(digest);
  });

  it('completes no range of a cold blob before the whole blob verified', async () => {
    const { digest } = big();
    const whole = (await send(`${registry.url}/v2/team/big/blobs/${digest}`)).body;
    upstream.setFault('corrupt'); // the middle byte: the first 1,000 bytes are right, the blob is not
    const cut = await readUntilCut(blobUrl(digest), { headers: { range: 'bytes=0-999' } });
    expect(cut.status).toBe(206);
    expect(cut.complete).toBe(false);
    expect(cut.bytes).toBeLessThan(1000);
    upstream.setFault(null);
    const ok = await send(blobUrl(digest), { headers: { range: 'bytes=0-999' } });
    expect(ok.status).toBe(206);
    expect(ok.body.equals(whole.subarray(0, 1000))).toBe(true);
  });

  it('aborts the transfer when upstream closes mid-blob, then recovers', async () => {
    const { digest } = big();
    upstream.setFault('truncate');
    const cut = await readUntilCut(blobUrl(digest));
    expect(cut.complete).toBe(false);
    expect(await storedBlobs()).not.toContain(digest);
    upstream.setFault(null);
    expect(sha256((await send(blobUrl(digest))).body)).toBe(digest);
    await waitForStored(digest);
    expect(await readdir(join(mirror.dataDir, '_spool'))).toEqual([]);
  });

  it('retries 5xx before answering, and passes a long Retry-After 429 on', async () => {
    const small = image.blobs.find((b) => b.size < 100_000)!;
    upstream.setFault({ status: 503 }, 1);
    const retried = await send(blobUrl(small.digest));
    expect(retried.status).toBe(200);
    expect(upstream.count(isBlobGet)).toBe(2);
    upstream.setFault({ status: 429, retryAfter: 3600 });
    const limited = await send(blobUrl(big().digest));
    expect(limited.status).toBe(429);
    expect(errorCodes(limited.body)).toEqual(['TOOMANYREQUESTS']);
    expect(limited.headers.get('retry-after')).toBe('3600');
  });

  it('serves single ranges on cold and warm blobs, and 416 outside the blob', async () => {
    const { digest, size } = big();
    const whole = (await send(`${registry.url}/v2/team/big/blobs/${digest}`)).body;
    const cold = await send(blobUrl(digest), { headers: { range: `bytes=${size - 1000}-` } });
    expect(cold.status).toBe(206);
    expect(cold.headers.get('content-range')).toBe(`bytes ${size - 1000}-${size - 1}/${size}`);
    expect(cold.body.equals(whole.subarray(size - 1000))).toBe(true);
    await waitForStored(digest);
    const warm = await send(blobUrl(digest), { headers: { range: 'bytes=100-199' } });
    expect(warm.status).toBe(206);
    expect(warm.headers.get('x-regmirror-cache')).toBe('hit');
    expect(warm.body.equals(whole.subarray(100, 200))).toBe(true);
    const suffix = await send(blobUrl(digest), { headers: { range: 'bytes=-10' } });
    expect(suffix.body.equals(whole.subarray(size - 10))).toBe(true);
    // Across several send buffers (512 KiB, or 2 MiB while few responses run), from an odd offset.
    const across = await send(blobUrl(digest), { headers: { range: 'bytes=777-5000776' } });
    expect(across.body.equals(whole.subarray(777, 5_000_777))).toBe(true);
    const outside = await send(blobUrl(digest), { headers: { range: `bytes=${size}-` } });
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe(`bytes */${size}`);
    expect(upstream.count(isBlobGet)).toBe(1);
  });

  it('answers HEAD without downloading, and a blob of another repository only after upstream confirms', async () => {
    const { digest, size } = big();
    const head = await send(blobUrl(digest), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(size);
    expect(upstream.count(isBlobGet)).toBe(0);
    await send(blobUrl(digest));
    const foreign = await send(blobUrl(digest, 'team/other'));
    expect(foreign.status).toBe(404);
    expect(errorCodes(foreign.body)).toEqual(['BLOB_UNKNOWN']);
  });

  it('finishes and caches a download when its only client leaves', async () => {
    const { digest } = big();
    const controller = new AbortController();
    const res = await fetch(blobUrl(digest), { signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await waitForStored(digest);
    const hit = await send(blobUrl(digest));
    expect([hit.headers.get('x-regmirror-cache'), sha256(hit.body)]).toEqual(['hit', digest]);
    expect(upstream.count(isBlobGet)).toBe(1);
  });
});

describe('an empty body', () => {
  it('completes only once it verified: an upstream that sends no bytes for a blob that has some gets no 200', async () => {
    // Fault injection: an upstream announcing an empty body for any blob.
    const empty = createServer((_req, res) => res.writeHead(200, { 'content-length': '0', 'content-type': 'application/octet-stream' }).end());
    const url = await listen(empty);
    const m = await startTestMirror({ upstreams: { 'quay.io': { url } } });
    try {
      const res = await send(`${m.url}/v2/team/big/blobs/${big().digest}?ns=quay.io`);
      expect([res.status, errorCodes(res.body)]).toEqual([502, ['UPSTREAM_UNAVAILABLE']]);
    } finally {
      await m.close();
      await closeServer(empty);
    }
  });
});
