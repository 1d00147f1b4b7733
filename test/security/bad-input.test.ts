// Garbage from clients: each bad request gets the right OCI error and status (or a bounded
// timeout), the process stays up, and nothing outside the data folder is touched.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedImage, startRegistry, type Registry, type SeededImage } from '../support/index.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { errorCodes, send, sha256 } from '../harness/http.js';
import { openSocket, rawRequest } from '../harness/raw.js';

let registry: Registry;
let image: SeededImage;
let mirror: TestMirror;
let port: number;
const layer = (): { digest: string; size: number } => image.blobs.reduce((a, b) => (b.size > a.size ? b : a));

beforeAll(async () => {
  registry = await startRegistry();
  image = await seedImage(registry, { repo: 'team/app', tag: 'v1', layerSizes: [8_000_000], compressible: false, compression: 'none' });
  mirror = await startTestMirror({ upstreams: { 'quay.io': { url: registry.url } }, http: { headersTimeout: '1s' } });
  port = Number(mirror.host.split(':')[1]);
});

afterAll(async () => {
  await mirror?.close();
  await registry?.stop();
});

async function expectError(path: string, status: number, code: string, init: RequestInit = {}): Promise<void> {
  const res = await send(`${mirror.url}${path}`, init);
  expect([path, res.status, errorCodes(res.body)]).toEqual([path, status, [code]]);
}

