// Upstreams that misbehave: stalls, garbage, redirect loops, persistent errors. Nothing corrupt or
// partial is ever stored or served as complete, and the next request succeeds once upstream recovers.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, seedImage, startFaultyUpstream, startRegistry, startRelay, type FaultyUpstream, type Registry, type Relay, type SeededImage } from '../support/index.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { captureLog } from '../harness/log.js';
import { ACCEPT_ALL, errorCodes, send, sha256 } from '../harness/http.js';
import { verifyStore } from '../harness/store.js';

let registry: Registry;
let image: SeededImage;
let faulty: FaultyUpstream;
let misbehaving: Relay;
let mode: 'garbage-manifest' | 'redirect-loop' | 'redirect-to-closed-port' | 'error-500' | 'gone-410' | null = null;
let mirror: TestMirror;
/** A loopback port nothing listens on: connections to it are refused. */
let closedPort: number;
const log = captureLog();
const layer = (): { digest: string; size: number } => image.blobs.reduce((a, b) => (b.size > a.size ? b : a));

/** Answers manifests with garbage, blobs with a redirect to themselves, or everything with 500, by `mode`. */
function misbehave(req: IncomingMessage, res: ServerResponse): boolean {
  const path = req.url ?? '';
  if (mode === 'garbage-manifest' && path.includes('/manifests/')) {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end('<html>not a manifest</html>');
    return true;
  }
  if (mode === 'redirect-loop' && path.includes('/blobs/')) {
    res.writeHead(302, { location: path }).end();
    return true;
  }
  if (mode === 'redirect-to-closed-port' && path.includes('/blobs/')) {
    res.writeHead(307, { location: `http://127.0.0.1:${closedPort}/cdn/blob` }).end();
    return true;
  }
  if (mode === 'gone-410' && path.includes('/manifests/')) {
    res.writeHead(410).end();
    return true;
  }
  if (mode === 'error-500' && path.startsWith('/v2/') && path !== '/v2/') {
    res.writeHead(500, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"boom"}]}');
    return true;
  }
  return false;
}

beforeAll(async () => {
  registry = await startRegistry();
  image = await seedImage(registry, { repo: 'team/app', tag: 'v1', layerSizes: [6_000_000], compressible: false, compression: 'none' });
  faulty = await startFaultyUpstream(registry.url);
  misbehaving = await startRelay(registry.url, { answer: misbehave });
  closedPort = await freePort();
  mirror = await startTestMirror({
    upstreams: {
      'quay.io': { url: faulty.url, timeouts: { idle: '1s', headers: '2s' }, retries: 1 },
      'ghcr.io': { url: misbehaving.url, retries: 1 },
      'gone.example': { url: `http://127.0.0.1:${closedPort}`, retries: 0 },
    },
    logStream: log.stream,
  });
});

afterAll(async () => {
  await mirror?.close();
  await faulty?.stop();
  await misbehaving?.stop();
  await registry?.stop();
});

describe('upstream faults', () => {
  it('cuts the transfer when upstream stalls mid-blob, within the idle timeout, then recovers', async () => {
    const { digest } = layer();
    faulty.setFault('stall');
    const started = Date.now();
    const res = await fetch(`${mirror.url}/v2/team/app/blobs/${digest}?ns=quay.io`);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
    faulty.setFault(null);
    const ok = await send(`${mirror.url}/v2/team/app/blobs/${digest}?ns=quay.io`);
    expect(sha256(ok.body)).toBe(digest);
  });

  it('refuses a manifest that is not one, and stores nothing for it', async () => {
    mode = 'garbage-manifest';
    const res = await send(`${mirror.url}/v2/team/app/manifests/v1?ns=ghcr.io`, { headers: { accept: ACCEPT_ALL } });
    expect([res.status, errorCodes(res.body)]).toEqual([502, ['UPSTREAM_UNAVAILABLE']]);
    mode = null;
    const ok = await send(`${mirror.url}/v2/team/app/manifests/v1?ns=ghcr.io`, { headers: { accept: ACCEPT_ALL } });
    expect([ok.status, ok.headers.get('x-regmirror-cache'), sha256(ok.body)]).toEqual([200, 'miss', image.manifestDigest]);
  });

  it('gives up on redirect loops with a clear error', async () => {
    mode = 'redirect-loop';
    const config = image.blobs.find((b) => b.digest !== layer().digest)!; // not fetched by any test before
    const res = await send(`${mirror.url}/v2/team/app/blobs/${config.digest}?ns=ghcr.io`);
    expect([res.status, errorCodes(res.body)]).toEqual([502, ['UPSTREAM_UNAVAILABLE']]);
    mode = null;
  });

  it('tells a client which upstream failed and how, never where; the log has where, under the request id', async () => {
    const direct = await send(`${mirror.url}/v2/team/app/manifests/v1?ns=gone.example`, { headers: { accept: ACCEPT_ALL } });
    mode = 'redirect-to-closed-port';
    const config = image.blobs.find((b) => b.digest !== layer().digest)!;
    const redirected = await send(`${mirror.url}/v2/team/app/blobs/${config.digest}?ns=ghcr.io`);
    mode = null;
    for (const [res, upstream] of [[direct, 'gone.example'], [redirected, 'ghcr.io']] as const) {
      expect([res.status, JSON.parse(res.body.toString())]).toEqual([502, { errors: [{ code: 'UPSTREAM_UNAVAILABLE', message: `upstream ${upstream}: unreachable` }] }]);
      const requestId = res.headers.get('x-request-id');
      const failure = log.entries.find((l) => l.msg === 'upstream failed' && l.requestId === requestId);
      expect((failure?.err as { message?: string } | undefined)?.message).toContain(`ECONNREFUSED 127.0.0.1:${closedPort}`);
      expect(log.entries.find((l) => l.msg === 'request' && l.requestId === requestId)).toMatchObject({ upstream, status: 502 });
    }
  });

  it('passes persistent 5xx on as 502 for content it does not have', async () => {
    mode = 'error-500';
    const res = await send(`${mirror.url}/v2/team/other/manifests/v1?ns=ghcr.io`, { headers: { accept: ACCEPT_ALL } });
    expect([res.status, errorCodes(res.body)]).toEqual([502, ['UPSTREAM_UNAVAILABLE']]);
    mode = null;
  });

  it('passes another 4xx on as a refusal (UPSTREAM_REFUSED), not as an outage that stale content could cover', async () => {
    mode = 'gone-410';
    const res = await send(`${mirror.url}/v2/team/other/manifests/v1?ns=ghcr.io`, { headers: { accept: ACCEPT_ALL } });
    expect([res.status, errorCodes(res.body)]).toEqual([502, ['UPSTREAM_REFUSED']]);
    mode = null;
  });

  it('leaves only verified blobs in the store and no spool files', async () => {
    for (let i = 0; i < 50 && (await readdir(join(mirror.dataDir, '_spool'))).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await readdir(join(mirror.dataDir, '_spool'))).toEqual([]);
    const { checked, corrupt } = await verifyStore(mirror.dataDir);
    expect(checked).toBeGreaterThan(0);
    expect(corrupt).toEqual([]);
  });
});
