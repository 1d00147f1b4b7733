// What the proxy counts and logs, against what really happened: curl and skopeo reach the proxy
// through a WireCounter (a TCP relay that sees each CONNECT's connection and its bytes), and the
// numbers on /metrics and in the access-log lines must equal what the relay and the servers saw.
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectRecord } from '../../src/proxy/access.js';
import { createCa, issueServerCertificate } from '../../src/tls/ca.js';
import { initLocalCa, type LocalCaFiles } from '../../src/tls/init.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { run, seedImage, startCountingRelay, startRegistry, tempDir, type Registry, type Relay, type SeededImage } from '../support/index.js';
import { collectLog, eventually, type CollectedLog } from '../tls/served.js';
import { connectVia, startWireCounter, type WireCounter } from './support.js';

const SECRET = 'proxy-pw-5521';

let registry: Registry;
let tool: SeededImage;
let relay: Relay;
let ca: LocalCaFiles;
/** A CA file that is not regmirror's: what a client that was never given regmirror's CA trusts. */
let otherCaFile: string;
/** An HTTPS server that is no registry, on loopback; each connection's bytes as it saw them. */
let elsewhere: Server;
let elsewherePort: number;
const elsewhereConnections: { bytesRead: number; bytesWritten: number }[] = [];
let mirror: TestMirror;
let log: CollectedLog;
let wire: WireCounter;
let home: string;

beforeAll(async () => {
  registry = await startRegistry();
  tool = await seedImage(registry, { repo: 'team/tool', tag: '1.0', layerSizes: [90_000, 20_000] });
  relay = await startCountingRelay(registry.url);
  const dir = tempDir('proxy-accounting');
  ca = (await initLocalCa({ dir: join(dir, 'tls'), names: ['127.0.0.1'] })).files;
  const otherCa = await createCa({ commonName: 'another CA', days: 2 });
  otherCaFile = join(dir, 'other-ca.crt');
  writeFileSync(otherCaFile, otherCa.cert);
  elsewhere = createServer(await issueServerCertificate(otherCa, { names: ['127.0.0.1'], days: 1 }), (_req, res) => res.end('elsewhere'));
  elsewhere.on('connection', (socket: import('node:net').Socket) => socket.once('close', () => elsewhereConnections.push({ bytesRead: socket.bytesRead, bytesWritten: socket.bytesWritten })));
  await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
  elsewherePort = (elsewhere.address() as AddressInfo).port;
  log = collectLog();
  mirror = await startTestMirror({
    upstreams: { 'ghcr.io': { url: relay.url } },
    proxy: { hosts: ['ghcr.io', `127.0.0.1:${elsewherePort}`], caCert: ca.caCert, caKey: ca.caKey },
    logStream: log.stream,
  });
  wire = await startWireCounter(mirror.proxyHost!);
  home = tempDir('proxy-accounting-home');
  writeFileSync(join(home, 'auth.json'), '{}');
  writeFileSync(join(home, 'registries.conf'), '');
});

afterAll(async () => {
  await wire?.stop();
  await mirror?.close();
  await new Promise((resolve) => elsewhere?.close(resolve));
  await relay?.stop();
  await registry?.stop();
});

/** Every series on /metrics, by its exact name and labels as printed. */
async function scrape(): Promise<Map<string, number>> {
  const res = await request(`${mirror.url}/metrics`);
  const text = await res.body.text();
  return new Map(text.split('\n').filter((line) => line.startsWith('regmirror_proxy_')).map((line) => {
    const at = line.lastIndexOf(' ');
    return [line.slice(0, at), Number(line.slice(at + 1))];
  }));
}

/** How much each proxy series moved since `before` (series that did not move are left out). */
async function movedSince(before: Map<string, number>): Promise<Record<string, number>> {
  const moved: Record<string, number> = {};
  for (const [series, value] of await scrape()) {
    if (value !== (before.get(series) ?? 0)) moved[series] = value - (before.get(series) ?? 0);
  }
  return moved;
}

const accessLines = (): ConnectRecord[] => log.entries('proxy: CONNECT').filter((e) => e.msg === 'proxy: CONNECT') as unknown as ConnectRecord[];

/**
 * Runs `client` and waits until the proxy has accounted for as many CONNECTs as the wire carried;
 * returns what moved on /metrics, the new access-log lines and the new wire records.
 */