describe('bad input', () => {
  it('answers malformed names with NAME_INVALID and never reaches outside the store', async () => {
    // Sent raw: fetch would normalise `..` and `.` away before they reach the server.
    const names = ['a/../../etc', 'a/%2e%2e/b', '%2e%2e', 'a//b', 'a/./b', 'A/B', 'a%00b', 'a%2fb', 'x'.repeat(256), '-a', 'a-', 'a/.b', 'a\0b'];
    for (const name of names) {
      const raw = await rawRequest('127.0.0.1', port, `GET /v2/${name}/manifests/v1?ns=quay.io HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect([name, raw.split('\r\n')[0]]).toEqual([name, 'HTTP/1.1 400 Bad Request']);
      if (!name.includes('\0')) expect(raw).toContain('"code":"NAME_INVALID"');
    }
    const known = ['_health', '_index', '_spool', '_staging', 'blobs', 'repositories'];
    expect((await readdir(mirror.dataDir)).filter((entry) => !known.includes(entry))).toEqual([]);
    expect(await readdir(join(mirror.dataDir, 'repositories')).catch(() => [])).toEqual([]);
  });

  it('answers bad digests, tags and unknown algorithms with the spec codes', async () => {
    await expectError('/v2/team/app/blobs/sha256:abc?ns=quay.io', 400, 'DIGEST_INVALID');
    await expectError(`/v2/team/app/blobs/sha256:${'A'.repeat(64)}?ns=quay.io`, 400, 'DIGEST_INVALID');
    await expectError(`/v2/team/app/blobs/md5:${'a'.repeat(32)}?ns=quay.io`, 400, 'DIGEST_INVALID');
    await expectError(`/v2/team/app/blobs/sha256:${'a'.repeat(64)}x?ns=quay.io`, 400, 'DIGEST_INVALID');
    await expectError(`/v2/team/app/manifests/${'t'.repeat(129)}?ns=quay.io`, 400, 'TAG_INVALID');
    await expectError('/v2/team/app/manifests/.hidden?ns=quay.io', 400, 'TAG_INVALID');
  });

  it('answers unknown registries, paths and methods', async () => {
    await expectError('/v2/team/app/manifests/v1?ns=169.254.169.254', 404, 'NAME_UNKNOWN');
    await expectError('/v2/team/app/manifests/v1?ns=localhost%3A22', 404, 'NAME_UNKNOWN');
    await expectError('/etc/passwd', 404, 'NAME_UNKNOWN');
    await expectError('/', 404, 'NAME_UNKNOWN');
    await expectError('/v2/team/app/manifests/v1?ns=quay.io', 405, 'UNSUPPORTED', { method: 'PATCH' });
    // Every kind of path refuses writes, none of them asking upstream.
    const digest = `sha256:${'a'.repeat(64)}`;
    for (const [path, method] of [['/v2/', 'POST'], [`/v2/team/app/blobs/${digest}?ns=quay.io`, 'DELETE'], ['/v2/team/app/tags/list?ns=quay.io', 'PUT'], [`/v2/team/app/referrers/${digest}?ns=quay.io`, 'POST']] as const) {
      const res = await send(`${mirror.url}${path}`, { method });
      expect([path, res.status, res.headers.get('allow'), errorCodes(res.body)]).toEqual([path, 405, 'GET, HEAD', ['UNSUPPORTED']]);
    }
  });

  it('answers the catalog 404 UNSUPPORTED for any method, with no Allow header; upload paths 405 allowing nothing; other paths 405 allowing GET, HEAD', async () => {
    const get = await send(`${mirror.url}/v2/_catalog`);
    expect([get.status, get.headers.get('allow'), JSON.parse(get.body.toString())]).toEqual([
      404,
      null,
      { errors: [{ code: 'UNSUPPORTED', message: "a mirror has no catalog: it does not know its upstreams' repository lists" }] },
    ]);
    const head = await send(`${mirror.url}/v2/_catalog`, { method: 'HEAD' });
    expect([head.status, head.headers.get('allow'), head.body.length]).toEqual([404, null, 0]);
    const post = await send(`${mirror.url}/v2/_catalog`, { method: 'POST' });
    expect([post.status, post.headers.get('allow')]).toEqual([404, null]);
    const patch = await send(`${mirror.url}/v2/team/app/manifests/v1?ns=quay.io`, { method: 'PATCH' });
    expect(patch.headers.get('allow')).toBe('GET, HEAD'); // a method refused: 405 says which are served
    // An upload path serves no method at all: an empty Allow says so (RFC 9110, 10.2.1).
    for (const method of ['GET', 'HEAD', 'POST', 'PATCH']) {
      const upload = await send(`${mirror.url}/v2/team/app/blobs/uploads/?ns=quay.io`, { method });
      expect([method, upload.status, upload.headers.get('allow')]).toEqual([method, 405, '']);
    }
  });

  it('answers bogus ranges with 416 or the whole blob', async () => {
    const { digest, size } = layer();
    const url = `${mirror.url}/v2/team/app/blobs/${digest}?ns=quay.io`;
    expect((await send(url, { headers: { range: 'bytes=abc' } })).status).toBe(416);
    expect((await send(url, { headers: { range: `bytes=${size}-${size + 10}` } })).status).toBe(416);
    expect((await send(url, { headers: { range: 'bytes=9-3' } })).status).toBe(416);
    const multi = await send(url, { headers: { range: 'bytes=0-1,5-6' } });
    expect([multi.status, multi.body.length]).toEqual([200, size]);
    const other = await send(url, { headers: { range: 'lines=1-2' } });
    expect([other.status, sha256(other.body)]).toEqual([200, digest]);
  });

  it('refuses huge headers and URLs without falling over', async () => {
    const huge = await fetch(`${mirror.url}/v2/`, { headers: { 'x-filler': 'a'.repeat(64 * 1024) } });
    expect(huge.status).toBe(431);
    const longUrl = await rawRequest('127.0.0.1', port, `GET /v2/${'a/'.repeat(40_000)}manifests/x HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(longUrl).toMatch(/^HTTP\/1\.1 (414|431|400)/);
    const garbage = await rawRequest('127.0.0.1', port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]));
    expect(garbage).toMatch(/^(HTTP\/1\.1 400|)$/m);
    expect((await send(`${mirror.url}/v2/`)).status).toBe(200);
  });

  it('cuts slow clients (slowloris) off after the header timeout', async () => {
    const socket = await openSocket('127.0.0.1', port);
    const closed = new Promise<number>((resolve) => {
      const started = Date.now();
      socket.on('close', () => resolve(Date.now() - started));
      socket.on('error', () => undefined);
    });
    socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 200);
    const elapsed = await closed;
    clearInterval(drip);
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(5_000);
  });

  it('stays up when clients disconnect mid-blob, cold and warm', async () => {
    const { digest } = layer();
    const url = `${mirror.url}/v2/team/app/blobs/${digest}?ns=quay.io`;
    for (let round = 0; round < 2; round++) {
      const aborts = Array.from({ length: 5 }, async () => {
        const controller = new AbortController();
        const res = await fetch(url, { signal: controller.signal });
        const reader = res.body!.getReader();
        await reader.read();
        controller.abort();
      });
      await Promise.all(aborts);
      await sleep(100);
    }
    const ok = await send(url);
    expect([ok.status, sha256(ok.body)]).toEqual([200, digest]);
  });
});
