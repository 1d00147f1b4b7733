// Pulls docker.io-, ghcr.io- and quay.io-style images through ONE regmirror process, in every routing
// mode, from real Distribution registries with token, basic and no auth, and checks the bytes.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isBlobGet, isManifestRequest, seedImage, skopeoCopyToDir, startCountingRelay, startRegistry, startTokenService,
  type Registry, type Relay, type SeededImage, type TokenService,
} from '../support/index.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { ACCEPT_ALL, errorCodes, send, sha256 } from '../harness/http.js';

let tokens: TokenService;
const registries: Registry[] = [];
const relays: Record<string, Relay> = {};
let mirror: TestMirror;
let alpine: SeededImage;
let figlet: SeededImage;
let app: SeededImage;

const out = (): string => mkdtempSync(join(tmpdir(), 'regmirror-pull-'));
const seededBlobDigests = (image: SeededImage): string[] => image.blobs.map((b) => b.digest).sort();

/** Checks that every blob skopeo wrote is byte-identical to what was seeded. */
async function expectSameContent(image: SeededImage, copied: Awaited<ReturnType<typeof skopeoCopyToDir>>): Promise<void> {
  const seeded = new Map(image.blobs.map((b) => [b.digest, b.size]));
  expect(copied.blobs.length).toBeGreaterThan(0);
  for (const blob of copied.blobs) {
    expect(seeded.get(blob.digest)).toBe(blob.size); // skopeo verified each digest as it wrote it
  }
}

beforeAll(async () => {
  tokens = await startTokenService({ users: { seeder: 'seed-pw' } });
  const hub = await startRegistry({ auth: 'token', tokenService: tokens });
  const ghcr = await startRegistry({ auth: 'basic', username: 'ci', password: 'ci-secret' });
  const quay = await startRegistry();
  registries.push(hub, ghcr, quay);
  [alpine, figlet, app] = await Promise.all([
    seedImage(hub, { repo: 'library/alpine', tag: '3.17', layerSizes: [2_000_000], format: 'v2s2', creds: { username: 'seeder', password: 'seed-pw' } }),
    seedImage(ghcr, { repo: 'openfaasltd/figlet', tag: 'latest', layerSizes: [300_000, 200_000], platforms: ['linux/amd64', 'linux/arm64/v8'], creds: { username: 'ci', password: 'ci-secret' } }),
    seedImage(quay, { repo: 'team/app', tag: 'v1', layerSizes: [500_000, 100_000, 50_000] }),
  ]);
  await seedImage(hub, { repo: 'library/alpine', tag: '3.18', layerSizes: [1_000], format: 'v2s2', creds: { username: 'seeder', password: 'seed-pw' } });
  relays.hub = await startCountingRelay(hub.url);
  relays.ghcr = await startCountingRelay(ghcr.url);
  relays.quay = await startCountingRelay(quay.url);
  mirror = await startTestMirror({
    upstreams: {
      'docker.io': { url: relays.hub.url, hosts: ['registry-1.docker.io'] },
      'ghcr.io': { url: relays.ghcr.url, credentials: { username: 'ci', password: 'ci-secret' } },
      'quay.io': { url: relays.quay.url, hosts: ['localhost'] },
    },
    listeners: [undefined, 'ghcr.io'],
    defaultUpstream: 'docker.io',
  });
});

afterAll(async () => {
  await mirror?.close();
  await Promise.all(Object.values(relays).map((r) => r.stop()));
  await Promise.all(registries.map((r) => r.stop()));
  await tokens?.stop();
});