async function observe(client: () => Promise<unknown>): Promise<{ moved: Record<string, number>; lines: ConnectRecord[]; connections: WireCounter['done'] }> {
  const before = await scrape();
  const [linesBefore, wireBefore] = [accessLines().length, wire.done.length];
  await client();
  const connections = await eventually(async () => (wire.open() === 0 ? wire.done.slice(wireBefore) : undefined), 5_000, 'the client connections to end');
  const lines = await eventually(async () => (accessLines().length - linesBefore === connections.length ? accessLines().slice(linesBefore) : undefined), 5_000, 'one access-log line per CONNECT');
  return { moved: await movedSince(before), lines, connections };
}

/** What a client needs besides its proxy: no user credentials, no system registries.conf. */
const clientEnv = (): NodeJS.ProcessEnv => ({ HOME: home, REGISTRY_AUTH_FILE: join(home, 'auth.json'), CONTAINERS_REGISTRIES_CONF: join(home, 'registries.conf'), NO_PROXY: '', no_proxy: '' });

const curl = (args: string[], proxy = `http://${wire.host}`): Promise<string> => run('curl', ['--silent', '--show-error', '--fail', ...args], { ...clientEnv(), HTTPS_PROXY: proxy });

const skopeo = (args: string[], caFile: string): Promise<string> => run('skopeo', args, { ...clientEnv(), HTTPS_PROXY: `http://${wire.host}`, SSL_CERT_FILE: caFile, SSL_CERT_DIR: home });

/** The connections' bytes, summed, as the access-log lines and the wire saw them. */
const totals = (records: { bytesFromClient: number; bytesToClient: number }[]): { fromClient: number; toClient: number } =>
  records.reduce((sum, r) => ({ fromClient: sum.fromClient + r.bytesFromClient, toClient: sum.toClient + r.bytesToClient }), { fromClient: 0, toClient: 0 });
const wireTotals = (connections: WireCounter['done']): { fromClient: number; toClient: number } =>
  totals(connections.map((c) => ({ bytesFromClient: c.fromClient, bytesToClient: c.toClient })));

/**
 * An intercepted connection's bytes, as logged, are those on the wire but for the TLS close_notify
 * (24 bytes) either side may send as the other leaves, which the one gone never reads.
 */
function expectWireBytes(lines: ConnectRecord[], connections: WireCounter['done']): void {
  const [logged, wired] = [totals(lines), wireTotals(connections)];
  for (const direction of ['fromClient', 'toClient'] as const) {
    expect(Math.abs(logged[direction] - wired[direction]), direction).toBeLessThanOrEqual(24 * connections.length);
  }
}

