import { describe, expect, it } from 'vitest';
import { Metrics } from '../metrics/metrics.js';
import { takeSnapshot } from './snapshot.js';
import { StatusTracker, type TrackedRequest } from './tracker.js';

function setup(now: { t: number }): { metrics: Metrics; tracker: StatusTracker; request(r: Partial<TrackedRequest>): void } {
  const metrics = new Metrics();
  const tracker = new StatusTracker({ upstreams: ['docker.io', 'ghcr.io'], now: () => now.t });
  const request = (partial: Partial<TrackedRequest>): void => {
    const r: TrackedRequest = { method: 'GET', status: 200, kind: 'blob', upstream: 'ghcr.io', repository: 'org/app', outcome: 'hit', bytes: 100, ...partial };
    const upstream = r.upstream ?? '';
    const outcome = r.outcome ?? 'none';
    metrics.requests.inc({ upstream, kind: r.kind, outcome, status: String(r.status) });
    metrics.responseBytes.inc({ upstream, kind: r.kind, outcome }, r.bytes);
    tracker.record(r);
  };
  return { metrics, tracker, request };
}

describe('status snapshot', () => {
  it('sums the metrics per upstream and in total, and ranks manifest pulls', async () => {
    const now = { t: 1_700_000_000_000 };
    const { metrics, tracker, request } = setup(now);
    request({});
    request({ outcome: 'miss', bytes: 300 });
    request({ kind: 'manifest', outcome: 'revalidated', bytes: 10 });
    request({ kind: 'manifest', method: 'HEAD', outcome: 'hit', bytes: 5 });
    request({ kind: 'manifest', upstream: 'docker.io', repository: 'library/alpine', outcome: 'stale', bytes: 20 });
    request({ kind: 'invalid', upstream: undefined, repository: undefined, outcome: undefined, status: 404, bytes: 50 });
    metrics.upstreamBlobBytes.inc({ upstream: 'ghcr.io' }, 280);
    metrics.cacheBytes.set(4096);
    metrics.cacheObjects.set(3);

    const s = await takeSnapshot({ tracker, metrics, cacheLimitBytes: 1 << 20 });
    const ghcr = s.upstreams.find((u) => u.name === 'ghcr.io')!;
    expect(ghcr).toMatchObject({ requests: 4, hits: 2, cacheRequests: 4, hitRatio: 0.5, bytesFromCache: 105, bytesServed: 415, bytesFromUpstream: 280, health: 'unknown', rateLimit: null });
    expect(s.totals).toMatchObject({ requests: 6, hits: 2, cacheRequests: 5, stale: 1, bytesServed: 485 });
    expect(s.cache).toEqual({ bytes: 4096, objects: 3, limitBytes: 1 << 20, downloadsInFlight: 0 });
    expect(s.topImages).toEqual([
      { upstream: 'docker.io', repository: 'library/alpine', pulls: 1, error: 0 },
      { upstream: 'ghcr.io', repository: 'org/app', pulls: 1, error: 0 },
    ]);
    expect(s.series.requests.reduce((a, b) => a + b, 0)).toBe(6);
    expect(s.series.bytesFromCache.reduce((a, b) => a + b, 0)).toBe(105);
  });

  it('tells health and the last failure from upstream answers, and reads rate limits', async () => {
    const now = { t: 1_700_000_000_000 };
    const { metrics, tracker } = setup(now);
    const hub = tracker.upstreamObserver('docker.io', metrics.upstreamObserver('docker.io'));
    hub.onResponse({ method: 'GET', status: 200, durationMs: 3, headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' } });
    expect(tracker.upstream('docker.io').health).toBe('ok');
    now.t += 1000;
    hub.onFailure('timeout');
    expect(tracker.upstream('docker.io')).toEqual({ health: 'down', lastSuccessAt: now.t - 1000, lastFailure: { at: now.t, failure: 'timeout' } });
    now.t += 1000;
    hub.onResponse({ method: 'GET', status: 404, durationMs: 3, headers: {} });
    expect(tracker.upstream('docker.io').health).toBe('degraded');
    now.t += 300_000;
    expect(tracker.upstream('docker.io').health).toBe('ok');
    hub.onResponse({ method: 'GET', status: 503, durationMs: 3, headers: {} });
    const s = await takeSnapshot({ tracker, metrics });
    const docker = s.upstreams.find((u) => u.name === 'docker.io')!;
    expect(docker).toMatchObject({ health: 'down', lastFailure: { at: now.t, failure: '503' }, upstreamErrors: 2, rateLimit: { limit: 100, remaining: 76 } });
    expect(s.cache.limitBytes).toBeNull();
  });

  it('follows the upstreams a reload leaves: kept ones keep their health, changed ones start over', async () => {
    const now = { t: 1_700_000_000_000 };
    const { metrics, tracker } = setup(now);
    for (const name of ['docker.io', 'ghcr.io']) tracker.upstreamObserver(name, metrics.upstreamObserver(name)).onFailure('timeout');
    tracker.setUpstreams(['quay.io', 'ghcr.io', 'docker.io'], ['ghcr.io']);
    const s = await takeSnapshot({ tracker, metrics });
    expect(s.upstreams.map((u) => [u.name, u.health])).toEqual([['quay.io', 'unknown'], ['ghcr.io', 'unknown'], ['docker.io', 'down']]);
    tracker.setUpstreams(['quay.io'], []);
    expect((await takeSnapshot({ tracker, metrics })).upstreams.map((u) => u.name)).toEqual(['quay.io']);
    expect(tracker.upstream('docker.io').health).toBe('unknown');
  });

  it('has no proxy part without a proxy, and reads every proxy metric with one', async () => {
    const now = { t: 1_700_000_000_000 };
    const { metrics, tracker } = setup(now);
    expect(await takeSnapshot({ tracker, metrics })).not.toHaveProperty('proxy');

    const proxy = metrics.proxy();
    proxy.connects.inc({ outcome: 'intercepted', reason: '' }, 6);
    proxy.connects.inc({ outcome: 'refused', reason: 'bad-target' });
    proxy.connects.inc({ outcome: 'refused', reason: 'host-not-listed' }, 2);
    proxy.connections.set({ outcome: 'intercepted' }, 2);
    proxy.handshakeFailures.inc({ reason: 'unknown-ca' }, 3);
    proxy.tunnelBytes.inc({ direction: 'to_client' }, 4096);
    now.t += 3_000;
    const s = await takeSnapshot({ tracker, metrics });
    expect(s.proxy).toEqual({
      connects: {
        intercepted: { total: 6, perSecond: 2, reasons: [] },
        tunnelled: { total: 0, perSecond: 0, reasons: [] },
        refused: { total: 3, perSecond: 1, reasons: [{ reason: 'host-not-listed', count: 2 }, { reason: 'bad-target', count: 1 }] },
        failed: { total: 0, perSecond: 0, reasons: [] },
      },
      rateSeconds: 3,
      open: { intercepted: 2, tunnelled: 0 },
      handshakeFailures: [{ reason: 'unknown-ca', count: 3 }],
      tunnelBytes: { fromClient: 0, toClient: 4096 },
    });
  });
});
