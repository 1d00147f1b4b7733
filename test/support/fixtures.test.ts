// Proves each fixture against a real Distribution registry and skopeo.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isBlobGet,
  seedImage,
  sha256File,
  skopeoCopyToDir,
  skopeoInspectDigest,
  startCountingRelay,
  startFaultyUpstream,
  startRegistry,
  startTokenService,
  tempDir,
  type BlobFile,
  type Registry,
  type SeededImage,
  type TokenService,
} from './index.js';

const alice = { username: 'alice', password: 's3cret' };
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  await Promise.all(stops.map((stop) => stop()));
});

/** Registers a fixture for stopping after the file. */
function later<T extends { stop(): Promise<void> }>(fixture: T): T {
  stops.push(() => fixture.stop());
  return fixture;
}

const copyDir = (): string => join(tempDir('copy'), 'image');
const digests = (blobs: BlobFile[]): string[] => blobs.map((blob) => blob.digest).sort();

/** Checks that each copied blob's content hashes to its digest and was seeded. */
async function expectSameContent(copied: BlobFile[], seeded: BlobFile[]): Promise<void> {
  const known = new Map(seeded.map((blob) => [blob.digest, blob]));
  for (const blob of copied) {
    expect(await sha256File(blob.path)).toBe(blob.digest);
    expect(known.get(blob.digest)?.size).toBe(blob.size);
  }
}

/** Fetches a blob's body, resolving with the bytes that arrived and how it ended. */
async function fetchBlob(url: string, image: SeededImage, index: number): Promise<{ status: number; body: Buffer; error?: unknown; headers: Headers }> {
  const blob = image.blobs[index]!;
  const res = await fetch(`${url}/v2/${image.repo}/blobs/${blob.digest}`);
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res.body ?? []) chunks.push(Buffer.from(chunk));
    return { status: res.status, body: Buffer.concat(chunks), headers: res.headers };
  } catch (error) {
    return { status: res.status, body: Buffer.concat(chunks), error, headers: res.headers };
  }
}