describe('proxy metrics and access log', () => {
  it('start at zero for the series every proxy has', async () => {
    const series = await scrape();
    expect(series.get('regmirror_proxy_connections_open{outcome="intercepted"}')).toBe(0);
    expect(series.get('regmirror_proxy_connections_open{outcome="tunnelled"}')).toBe(0);
    expect(series.get('regmirror_proxy_tunnel_bytes_total{direction="from_client"}')).toBe(0);
    expect(series.get('regmirror_proxy_tunnel_bytes_total{direction="to_client"}')).toBe(0);
  });

  it('count an intercepted curl session as one CONNECT, logged with the bytes on its connection', async () => {
    const layer = tool.blobs.reduce((a, b) => (a.size > b.size ? a : b));
    const { moved, lines, connections } = await observe(() => curl(['--cacert', ca.caCert, '-H', `Accept: ${tool.mediaType}`, '-o', '/dev/null', `https://ghcr.io/v2/${tool.repo}/manifests/${tool.tag}`, '-o', '/dev/null', `https://ghcr.io/v2/${tool.repo}/blobs/${layer.digest}`]));
    expect(connections).toHaveLength(1); // curl keeps its connection for the second request
    expect(moved).toEqual({ 'regmirror_proxy_connects_total{outcome="intercepted",reason=""}': 1 });
    expect(lines).toEqual([expect.objectContaining({ client: '127.0.0.1', host: 'ghcr.io', outcome: 'intercepted', upstream: 'ghcr.io', ms: expect.any(Number) })]);
    expect(lines[0]!.tls).toBeUndefined();
    expectWireBytes(lines, connections);
    expect(lines[0]!.bytesToClient).toBeGreaterThan(layer.size);
  });

  it('count every CONNECT of a skopeo pull, and none is left open after it', async () => {
    const { moved, lines, connections } = await observe(() => skopeo(['copy', `docker://ghcr.io/${tool.repo}:${tool.tag}`, `dir:${tempDir('accounting-pull')}`], ca.caCert));
    expect(moved).toEqual({ 'regmirror_proxy_connects_total{outcome="intercepted",reason=""}': connections.length });
    expect(lines.map((l) => [l.host, l.outcome, l.tls])).toEqual(connections.map(() => ['ghcr.io', 'intercepted', undefined]));
    expectWireBytes(lines, connections);
  });

  it('count a tunnelled CONNECT and exactly the bytes the host received and sent', async () => {
    const seenBefore = elsewhereConnections.length;
    const { moved, lines } = await observe(() => curl(['--cacert', otherCaFile, '-o', '/dev/null', `https://127.0.0.1:${elsewherePort}/`]));
    const seen = await eventually(async () => elsewhereConnections[seenBefore], 5_000, 'the host to see the connection end');
    expect(seen.bytesRead).toBeGreaterThan(0);
    expect(moved).toEqual({
      'regmirror_proxy_connects_total{outcome="tunnelled",reason=""}': 1,
      'regmirror_proxy_tunnel_bytes_total{direction="from_client"}': seen.bytesRead,
      'regmirror_proxy_tunnel_bytes_total{direction="to_client"}': seen.bytesWritten,
    });
    expect(lines).toEqual([expect.objectContaining({ host: `127.0.0.1:${elsewherePort}`, outcome: 'tunnelled', bytesFromClient: seen.bytesRead, bytesToClient: seen.bytesWritten })]);
  });

  it("count a client that does not trust regmirror's CA as a failed handshake: curl sends unknown-ca", async () => {
    const { moved, lines } = await observe(() => expect(curl(['--cacert', otherCaFile, 'https://ghcr.io/v2/'])).rejects.toThrow(/certificate/));
    expect(moved).toEqual({
      'regmirror_proxy_connects_total{outcome="intercepted",reason=""}': 1,
      'regmirror_proxy_tls_handshake_failures_total{reason="unknown-ca"}': 1,
    });
    expect(lines).toEqual([expect.objectContaining({ host: 'ghcr.io', outcome: 'intercepted', tls: 'unknown-ca' })]);
  });

  it("and skopeo (Go) too, once for each connection it tried", async () => {
    const { moved, lines, connections } = await observe(() => expect(skopeo(['inspect', '--raw', `docker://ghcr.io/${tool.repo}:${tool.tag}`], otherCaFile)).rejects.toThrow(/certificate/));
    expect(moved).toEqual({
      'regmirror_proxy_connects_total{outcome="intercepted",reason=""}': connections.length,
      'regmirror_proxy_tls_handshake_failures_total{reason="bad-certificate"}': connections.length,
    });
    expect(lines.map((l) => l.tls)).toEqual(connections.map(() => 'bad-certificate'));
  });

  it('count refusals by reason, and never log the proxy credentials or a raw target', async () => {
    const userinfo = `user:${SECRET}`;
    const { moved } = await observe(async () => {
      await expect(curl(['https://example.com/'], `http://${userinfo}@${wire.host}`)).rejects.toThrow(/403/);
      expect((await connectVia(wire.host, `${userinfo}@ghcr.io:443`)).status).toBe(400);
    });
    expect(moved).toEqual({
      'regmirror_proxy_connects_total{outcome="refused",reason="host-not-listed"}': 1,
      'regmirror_proxy_connects_total{outcome="refused",reason="bad-target"}': 1,
    });
    const logged = JSON.stringify(log.entries(''));
    expect(logged).toContain('"reason":"bad-target"');
    expect(logged).not.toContain(SECRET);
    expect(logged).not.toContain(Buffer.from(userinfo).toString('base64'));
  });
});

describe('a mirror without a proxy', () => {
  it('exports no proxy series', async () => {
    const plain = await startTestMirror({ upstreams: { 'ghcr.io': { url: relay.url } } });
    try {
      expect(await (await request(`${plain.url}/metrics`)).body.text()).not.toContain('regmirror_proxy_');
    } finally {
      await plain.close();
    }
  });
});
