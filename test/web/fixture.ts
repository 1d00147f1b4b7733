// One mirror for the status page and `regmirror stats` tests: three upstreams that show each
// state — a real registry (ghcr.io), a Docker Hub stand-in that answers 404 with rate-limit
// headers (docker.io), and a closed port (quay.io) — and an admin listener of its own; with
// `proxy`, a CONNECT proxy too.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, run, seedImage, startRegistry, tempDir, type Registry, type SeededImage } from '../support/index.js';
import { closeServer, listen } from '../support/http.js';
import { formatBytes, formatCount, formatPercent } from '../../src/web/assets/format.js';
import { initLocalCa } from '../../src/tls/init.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** The running pieces. */
export interface StatusFixture {
  registry: Registry;
  /** team/app:v1 and team/tool:v1 on the registry. */
  images: SeededImage[];
  mirror: TestMirror;
  /** http://127.0.0.1:PORT of the admin listener. */
  adminUrl: string;
  /** With `proxy`: the proxy, its CA, and listed hosts it tunnels to (the registry) and cannot reach (a closed port). */
  proxy?: { host: string; caCert: string; tunnelTo: string; unreachable: string };
  close(): Promise<void>;
}

/** Answers like Docker Hub for an image it lacks: 404, with the pull-limit headers. */
function fakeHub(): Server {
  return createServer((req, res) => {
    res.writeHead(req.url === '/v2/' ? 200 : 404, {
      'content-type': 'application/json',
      'ratelimit-limit': '100;w=21600',
      'ratelimit-remaining': '76;w=21600',
    });
    res.end(req.url === '/v2/' ? '{}' : '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
  });
}

/** Starts the registry (with team/app:v1 and team/tool:v1), the stand-ins and the mirror (with a CONNECT proxy, if asked). */
export async function startStatusFixture(options: { proxy?: boolean } = {}): Promise<StatusFixture> {
  const registry = await startRegistry();
  const images = await Promise.all([
    seedImage(registry, { repo: 'team/app', tag: 'v1', layerSizes: [600_000, 200_000] }),
    seedImage(registry, { repo: 'team/tool', tag: 'v1', layerSizes: [150_000] }),
  ]);
  const hub = fakeHub();
  const hubUrl = await listen(hub);
  const closed = `127.0.0.1:${await freePort()}`;
  const tunnelTo = new URL(registry.url).host;
  const ca = options.proxy ? (await initLocalCa({ dir: join(tempDir('status-proxy'), 'tls'), names: ['127.0.0.1'] })).files : undefined;
  const mirror = await startTestMirror({
    upstreams: {
      'ghcr.io': { url: registry.url },
      'docker.io': { url: hubUrl, dockerHubNames: true, retries: 0 },
      'quay.io': { url: `http://${closed}`, retries: 0 },
    },
    admin: { address: '127.0.0.1:0' },
    ...(ca ? { proxy: { hosts: ['ghcr.io', tunnelTo, closed], caCert: ca.caCert, caKey: ca.caKey } } : {}),
  });
  return {
    registry,
    images,
    mirror,
    adminUrl: `http://${mirror.hosts[1]}`,
    ...(ca ? { proxy: { host: mirror.proxyHost!, caCert: ca.caCert, tunnelTo, unreachable: closed } } : {}),
    async close() {
      await mirror.close();
      await closeServer(hub);
      await registry.stop();
    },
  };
}

/** Runs `regmirror stats` with `args`; resolves with its output. */
export const stats = (...args: string[]): Promise<string> => run(process.execPath, ['--import', 'tsx', CLI, 'stats', ...args]);

/** The sum of every sample of `name` whose labels include `labels`, from Prometheus text. */
export function sumSamples(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',');
    if (wanted.every((w) => have.includes(w))) sum += Number(m[3]);
  }
  return sum;
}

/** What the status summary should say about one upstream, read from /metrics. */
export function expectedUpstream(text: string, upstream: string): Record<string, number> {
  return {
    requests: sumSamples(text, 'regmirror_requests_total', { upstream }),
    hits: sumSamples(text, 'regmirror_requests_total', { upstream, outcome: 'hit' }),
    bytesFromCache: sumSamples(text, 'regmirror_response_bytes_total', { upstream, outcome: 'hit' }),
    bytesFromUpstream: sumSamples(text, 'regmirror_upstream_blob_bytes_total', { upstream }),
    upstreamErrors: sumSamples(text, 'regmirror_upstream_errors_total', { upstream }),
  };
}

/** An upstream's cells as the page and `regmirror stats` should show them: raw value and text. */
export function expectedCells(text: string, upstream: string): Record<string, { value: string; text: string }> {
  const e = expectedUpstream(text, upstream);
  const cacheable = ['hit', 'miss', 'coalesced', 'revalidated', 'stale']
    .reduce((n, outcome) => n + sumSamples(text, 'regmirror_requests_total', { upstream, outcome }), 0);
  const ratio = cacheable ? e.hits! / cacheable : null;
  const cell = (value: number, format: (n: number) => string): { value: string; text: string } => ({ value: String(value), text: format(value) });
  return {
    requests: cell(e.requests!, formatCount),
    hits: cell(e.hits!, formatCount),
    hitRatio: { value: ratio === null ? '' : String(ratio), text: formatPercent(ratio) },
    bytesFromCache: cell(e.bytesFromCache!, formatBytes),
    bytesFromUpstream: cell(e.bytesFromUpstream!, formatBytes),
    upstreamErrors: cell(e.upstreamErrors!, formatCount),
  };
}
