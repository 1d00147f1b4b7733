import { describe, expect, it } from 'vitest';
import { Metrics } from './metrics.js';

describe('Metrics', () => {
  it("reads Docker Hub's rate-limit headers into gauges", async () => {
    const metrics = new Metrics();
    metrics.upstreamObserver('docker.io').onResponse({
      method: 'HEAD', status: 200, durationMs: 12, headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' },
    });
    const text = await metrics.registry.metrics();
    expect(text).toContain('regmirror_upstream_ratelimit_limit{upstream="docker.io"} 100');
    expect(text).toContain('regmirror_upstream_ratelimit_remaining{upstream="docker.io"} 76');
    expect(text).toContain('regmirror_upstream_requests_total{upstream="docker.io",method="HEAD",status="200"} 1');
  });

  it('counts 5xx and 429 answers and connection failures as upstream errors', async () => {
    const metrics = new Metrics();
    const observer = metrics.upstreamObserver('ghcr.io');
    observer.onResponse({ method: 'GET', status: 429, durationMs: 1, headers: {} });
    observer.onFailure('timeout');
    const text = await metrics.registry.metrics();
    expect(text).toContain('regmirror_upstream_errors_total{upstream="ghcr.io",failure="429"} 1');
    expect(text).toContain('regmirror_upstream_errors_total{upstream="ghcr.io",failure="timeout"} 1');
    expect(text).not.toContain('regmirror_upstream_ratelimit_limit{');
  });
});