describe('anonymous registry', () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = later(await startRegistry({ delete: true }));
  });

  it('answers /v2/ without credentials', async () => {
    expect(registry.url).toBe(`http://${registry.host}`);
    expect((await fetch(`${registry.url}/v2/`)).status).toBe(200);
  });

  it('round-trips a single-layer OCI image', async () => {
    const image = await seedImage(registry, { repo: 'one/layer', tag: 'v1', layerSizes: [4096] });
    expect(image.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(image.blobs).toHaveLength(2);
    expect(await skopeoInspectDigest(image.ref)).toBe(image.manifestDigest);
    const copied = await skopeoCopyToDir(image.ref, copyDir());
    expect(copied.manifestDigest).toBe(image.manifestDigest);
    expect(digests(copied.blobs)).toEqual(digests(image.blobs));
    await expectSameContent(copied.blobs, image.blobs);
  });

  it('round-trips a multi-layer Docker schema 2 image', async () => {
    const image = await seedImage(registry, { repo: 'multi', tag: 'v2s2', layerSizes: [100, 1 << 20, 3 << 20], format: 'v2s2', compressible: false });
    expect(image.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(image.blobs).toHaveLength(4);
    const copied = await skopeoCopyToDir(`${registry.host}/multi@${image.manifestDigest}`, copyDir());
    expect(copied.manifestDigest).toBe(image.manifestDigest);
    expect(digests(copied.blobs)).toEqual(digests(image.blobs));
    await expectSameContent(copied.blobs, image.blobs);
  });

  it('round-trips a multi-arch index and picks one platform', async () => {
    const image = await seedImage(registry, { repo: 'arch', tag: 'v1', layerSizes: [2000, 5000], platforms: ['linux/amd64', 'linux/arm64/v8'] });
    expect(image.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(image.manifests?.map((m) => m.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect(image.blobs).toHaveLength(6);
    const all = await skopeoCopyToDir(image.ref, copyDir(), { all: true });
    expect(all.manifestDigest).toBe(image.manifestDigest);
    expect(all.manifests.sort()).toEqual(image.manifests!.map((m) => m.digest).sort());
    expect(digests(all.blobs)).toEqual(digests(image.blobs));
    const arm = await skopeoCopyToDir(image.ref, copyDir(), { overrideArch: 'arm64' });
    expect(arm.manifestDigest).toBe(image.manifests![1]!.digest);
    expect(arm.blobs).toHaveLength(3);
    await expectSameContent(arm.blobs, image.blobs);
  });

  it('pushes uncompressed tar layers as built', async () => {
    const image = await seedImage(registry, { repo: 'plain', tag: 'v1', layerSizes: [3000], compression: 'none' });
    const copied = await skopeoCopyToDir(image.ref, copyDir());
    expect(digests(copied.blobs)).toEqual(digests(image.blobs));
    await expectSameContent(copied.blobs, image.blobs);
  });

  it('pushes a multi-arch image as a Docker manifest list', async () => {
    const image = await seedImage(registry, { repo: 'arch', tag: 'list', layerSizes: [1000], platforms: ['linux/amd64', 'linux/arm64'], format: 'v2s2' });
    expect(image.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(await skopeoInspectDigest(image.ref)).toBe(image.manifestDigest);
  });

  it('deletes manifests when asked to', async () => {
    const image = await seedImage(registry, { repo: 'gone', tag: 'v1', layerSizes: [100] });
    const manifest = `${registry.url}/v2/gone/manifests/${image.manifestDigest}`;
    expect((await fetch(manifest, { method: 'DELETE' })).status).toBe(202);
    expect((await fetch(manifest, { method: 'HEAD' })).status).toBe(404);
  });

  it('keeps its port and data across stop() and start()', async () => {
    const image = await seedImage(registry, { repo: 'kept', tag: 'v1', layerSizes: [1000] });
    await registry.stop();
    await expect(fetch(`${registry.url}/v2/`)).rejects.toThrow();
    await registry.start();
    expect(await skopeoInspectDigest(image.ref)).toBe(image.manifestDigest);
  });
});

describe('basic auth registry', () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = later(await startRegistry({ auth: 'basic', ...alice }));
  });

  it('challenges anonymous clients and accepts the user', async () => {
    const res = await fetch(`${registry.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const basic = `Basic ${Buffer.from(`${alice.username}:${alice.password}`).toString('base64')}`;
    expect((await fetch(`${registry.url}/v2/`, { headers: { authorization: basic } })).status).toBe(200);
  });

  it('lets skopeo pull only with credentials', async () => {
    const image = await seedImage(registry, { repo: 'private', tag: 'v1', layerSizes: [1000], creds: alice });
    await expect(skopeoInspectDigest(image.ref)).rejects.toThrow(/unauthorized|authentication required/i);
    expect(await skopeoInspectDigest(image.ref, { creds: alice })).toBe(image.manifestDigest);
  });
});

describe('token auth registry', () => {
  let tokens: TokenService;
  let registry: Registry;
  beforeAll(async () => {
    tokens = later(await startTokenService({ users: { [alice.username]: alice.password } }));
    registry = later(await startRegistry({ auth: 'token', tokenService: tokens }));
  });

  it('challenges with Bearer and accepts a token from the service', async () => {
    const res = await fetch(`${registry.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="${tokens.realm}",service="${tokens.service}"`);
    const body = (await (await fetch(`${tokens.realm}?service=${tokens.service}&scope=repository:a/b:pull`)).json()) as Record<string, unknown>;
    expect(body).toMatchObject({ expires_in: 300, access_token: body['token'] });
    const [header, claims] = String(body['token']).split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>);
    expect(header).toMatchObject({ alg: 'RS256', x5c: [expect.any(String)] });
    expect(claims).toMatchObject({ iss: tokens.issuer, aud: tokens.service, sub: '', access: [{ type: 'repository', name: 'a/b', actions: ['pull'] }] });
    const authed = await fetch(`${registry.url}/v2/a/b/tags/list`, { headers: { authorization: `Bearer ${String(body['token'])}` } });
    expect(authed.status).toBe(404); // past auth: the repository does not exist
  });

  it('rejects wrong credentials', async () => {
    const bad = `Basic ${Buffer.from('alice:wrong').toString('base64')}`;
    expect((await fetch(`${tokens.realm}?service=${tokens.service}`, { headers: { authorization: bad } })).status).toBe(401);
  });

  it('lets the user push and anyone pull', async () => {
    await expect(seedImage(registry, { repo: 'tok', tag: 'anon', layerSizes: [100] })).rejects.toThrow(/denied|unauthorized/i);
    const before = tokens.tokenRequests;
    const image = await seedImage(registry, { repo: 'tok', tag: 'v1', layerSizes: [1000], creds: alice });
    const copied = await skopeoCopyToDir(image.ref, copyDir());
    expect(copied.manifestDigest).toBe(image.manifestDigest);
    expect(tokens.tokenRequests).toBeGreaterThan(before);
  });

  it('is the upstream of a Distribution pull-through cache with credentials', async () => {
    const image = await seedImage(registry, { repo: 'tok', tag: 'cached', layerSizes: [1000], creds: alice });
    const proxy = later(await startRegistry({ proxy: { remoteurl: registry.url, ...alice } }));
    const copied = await skopeoCopyToDir(`${proxy.host}/tok:cached`, copyDir());
    expect(copied.manifestDigest).toBe(image.manifestDigest);
  });
});

describe('relays', () => {
  let upstream: Registry;
  let image: SeededImage;
  beforeAll(async () => {
    upstream = later(await startRegistry());
    image = await seedImage(upstream, { repo: 'relayed', tag: 'v1', layerSizes: [10_000, 20_000], compressible: false });
  });

  it('counts the blob GETs and bytes of a pull', async () => {
    const relay = later(await startCountingRelay(upstream.url));
    const copied = await skopeoCopyToDir(`${relay.host}/relayed:v1`, copyDir());
    await expectSameContent(copied.blobs, image.blobs);
    expect(relay.count(isBlobGet)).toBe(3);
    expect(relay.bytesFor(isBlobGet)).toBe(image.blobs.reduce((sum, blob) => sum + blob.size, 0));
    expect(relay.requests.filter(isBlobGet).every((r) => r.status === 200)).toBe(true);
    relay.reset();
    expect(relay.count()).toBe(0);
  });

  it('shows a Distribution pull-through cache serving a second pull from its cache', async () => {
    const relay = later(await startCountingRelay(upstream.url));
    const proxy = later(await startRegistry({ proxy: { remoteurl: relay.url } }));
    await skopeoCopyToDir(`${proxy.host}/relayed:v1`, copyDir());
    // Distribution 2.8 downloads a cold blob twice: once for the client, once to store it.
    expect(relay.count(isBlobGet)).toBe(6);
    relay.reset();
    await skopeoCopyToDir(`${proxy.host}/relayed:v1`, copyDir());
    expect(relay.count(isBlobGet)).toBe(0);
    expect(relay.count((r) => r.method === 'HEAD' && r.path === '/v2/relayed/manifests/v1')).toBe(1);
  });

  it('corrupts, truncates, stalls and fails blob GETs on demand', async () => {
    const faulty = later(await startFaultyUpstream(upstream.url, 'corrupt'));
    const layer = image.blobs[1]!;
    const corrupt = await fetchBlob(faulty.url, image, 1);
    expect(corrupt.body.length).toBe(layer.size);
    expect(`sha256:${createHash('sha256').update(corrupt.body).digest('hex')}`).not.toBe(layer.digest);
    await expect(skopeoCopyToDir(`${faulty.host}/relayed:v1`, copyDir())).rejects.toThrow(/digest/i);

    faulty.setFault('truncate');
    const truncated = await fetchBlob(faulty.url, image, 1);
    expect(truncated.error).toBeDefined();
    expect(truncated.body.length).toBe(Math.floor(layer.size / 2));

    faulty.setFault('stall');
    const res = await fetch(`${faulty.url}/v2/relayed/blobs/${layer.digest}`);
    const reader = res.body!.getReader();
    let received = 0;
    const more = async (): Promise<void> => {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) received += chunk.value.length;
    };
    void more().catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(received).toBe(Math.floor(layer.size / 2));
    await reader.cancel();

    const faulted = faulty.faulted;
    faulty.setFault({ status: 429, retryAfter: 7 }, 1);
    const limited = await fetchBlob(faulty.url, image, 1);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('7');
    const healed = await fetchBlob(faulty.url, image, 1);
    expect(healed.status).toBe(200);
    expect(healed.body.length).toBe(layer.size);
    expect(faulty.faulted).toBe(faulted + 1);
  });
});
