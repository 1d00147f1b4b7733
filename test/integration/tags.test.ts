// Tags and manifests against a real registry: TTL, HEAD revalidation, stale serving, restarts.
import { mkdtempSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isBlobGet, seedImage, skopeoCopyToDir, startCountingRelay, startRegistry, startRelay, type Registry, type Relay, type SeededImage } from '../support/index.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { ACCEPT_ALL, errorCodes, send, sha256 } from '../harness/http.js';

let registry: Registry;
let relay: Relay;
/** In front of the same registry: answers by `fault` — 503 for everything, or 429 for manifest GETs by digest (as Docker Hub's limit does). */
let faulty: Relay;
let fault: 'down' | 'get-by-digest-429' | null = null;
let image: SeededImage;

function misbehave(req: IncomingMessage, res: ServerResponse): boolean {
  const path = req.url ?? '';
  if (fault === 'down' && path !== '/v2/') {
    res.writeHead(503).end();
    return true;
  }
  if (fault === 'get-by-digest-429' && req.method === 'GET' && /\/manifests\/sha256:/.test(path)) {
    res.writeHead(429, { 'content-type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit"}]}');
    return true;
  }
  return false;
}
const mirrors: TestMirror[] = [];

async function mirrorWith(tagTTL: string, dataDir?: string): Promise<TestMirror> {
  const m = await startTestMirror({ upstreams: { 'docker.io': { url: relay.url, tagTTL } }, ...(dataDir ? { dataDir } : {}) });
  mirrors.push(m);
  return m;
}

const manifestUrl = (m: TestMirror, ref = '1.0'): string => `${m.url}/v2/library/nginx/manifests/${ref}?ns=docker.io`;
const manifestCalls = (): string[] => relay.requests.filter((r) => r.path.includes('/manifests/')).map((r) => `${r.method} ${r.path.split('/manifests/')[1]}`);

beforeAll(async () => {
  registry = await startRegistry({ delete: true });
  image = await seedImage(registry, { repo: 'library/nginx', tag: '1.0', layerSizes: [200_000] });
  relay = await startCountingRelay(registry.url);
  faulty = await startRelay(registry.url, { answer: misbehave });
});

afterAll(async () => {
  await Promise.all(mirrors.map((m) => m.close()));
  await relay?.stop();
  await faulty?.stop();
  await registry?.stop();
});

describe('tags and manifests', () => {
  it('asks upstream nothing within the TTL, then revalidates with HEAD (no GET while the digest holds)', async () => {
    const m = await mirrorWith('300ms');
    relay.reset();
    const first = await send(manifestUrl(m), { headers: { accept: ACCEPT_ALL } });
    expect([first.status, first.headers.get('x-regmirror-cache')]).toEqual([200, 'miss']);
    const second = await send(manifestUrl(m), { headers: { accept: ACCEPT_ALL } });
    expect(second.headers.get('x-regmirror-cache')).toBe('hit');
    expect(manifestCalls()).toEqual(['GET 1.0']);
    await new Promise((r) => setTimeout(r, 350));
    const third = await send(manifestUrl(m), { headers: { accept: ACCEPT_ALL } });
    expect(third.headers.get('x-regmirror-cache')).toBe('revalidated');
    expect(third.body.equals(first.body)).toBe(true);
    expect(manifestCalls()).toEqual(['GET 1.0', 'HEAD 1.0']);
  });

  it('answers a cold HEAD by tag with an upstream HEAD only (Docker Hub counts GETs, not HEADs)', async () => {
    const m = await mirrorWith('5m');
    relay.reset();
    const head = await send(manifestUrl(m), { method: 'HEAD', headers: { accept: ACCEPT_ALL } });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(image.manifestDigest);
    const byDigest = await send(manifestUrl(m, image.manifestDigest), { headers: { accept: ACCEPT_ALL } });
    expect(byDigest.status).toBe(200);
    expect(manifestCalls()).toEqual(['HEAD 1.0', `GET ${image.manifestDigest}`]);
  });

  it('follows a tag that moved upstream once its TTL is over', async () => {
    const m = await mirrorWith('200ms');
    const before = await send(manifestUrl(m, 'moving'), { headers: { accept: ACCEPT_ALL } });
    expect(before.status).toBe(404);
    const moved = await seedImage(registry, { repo: 'library/nginx', tag: 'moving', layerSizes: [1_000] });
    const first = await send(manifestUrl(m, 'moving'), { headers: { accept: ACCEPT_ALL } });
    expect(first.headers.get('docker-content-digest')).toBe(moved.manifestDigest);
    const next = await seedImage(registry, { repo: 'library/nginx', tag: 'moving', layerSizes: [2_000] });
    await new Promise((r) => setTimeout(r, 250));
    const after = await send(manifestUrl(m, 'moving'), { headers: { accept: ACCEPT_ALL } });
    expect([after.headers.get('docker-content-digest'), after.headers.get('x-regmirror-cache')]).toEqual([next.manifestDigest, 'miss']);
  });

  it('answers a HEAD for a tag that moved from upstream\'s HEAD, with no GET', async () => {
    const m = await mirrorWith('200ms');
    await seedImage(registry, { repo: 'library/nginx', tag: 'head-moves', layerSizes: [1_000] });
    expect((await send(manifestUrl(m, 'head-moves'), { headers: { accept: ACCEPT_ALL } })).status).toBe(200);
    const next = await seedImage(registry, { repo: 'library/nginx', tag: 'head-moves', layerSizes: [3_000] });
    await new Promise((r) => setTimeout(r, 250));
    relay.reset();
    const head = await send(manifestUrl(m, 'head-moves'), { method: 'HEAD', headers: { accept: ACCEPT_ALL } });
    expect([head.status, head.headers.get('docker-content-digest')]).toEqual([200, next.manifestDigest]);
    expect(manifestCalls()).toEqual(['HEAD head-moves']);
  });

  it('serves a moved tag stale when the GET of its new digest is refused (429), and marks every joined answer stale', async () => {
    const m = await startTestMirror({ upstreams: { 'docker.io': { url: faulty.url, tagTTL: '200ms', retries: 0 } } });
    mirrors.push(m);
    const old = await seedImage(registry, { repo: 'library/nginx', tag: 'limited', layerSizes: [1_000] });
    expect((await send(manifestUrl(m, 'limited'), { headers: { accept: ACCEPT_ALL } })).status).toBe(200);
    await seedImage(registry, { repo: 'library/nginx', tag: 'limited', layerSizes: [4_000] });
    await new Promise((r) => setTimeout(r, 250));
    fault = 'get-by-digest-429';
    try {
      const limited = await send(manifestUrl(m, 'limited'), { headers: { accept: ACCEPT_ALL } });
      expect([limited.status, limited.headers.get('x-regmirror-cache'), limited.headers.get('docker-content-digest')]).toEqual([200, 'stale', old.manifestDigest]);
      expect(limited.headers.get('warning')).toContain('110');
      fault = 'down';
      await new Promise((r) => setTimeout(r, 250));
      const all = await Promise.all(Array.from({ length: 8 }, () => send(manifestUrl(m, 'limited'), { headers: { accept: ACCEPT_ALL } })));
      for (const res of all) {
        expect([res.status, res.headers.get('x-regmirror-cache')]).toEqual([200, 'stale']);
        expect(res.headers.get('warning')).toContain('110');
      }
    } finally {
      fault = null;
    }
  });

  it('shares one upstream GET between requests that list the same Accept types in another order', async () => {
    const m = await mirrorWith('5m');
    await seedImage(registry, { repo: 'library/nginx', tag: 'order', layerSizes: [1_000] });
    relay.reset();
    const types = ACCEPT_ALL.split(', ');
    const answers = await Promise.all([types, [...types].reverse()].map((t) => send(manifestUrl(m, 'order'), { headers: { accept: t.join(', ') } })));
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(manifestCalls()).toEqual(['GET order']);
  });

  it('answers MANIFEST_UNKNOWN when the cached manifest is of a type the request does not accept', async () => {
    const m = await mirrorWith('5m');
    const cached = await send(manifestUrl(m, image.manifestDigest), { headers: { accept: ACCEPT_ALL } });
    expect(cached.status).toBe(200);
    const type = cached.headers.get('content-type')!;
    const other = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].find((t) => t !== type)!;
    const narrow = await send(manifestUrl(m, image.manifestDigest), { headers: { accept: other } });
    expect([narrow.status, errorCodes(narrow.body)]).toEqual([404, ['MANIFEST_UNKNOWN']]);
    const wide = await send(manifestUrl(m, image.manifestDigest), { headers: { accept: `${other}, ${type}` } });
    expect([wide.status, wide.headers.get('x-regmirror-cache')]).toEqual([200, 'hit']);
  });

  it('follows a tag within its TTL whose recorded digest is gone, both from the cache and upstream', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'regmirror-gone-'));
    const first = await mirrorWith('5m', dataDir);
    const old = await seedImage(registry, { repo: 'library/nginx', tag: 'pruned', layerSizes: [1_000] });
    expect((await send(manifestUrl(first, 'pruned'), { headers: { accept: ACCEPT_ALL } })).status).toBe(200);
    await first.close();
    const next = await seedImage(registry, { repo: 'library/nginx', tag: 'pruned', layerSizes: [5_000] });
    expect((await fetch(`${registry.url}/v2/library/nginx/manifests/${old.manifestDigest}`, { method: 'DELETE' })).status).toBe(202); // a cleanup job upstream
    const hex = old.manifestDigest.slice('sha256:'.length);
    await rm(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)); // evicted here
    const second = await mirrorWith('5m', dataDir);
    const res = await send(manifestUrl(second, 'pruned'), { headers: { accept: ACCEPT_ALL } });
    expect([res.status, res.headers.get('docker-content-digest')]).toEqual([200, next.manifestDigest]);
  });

  it('replaces a damaged stored manifest with the verified copy it fetches again', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'regmirror-damaged-'));
    const first = await mirrorWith('5m', dataDir);
    expect((await send(manifestUrl(first, image.manifestDigest), { headers: { accept: ACCEPT_ALL } })).status).toBe(200);
    await first.close();
    const hex = image.manifestDigest.slice('sha256:'.length);
    const file = join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
    await writeFile(file, ''); // as a power cut before the write reached the disk can leave it
    const second = await mirrorWith('5m', dataDir);
    const again = await send(manifestUrl(second, image.manifestDigest), { headers: { accept: ACCEPT_ALL } });
    expect([again.status, again.headers.get('x-regmirror-cache')]).toEqual([200, 'miss']);
    expect(sha256(await readFile(file))).toBe(image.manifestDigest);
  });

  it('serves cached tags and blobs, marked stale, while the upstream is down; restarts keep the cache', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'regmirror-restart-'));
    const m = await mirrorWith('1ms', dataDir);
    await skopeoCopyToDir(`${m.host}/docker.io/library/nginx:1.0`, mkdtempSync(join(tmpdir(), 'pull-')));
    await registry.stop();
    try {
      const stale = await send(manifestUrl(m), { headers: { accept: ACCEPT_ALL } });
      expect([stale.status, stale.headers.get('x-regmirror-cache')]).toEqual([200, 'stale']);
      expect(stale.headers.get('warning')).toContain('110');
      const copied = await skopeoCopyToDir(`${m.host}/docker.io/library/nginx:1.0`, mkdtempSync(join(tmpdir(), 'pull-')));
      expect(copied.manifestDigest).toBe(image.manifestDigest);
      const unknown = await send(manifestUrl(m, 'never-pulled'), { headers: { accept: ACCEPT_ALL } });
      expect([unknown.status, errorCodes(unknown.body)]).toEqual([502, ['UPSTREAM_UNAVAILABLE']]);

      await m.close();
      relay.reset();
      const restarted = await mirrorWith('1ms', dataDir);
      const again = await skopeoCopyToDir(`${restarted.host}/docker.io/library/nginx:1.0`, mkdtempSync(join(tmpdir(), 'pull-')));
      expect(again.blobs.map((b) => b.digest).sort()).toEqual(image.blobs.map((b) => b.digest).sort());
      expect(relay.count(isBlobGet)).toBe(0);
    } finally {
      await registry.start();
    }
  });

  it('answers MANIFEST_UNKNOWN when the tag does not exist upstream', async () => {
    const m = await mirrorWith('5m');
    const res = await send(manifestUrl(m, 'nope'), { headers: { accept: ACCEPT_ALL } });
    expect([res.status, errorCodes(res.body)]).toEqual([404, ['MANIFEST_UNKNOWN']]);
  });
});
