// Per-upstream repository filters against a real registry: an allowed image pulls; a refused one is
// answered 403 DENIED for every per-repository request, with no upstream request, whatever the
// routing; content cached before a deny rule is refused after a restart; warm reports the refusal.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { parseImageRef, warmImages, type WarmReporter } from '../../src/lifecycle/warm.js';
import { seedImage, skopeoCopyToDir, startCountingRelay, startRegistry, tempDir, type Registry, type Relay, type SeededImage } from '../support/index.js';
import { ACCEPT_ALL, errorCodes, send, sha256 } from '../harness/http.js';
import { captureLog } from '../harness/log.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';

let registry: Registry;
let relay: Relay;
let alpine: SeededImage;
let evil: SeededImage;
const mirrors: TestMirror[] = [];

const RULES = { allow: ['library/*'], deny: ['library/evil'] };

async function mirrorOf(repositories: ConfigInput['upstreams'][string]['repositories'], options: { dataDir?: string; logStream?: NodeJS.WritableStream } = {}): Promise<TestMirror> {
  const m = await startTestMirror({ upstreams: { 'docker.io': { url: relay.url, repositories } }, listeners: [undefined, 'docker.io'], defaultUpstream: 'docker.io', ...options });
  mirrors.push(m);
  return m;
}

/** Every per-repository request for `image`, on the listener at `base`, the repository named by `name` and `query`. */
function requestsFor(image: SeededImage, base: string, name: string, query = ''): { method: string; url: string; headers?: Record<string, string> }[] {
  const url = (path: string): string => `${base}/v2/${name}/${path}${query}`;
  const blob = image.blobs[0]!.digest;
  return [
    { method: 'GET', url: url('manifests/1') },
    { method: 'HEAD', url: url('manifests/1') },
    { method: 'GET', url: url(`manifests/${image.manifestDigest}`) },
    { method: 'HEAD', url: url(`manifests/${image.manifestDigest}`) },
    { method: 'GET', url: url(`blobs/${blob}`) },
    { method: 'HEAD', url: url(`blobs/${blob}`) },
    { method: 'GET', url: url(`blobs/${blob}`), headers: { range: 'bytes=0-9' } },
    { method: 'GET', url: url('tags/list') },
    { method: 'GET', url: url(`referrers/${image.manifestDigest}`) },
  ];
}

/** Sends each request; returns `status code` per request (`403 DENIED`; a HEAD has no body: its status only). */
async function answers(requests: { method: string; url: string; headers?: Record<string, string> }[]): Promise<string[]> {
  return Promise.all(requests.map(async ({ method, url, headers }) => {
    const res = await send(url, { method, headers: { accept: ACCEPT_ALL, ...headers } });
    return method === 'HEAD' ? String(res.status) : `${res.status} ${errorCodes(res.body).join(',')}`;
  }));
}

const expected = (n: number): string[] => Array.from({ length: n }, (_, i) => ([1, 3, 5].includes(i) ? '403' : '403 DENIED'));

beforeAll(async () => {
  registry = await startRegistry();
  [alpine, evil] = await Promise.all([
    seedImage(registry, { repo: 'library/alpine', tag: '1', layerSizes: [20_000] }),
    seedImage(registry, { repo: 'library/evil', tag: '1', layerSizes: [20_000] }),
  ]);
  relay = await startCountingRelay(registry.url);
});

afterAll(async () => {
  await Promise.all(mirrors.map((m) => m.close()));
  await relay?.stop();
  await registry?.stop();
});

describe('repository filters', () => {
  it('pulls an allowed image; refuses the others with 403 DENIED however they are routed, asking upstream nothing', async () => {
    const log = captureLog();
    const m = await mirrorOf(RULES, { logStream: log.stream });
    const copied = await skopeoCopyToDir(`${m.host}/alpine:1`, tempDir('filter-pull'));
    expect(copied.blobs.map((b) => b.digest).sort()).toEqual(alpine.blobs.map((b) => b.digest).sort());

    relay.reset();
    const refused = [
      ...requestsFor(evil, m.url, 'library/evil', '?ns=docker.io'),
      ...requestsFor(evil, m.url, 'docker.io/library/evil'), // path prefix
      ...requestsFor(evil, `http://${m.hosts[1]}`, 'evil'), // the listener pinned to docker.io, Docker Hub naming
      ...requestsFor(evil, m.url, 'evil'), // the default upstream
      ...requestsFor(alpine, m.url, 'bitnami/alpine', '?ns=docker.io'), // not in the allow list
    ];
    expect(await answers(refused)).toEqual(Array.from({ length: 5 }, () => expected(9)).flat());

    // Counted by upstream and kind, and logged with the route and the outcome.
    const metrics = (await (await fetch(`${m.url}/metrics`)).text()).split('\n');
    const denied = (kind: string): string | undefined => metrics.find((l) => l.startsWith(`regmirror_requests_total{upstream="docker.io",kind="${kind}",outcome="denied",status="403"} `))?.split(' ')[1];
    expect([denied('manifest'), denied('blob'), denied('tags'), denied('referrers')]).toEqual(['20', '15', '5', '5']);
    await vi.waitFor(() => expect(log.entries.filter((e) => e.msg === 'request' && e.outcome === 'denied')).toHaveLength(refused.length));
    const line = log.entries.find((e) => e.msg === 'request' && e.routedBy === 'listener' && e.kind === 'blob');
    expect(line).toMatchObject({ status: 403, upstream: 'docker.io', repository: 'library/evil', outcome: 'denied' });

    await expect(skopeoCopyToDir(`${m.host}/docker.io/library/evil:1`, tempDir('filter-refused'))).rejects.toThrow(/denied/);
    expect(relay.count()).toBe(0);
  });

  it('refuses content cached before a deny rule, once restarted with it, and still serves the rest from the cache', async () => {
    const open = await mirrorOf(undefined);
    for (const image of [alpine, evil]) await skopeoCopyToDir(`${open.host}/${image.repo}:1`, tempDir('filter-cache'));
    await open.close();

    const filtered = await mirrorOf(RULES, { dataDir: open.dataDir });
    relay.reset();
    expect(await answers(requestsFor(evil, filtered.url, 'library/evil', '?ns=docker.io'))).toEqual(expected(9));
    for (const blob of alpine.blobs) {
      const got = await send(`${filtered.url}/v2/library/alpine/blobs/${blob.digest}?ns=docker.io`);
      expect([got.status, got.headers.get('x-regmirror-cache'), sha256(got.body)]).toEqual([200, 'hit', blob.digest]);
    }
    expect(relay.count()).toBe(0);
  });

  it('makes warm report a refused image, fetching nothing for it, and warm the others', async () => {
    const m = await mirrorOf(RULES);
    const silent: WarmReporter = { planned: () => undefined, progress: () => undefined, finished: () => undefined, failed: () => undefined };
    relay.reset();
    const results = await warmImages([parseImageRef('docker.io/library/evil:1'), parseImageRef('alpine:1')], { mirrorUrl: m.url, platforms: 'all', reporter: silent });
    expect(results.map((r) => [r.image, r.error?.message])).toEqual([
      ['docker.io/library/evil:1', 'manifest 1: 403 DENIED: repository "library/evil" of docker.io is not allowed on this mirror'],
      ['alpine:1', undefined],
    ]);
    expect(relay.requests.filter((r) => r.path.includes('/library/evil/'))).toEqual([]);
  });
});
