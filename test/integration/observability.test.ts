// Metrics, health endpoints and access logs, against a real registry with credentials.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedImage, skopeoCopyToDir, startRegistry, type Registry, type SeededImage } from '../support/index.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { send } from '../harness/http.js';

const PASSWORD = 'topsecret-pw-7731';
let registry: Registry;
let image: SeededImage;
let mirror: TestMirror;
const logLines: string[] = [];

/** The value of one sample in Prometheus text output, or 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',');
    if (wanted.every((w) => have.includes(w))) return Number(m[3]);
  }
  return 0;
}

beforeAll(async () => {
  registry = await startRegistry({ auth: 'basic', username: 'ci', password: PASSWORD });
  image = await seedImage(registry, { repo: 'org/tool', tag: 'v1', layerSizes: [400_000, 100_000], creds: { username: 'ci', password: PASSWORD } });
  const logStream = new PassThrough();
  logStream.on('data', (chunk: Buffer) => logLines.push(...chunk.toString().split('\n').filter(Boolean)));
  mirror = await startTestMirror({
    upstreams: { 'ghcr.io': { url: `http://ci:${PASSWORD}@${registry.host}` } },
    admin: { address: '127.0.0.1:0' },
    logStream,
  });
});

afterAll(async () => {
  await mirror?.close();
  await registry?.stop();
});

describe('observability', () => {
  it('counts requests by outcome, bytes from upstream and the cache size', async () => {
    const adminUrl = `http://${mirror.hosts[1]}`;
    await skopeoCopyToDir(`${mirror.host}/ghcr.io/org/tool:v1`, mkdtempSync(join(tmpdir(), 'obs-')));
    await skopeoCopyToDir(`${mirror.host}/ghcr.io/org/tool:v1`, mkdtempSync(join(tmpdir(), 'obs-')));
    const text = (await send(`${adminUrl}/metrics`)).body.toString();
    const blobs = image.blobs.length;
    const blobBytes = image.blobs.reduce((n, b) => n + b.size, 0);
    expect(sample(text, 'regmirror_requests_total', { upstream: 'ghcr.io', kind: 'blob', outcome: 'miss', status: '200' })).toBe(blobs);
    expect(sample(text, 'regmirror_requests_total', { upstream: 'ghcr.io', kind: 'blob', outcome: 'hit', status: '200' })).toBe(blobs);
    expect(sample(text, 'regmirror_requests_total', { upstream: 'ghcr.io', kind: 'manifest', outcome: 'hit' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'regmirror_upstream_blob_bytes_total', { upstream: 'ghcr.io' })).toBe(blobBytes);
    expect(sample(text, 'regmirror_response_bytes_total', { upstream: 'ghcr.io', kind: 'blob', outcome: 'hit' })).toBeGreaterThan(blobBytes);
    expect(sample(text, 'regmirror_cache_objects')).toBe(blobs + 1);
    expect(sample(text, 'regmirror_cache_size_bytes')).toBeGreaterThan(blobBytes);
    expect(sample(text, 'regmirror_downloads_in_flight')).toBe(0);
    expect(sample(text, 'regmirror_upstream_requests_total', { upstream: 'ghcr.io', method: 'GET', status: '200' })).toBeGreaterThanOrEqual(blobs + 1);
    expect(text).toContain('regmirror_process_resident_memory_bytes');
  });

  it('serves health and readiness on the admin listener only, when it has one', async () => {
    const adminUrl = `http://${mirror.hosts[1]}`;
    expect((await send(`${adminUrl}/healthz`)).status).toBe(200);
    const ready = await send(`${adminUrl}/readyz`);
    expect([ready.status, JSON.parse(ready.body.toString()).status]).toEqual([200, 'ready']);
    expect((await send(`${mirror.url}/metrics`)).status).toBe(404);
    expect((await send(`${adminUrl}/v2/`)).status).toBe(404);
  });

  it('writes one access-log line per request, and never a credential', async () => {
    const requests = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request');
    const blobLine = requests.find((l) => l.kind === 'blob' && l.outcome === 'miss')!;
    expect(blobLine).toMatchObject({ method: 'GET', status: 200, upstream: 'ghcr.io', routedBy: 'path', complete: true });
    expect(blobLine.client).toBe('127.0.0.1');
    expect(typeof blobLine.ms).toBe('number');
    expect(blobLine.bytes as number).toBeGreaterThan(0);
    const basic = Buffer.from(`ci:${PASSWORD}`).toString('base64');
    for (const line of logLines) {
      expect(line).not.toContain(PASSWORD);
      expect(line).not.toContain(basic);
      expect(line.toLowerCase()).not.toMatch(/bearer |basic /);
    }
  });
});