describe('one process, many registries', () => {
  it('pulls docker.io, ghcr.io and quay.io images by registry-host path prefix, byte-identical', async () => {
    await expectSameContent(alpine, await skopeoCopyToDir(`${mirror.host}/docker.io/library/alpine:3.17`, out()));
    const multi = await skopeoCopyToDir(`${mirror.host}/ghcr.io/openfaasltd/figlet:latest`, out(), { all: true });
    expect(multi.manifestDigest).toBe(figlet.manifestDigest);
    expect(multi.manifests.sort()).toEqual(figlet.manifests!.map((m) => m.digest).sort());
    expect(multi.blobs.map((b) => b.digest).sort()).toEqual(seededBlobDigests(figlet));
    await expectSameContent(figlet, multi);
    await expectSameContent(app, await skopeoCopyToDir(`${mirror.host}/quay.io/team/app:v1`, out()));
    expect(relays.hub!.count(isBlobGet)).toBe(alpine.blobs.length);
    expect(relays.ghcr!.count(isBlobGet)).toBe(figlet.blobs.length);
    expect(relays.quay!.count(isBlobGet)).toBe(app.blobs.length);
  });

  it('serves a second pull without any upstream blob or manifest request', async () => {
    for (const relay of Object.values(relays)) relay.reset();
    await expectSameContent(alpine, await skopeoCopyToDir(`${mirror.host}/docker.io/library/alpine:3.17`, out()));
    await skopeoCopyToDir(`${mirror.host}/ghcr.io/openfaasltd/figlet:latest`, out(), { all: true });
    await expectSameContent(app, await skopeoCopyToDir(`${mirror.host}/quay.io/team/app:v1`, out()));
    for (const relay of Object.values(relays)) {
      expect(relay.count(isBlobGet)).toBe(0);
      expect(relay.count(isManifestRequest)).toBe(0); // tags are within their TTL
    }
  });

  it('routes by the default upstream with Docker Hub naming (alpine is library/alpine)', async () => {
    await expectSameContent(alpine, await skopeoCopyToDir(`${mirror.host}/alpine:3.17`, out()));
  });

  it('routes by the listener an upstream is pinned to', async () => {
    const copied = await skopeoCopyToDir(`${mirror.hosts[1]}/openfaasltd/figlet:latest`, out(), { all: true });
    expect(copied.manifestDigest).toBe(figlet.manifestDigest);
  });

  it('routes by the Host header', async () => {
    const port = mirror.host.split(':')[1];
    await expectSameContent(app, await skopeoCopyToDir(`localhost:${port}/team/app:v1`, out()));
  });

  it('routes by containerd ?ns= and answers its HEAD with digest and length', async () => {
    relays.quay!.reset();
    const head = await send(`${mirror.url}/v2/team/app/manifests/v1?ns=quay.io`, { method: 'HEAD', headers: { accept: ACCEPT_ALL } });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(app.manifestDigest);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    expect(head.headers.get('oci-namespace')).toBe('quay.io');
    const manifest = await send(`${mirror.url}/v2/team/app/manifests/${app.manifestDigest}?ns=quay.io`, { headers: { accept: ACCEPT_ALL } });
    expect(sha256(manifest.body)).toBe(app.manifestDigest);
    expect(manifest.headers.get('content-type')).toBe(app.mediaType);
    for (const blob of app.blobs) {
      const got = await send(`${mirror.url}/v2/team/app/blobs/${blob.digest}?ns=quay.io`);
      expect(got.status).toBe(200);
      expect(sha256(got.body)).toBe(blob.digest);
      expect(got.headers.get('x-regmirror-cache')).toBe('hit');
    }
    expect(relays.quay!.count()).toBe(0);
  });

  it('keeps bearer tokens per scope: a warm pull asks the token service nothing', async () => {
    const before = tokens.tokenRequests;
    await send(`${mirror.url}/v2/library/alpine/manifests/3.18?ns=docker.io`, { headers: { accept: ACCEPT_ALL } });
    const afterCold = tokens.tokenRequests;
    await send(`${mirror.url}/v2/library/alpine/tags/list?ns=docker.io`);
    expect(tokens.tokenRequests - before).toBeLessThanOrEqual(1);
    expect(tokens.tokenRequests).toBe(afterCold);
  });

  it('passes tag lists through, with their query', async () => {
    relays.hub!.reset();
    const list = await send(`${mirror.url}/v2/docker.io/library/alpine/tags/list?n=10&bogus=1`);
    expect(list.status).toBe(200);
    expect(JSON.parse(list.body.toString())).toEqual({ name: 'library/alpine', tags: ['3.17', '3.18'] });
    expect(relays.hub!.requests.map((r) => r.path)).toContain('/v2/library/alpine/tags/list?n=10');
    const bad = await send(`${mirror.url}/v2/docker.io/library/alpine/tags/list?n=-1`);
    expect([bad.status, errorCodes(bad.body)]).toEqual([400, ['PAGINATION_NUMBER_INVALID']]);
  });

  it('is never an open proxy: unknown registries get NAME_UNKNOWN and no upstream request', async () => {
    for (const relay of Object.values(relays)) relay.reset();
    for (const path of ['/v2/x/manifests/1?ns=evil.example.com', '/v2/evil.example.com/x/manifests/1', '/evil.example.com/v2/x/manifests/1']) {
      const res = await send(`${mirror.url}${path}`);
      expect(res.status).toBe(404);
      expect(errorCodes(res.body)).toEqual(['NAME_UNKNOWN']);
    }
    for (const relay of Object.values(relays)) expect(relay.count()).toBe(0);
  });

  it('answers write methods and bad input with OCI errors', async () => {
    const put = await send(`${mirror.url}/v2/library/alpine/manifests/3.17`, { method: 'PUT', body: '{}' });
    expect(put.status).toBe(405);
    expect(errorCodes(put.body)).toEqual(['UNSUPPORTED']);
    const upload = await send(`${mirror.url}/v2/library/alpine/blobs/uploads/`, { method: 'POST' });
    expect(upload.status).toBe(405);
    const del = await send(`${mirror.url}/v2/library/alpine/manifests/3.17`, { method: 'DELETE' });
    expect(del.status).toBe(405);
    const badDigest = await send(`${mirror.url}/v2/library/alpine/blobs/sha256:1234`);
    expect([badDigest.status, errorCodes(badDigest.body)]).toEqual([400, ['DIGEST_INVALID']]);
    const badName = await send(`${mirror.url}/v2/Library/Alpine/manifests/1`);
    expect([badName.status, errorCodes(badName.body)]).toEqual([400, ['NAME_INVALID']]);
    const missing = await send(`${mirror.url}/v2/library/nothing/manifests/1`);
    expect([missing.status, errorCodes(missing.body)]).toEqual([404, ['MANIFEST_UNKNOWN']]);
    const missingBlob = await send(`${mirror.url}/v2/library/alpine/blobs/sha256:${'0'.repeat(64)}`);
    expect([missingBlob.status, errorCodes(missingBlob.body)]).toEqual([404, ['BLOB_UNKNOWN']]);
    const base = await send(`${mirror.url}/v2/`);
    expect(base.status).toBe(200);
    expect(base.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });
});
