// The CONNECT proxy in-process, with plain-HTTP upstreams behind counting relays: the certificate it
// presents for a registry host, the requests inside served from the same cache as every other route
// (both ways), the tunnel policy (listed hosts, otherHosts, local addresses), the client allow-list,
// verification of upstream certificates, and the start-up errors of a CA that cannot be used.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { request, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.js';
import { createCa, issueServerCertificate } from '../../src/tls/ca.js';
import { initLocalCa, type LocalCaFiles } from '../../src/tls/init.js';
import { captureLog } from '../harness/log.js';
import { startTestMirror, type TestMirror, type TestMirrorOptions } from '../harness/mirror.js';
import { freePort, isBlobGet, isManifestRequest, seedImage, startCountingRelay, startRegistry, tempDir, type Registry, type Relay, type SeededImage } from '../support/index.js';
import { eventually } from '../tls/served.js';
import { certificateVia, connectVia, startTlsFront, throughProxy, type TlsFront } from './support.js';

let registry: Registry;
let tool: SeededImage;
let alpine: SeededImage;
let relays: Record<'ghcr.io' | 'docker.io', Relay>;
let ca: LocalCaFiles;
let caPem: string;
/** An HTTPS server that is no registry, with a certificate from another CA: what a tunnel reaches. */
let elsewhere: Server;
let elsewherePort: number;
let otherCa: { cert: string; key: string };
let mirror: TestMirror;
const opened: { close(): Promise<void> }[] = [];

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json';

async function start(options: Partial<TestMirrorOptions> & Pick<TestMirrorOptions, 'proxy'>): Promise<TestMirror> {
  const started = await startTestMirror({
    upstreams: { 'docker.io': { url: relays['docker.io'].url, hosts: ['registry-1.docker.io'] }, 'ghcr.io': { url: relays['ghcr.io'].url } },
    ...options,
  });
  opened.push(started);
  return started;
}

beforeAll(async () => {
  registry = await startRegistry();
  [tool, alpine] = await Promise.all([
    seedImage(registry, { repo: 'team/tool', tag: '1.0', layerSizes: [120_000, 30_000] }),
    seedImage(registry, { repo: 'library/alpine', tag: '3.17', layerSizes: [80_000], format: 'v2s2' }),
  ]);
  relays = { 'ghcr.io': await startCountingRelay(registry.url), 'docker.io': await startCountingRelay(registry.url) };
  ca = (await initLocalCa({ dir: tempDir('proxy-ca'), names: ['127.0.0.1'] })).files;
  caPem = readFileSync(ca.caCert, 'utf8');
  otherCa = await createCa({ commonName: 'another CA', days: 2 });
  elsewhere = createServer(await issueServerCertificate(otherCa, { names: ['localhost', '127.0.0.1'], days: 1 }), (_req, res) => res.end('elsewhere'));
  await new Promise<void>((resolve) => elsewhere.listen(0, resolve)); // every interface: reached by name and by address
  elsewherePort = (elsewhere.address() as AddressInfo).port;
  mirror = await start({ proxy: { hosts: ['ghcr.io', '*.docker.io', `localhost:${elsewherePort}`], caCert: ca.caCert, caKey: ca.caKey } });
});

afterAll(async () => {
  await Promise.all(opened.map((m) => m.close()));
  await new Promise((resolve) => elsewhere?.close(resolve));
  await Promise.all(Object.values(relays ?? {}).map((r) => r.stop()));
  await registry?.stop();
});

/** GETs a URL; resolves with status, cache outcome and body. */
async function get(url: string, dispatcher?: Dispatcher): Promise<{ status: number; cache: unknown; body: Buffer }> {
  const res = await request(url, { headers: { accept: ACCEPT }, ...(dispatcher ? { dispatcher } : {}) });
  return { status: res.statusCode, cache: res.headers['x-regmirror-cache'], body: Buffer.from(await res.body.arrayBuffer()) };
}

/** Pulls an image's manifest and blobs from `base` (…/v2 plus any prefix); returns the cache outcomes. */
async function pull(base: string, image: SeededImage, query = '', dispatcher?: Dispatcher): Promise<unknown[]> {
  const manifest = await get(`${base}/${image.repo}/manifests/${image.tag}${query}`, dispatcher);
  expect(manifest.status).toBe(200);
  const outcomes = [manifest.cache];
  for (const blob of image.blobs) {
    const got = await get(`${base}/${image.repo}/blobs/${blob.digest}${query}`, dispatcher);
    expect(got.body.equals(readFileSync(blob.path)), blob.digest).toBe(true);
    outcomes.push(got.cache);
  }
  return outcomes;
}

/** Waits until every blob of the image is stored (a blob just downloaded is committed after its last byte). */
async function committed(base: string, image: SeededImage, query: string, dispatcher?: Dispatcher): Promise<void> {
  for (const blob of image.blobs) {
    await eventually(async () => {
      const res = await request(`${base}/${image.repo}/blobs/${blob.digest}${query}`, { method: 'HEAD', ...(dispatcher ? { dispatcher } : {}) });
      await res.body.dump();
      return res.headers['x-regmirror-cache'] === 'hit' ? true : undefined;
    }, 5_000, `${blob.digest} stored`);
  }
}

const upstreamRequests = (relay: Relay): number => relay.count((r) => isBlobGet(r) || isManifestRequest(r));

describe('a CONNECT to a registry host regmirror mirrors', () => {
  it('is answered with a certificate for that host, signed by regmirror\'s CA, and signed once', async () => {
    const caCert = new X509Certificate(caPem);
    const first = await certificateVia(mirror.proxyHost!, 'ghcr.io:443', caPem);
    expect(first.authorized).toBe(true);
    expect(first.cert.checkIssued(caCert)).toBe(true);
    expect(first.cert.issuer).toBe(caCert.subject);
    expect(first.cert.subjectAltName).toBe('DNS:ghcr.io');
    const again = await certificateVia(mirror.proxyHost!, 'ghcr.io:443', caPem);
    expect(again.cert.serialNumber).toBe(first.cert.serialNumber);
    const hub = await certificateVia(mirror.proxyHost!, 'registry-1.docker.io:443', caPem);
    expect(hub.authorized).toBe(true);
    expect(hub.cert.subjectAltName).toBe('DNS:registry-1.docker.io');
  });

  it('serves the requests inside from the cache: a pull through the proxy is a hit by path prefix and ?ns= after', async () => {
    const proxy = throughProxy(mirror.proxyHost!, caPem);
    expect(await pull('https://ghcr.io/v2', tool, '', proxy)).toEqual(['miss', ...tool.blobs.map(() => 'miss')]);
    expect(relays['ghcr.io'].count(isBlobGet)).toBe(tool.blobs.length);
    await committed('https://ghcr.io/v2', tool, '', proxy);
    relays['ghcr.io'].reset();
    expect(await pull(`${mirror.url}/v2/ghcr.io`, tool)).toEqual(['hit', ...tool.blobs.map(() => 'hit')]);
    expect(await pull(`${mirror.url}/v2`, tool, '?ns=ghcr.io')).toEqual(['hit', ...tool.blobs.map(() => 'hit')]);
    expect(await pull('https://ghcr.io/v2', tool, '', proxy)).toEqual(['hit', ...tool.blobs.map(() => 'hit')]);
    expect(upstreamRequests(relays['ghcr.io'])).toBe(0);
    await proxy.close();
  });

  it('and the other way round: Docker Hub pulled with ?ns= first is a hit through registry-1.docker.io', async () => {
    await pull(`${mirror.url}/v2`, alpine, '?ns=docker.io');
    await committed(`${mirror.url}/v2`, alpine, '?ns=docker.io');
    relays['docker.io'].reset();
    const proxy = throughProxy(mirror.proxyHost!, caPem);
    expect(await pull('https://registry-1.docker.io/v2', alpine, '', proxy)).toEqual(['hit', ...alpine.blobs.map(() => 'hit')]);
    expect(upstreamRequests(relays['docker.io'])).toBe(0);
    // The base request a client pings first is answered by regmirror, not by Docker Hub's challenge.
    expect((await get('https://registry-1.docker.io/v2/', proxy)).status).toBe(200);
    await proxy.close();
  });
});

describe('a reload', () => {
  it('changes which hosts a proxy without proxy.hosts intercepts: every upstream, as the reload leaves them', async () => {
    const own = await start({ proxy: { caCert: ca.caCert, caKey: ca.caKey } });
    expect((await connectVia(own.proxyHost!, 'quay.io:443')).status).toBe(403);
    const upstreams = { 'ghcr.io': { url: relays['ghcr.io'].url }, 'quay.io': { url: relays['ghcr.io'].url } };
    expect(own.reload({ upstreams })).toMatchObject({ applied: true, changes: { added: ['quay.io'], removed: ['docker.io'] } });
    const quay = await certificateVia(own.proxyHost!, 'quay.io:443', caPem);
    expect(quay.authorized).toBe(true);
    expect(quay.cert.subjectAltName).toBe('DNS:quay.io');
    for (const host of ['registry-1.docker.io:443', 'docker.io:443']) expect((await connectVia(own.proxyHost!, host)).status, host).toBe(403);
  });
});

describe('other CONNECTs', () => {
  it('refuse a host outside the list (otherHosts: refuse), another port, and a malformed target', async () => {
    for (const target of ['example.com:443', 'ghcr.io:8443', `127.0.0.1:${registry.port}`, 'docker.io:443']) {
      const answer = await connectVia(mirror.proxyHost!, target);
      expect(answer.status, target).toBe(403);
      expect(answer.text).toContain('is not a registry host this proxy serves');
    }
    expect((await connectVia(mirror.proxyHost!, 'no-port')).status).toBe(400);
    const plain = await request(`http://${mirror.proxyHost}/v2/`);
    expect(plain.statusCode).toBe(405);
    await plain.body.dump();
  });

  it('tunnel a listed host that names no upstream untouched: its own certificate, not regmirror\'s', async () => {
    const tunnelled = await certificateVia(mirror.proxyHost!, `localhost:${elsewherePort}`);
    expect(tunnelled.cert.issuer).toBe(new X509Certificate(otherCa.cert).subject);
    expect(tunnelled.cert.checkIssued(new X509Certificate(caPem))).toBe(false);
  });

  it('with otherHosts: tunnel, tunnel any host but one that leads to this machine: loopback or its own LAN address', async () => {
    const closedPort = await freePort();
    const open = await start({ proxy: { hosts: ['ghcr.io', `localhost:${closedPort}`], otherHosts: 'tunnel', caCert: ca.caCert, caKey: ca.caKey } });
    const external = Object.values(networkInterfaces()).flat().find((i) => i?.family === 'IPv4' && !i.internal)?.address;
    expect(external, 'a non-loopback IPv4 address on this machine').toBeDefined();
    // The answers say why in fixed words: never the addresses a name led to, nor the connection's error.
    const body = (text: string): string => text.slice(text.indexOf('\r\n\r\n') + 4);
    for (const target of [`127.0.0.1:${elsewherePort}`, `localhost:${elsewherePort}`, `[::1]:${elsewherePort}`, `${external}:${elsewherePort}`]) {
      const answer = await connectVia(open.proxyHost!, target);
      expect([answer.status, body(answer.text)], target).toEqual([403, 'regmirror proxy: this host leads to this machine or a local address\n']);
    }
    // Every other host is tried (this one cannot be resolved): no 403 for not being listed.
    const elsewhereEntirely = await connectVia(open.proxyHost!, 'nothing-here.invalid:443');
    expect([elsewhereEntirely.status, body(elsewhereEntirely.text)]).toEqual([502, 'regmirror proxy: cannot resolve this host\n']);
    const refusing = await connectVia(open.proxyHost!, `localhost:${closedPort}`); // listed, so a local address may be dialled
    expect([refusing.status, body(refusing.text)]).toEqual([502, 'regmirror proxy: cannot connect to this host\n']);
  });

  it('are all refused to a client outside proxy.allow', async () => {
    const closed = await start({ proxy: { allow: ['10.0.0.0/8'], otherHosts: 'tunnel', caCert: ca.caCert, caKey: ca.caKey } });
    for (const target of ['ghcr.io:443', `localhost:${elsewherePort}`]) {
      const answer = await connectVia(closed.proxyHost!, target);
      expect(answer.status).toBe(403);
      expect(answer.text).toContain('this client address is not allowed');
    }
  });
});

describe('slow clients', () => {
  it('are cut off inside a tunnel: a handshake that never ends, a request head that never ends', async () => {
    const open = await start({ http: { headersTimeout: '300ms' }, proxy: { caCert: ca.caCert, caKey: ca.caKey } });
    const silent = await connectVia(open.proxyHost!, 'ghcr.io:443');
    const started = Date.now();
    await new Promise((resolve) => silent.socket.once('close', resolve));
    expect(Date.now() - started).toBeLessThan(3_000);
    const answer = await connectVia(open.proxyHost!, 'ghcr.io:443');
    const tls = connectTls({ socket: answer.socket, servername: 'ghcr.io', ca: caPem });
    await new Promise((resolve) => tls.once('secureConnect', resolve));
    let answered = '';
    tls.on('data', (chunk: Buffer) => (answered += chunk.toString()));
    tls.write('GET /v2/ HTTP/1.1\r\nHost: ghcr.io\r\n'); // and never the end of the head
    const dripping = Date.now();
    await new Promise((resolve) => tls.once('close', resolve));
    expect(Date.now() - dripping).toBeLessThan(3_000);
    expect(answered).toMatch(/^HTTP\/1\.1 408 /);
  });
});

describe('upstream certificates', () => {
  let front: TlsFront;
  afterAll(async () => front?.stop());

  it('are verified: an upstream whose certificate this process does not trust is an error of its own, not a pull, and not retried', async () => {
    const untrusted = await createCa({ commonName: 'untrusted upstream CA', days: 2 });
    front = await startTlsFront(relays['ghcr.io'].url, await issueServerCertificate(untrusted, { names: ['127.0.0.1'], days: 1 }));
    const log = captureLog();
    const open = await start({ upstreams: { 'quay.io': { url: front.url, retries: 2 } }, proxy: { caCert: ca.caCert, caKey: ca.caKey }, logStream: log.stream });
    relays['ghcr.io'].reset();
    const proxy = throughProxy(open.proxyHost!, caPem);
    const answer = await get(`https://quay.io/v2/${tool.repo}/manifests/${tool.tag}`, proxy);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body.toString())).toEqual({ errors: [{ code: 'UPSTREAM_UNAVAILABLE', message: 'upstream quay.io: TLS certificate rejected' }] });
    const failure = log.entries.find((entry) => entry.msg === 'upstream failed');
    expect((failure?.err as { message?: string } | undefined)?.message).toContain('unable to verify the first certificate');
    expect(relays['ghcr.io'].count()).toBe(0);
    // Asked once: two retries would have counted three.
    expect((await get(`${open.url}/metrics`)).body.toString()).toContain('regmirror_upstream_errors_total{upstream="quay.io",failure="tls"} 1\n');
    await proxy.close();
  });
});

describe('a CA that cannot be used', () => {
  it('stops the start with an error naming proxy and the file', async () => {
    const missing = start({ proxy: { caCert: '/nonexistent/ca.crt', caKey: '/nonexistent/ca.key' } });
    await expect(missing).rejects.toThrow(ConfigError);
    await expect(missing).rejects.toThrow('config error at proxy: cannot read /nonexistent/ca.crt: ENOENT');
    const notCa = start({ proxy: { caCert: ca.cert, caKey: ca.key } });
    await expect(notCa).rejects.toThrow(`config error at proxy: ${ca.cert} is not a CA certificate`);
  });

  it('stops it before the cache folder is touched', async () => {
    const dir = tempDir('proxy-bad-ca');
    const garbage = join(dir, 'ca.crt');
    writeFileSync(garbage, 'not a certificate\n');
    const dataDir = join(dir, 'data');
    await expect(start({ dataDir, proxy: { caCert: garbage, caKey: ca.caKey } })).rejects.toThrow(`config error at proxy: ${garbage} is not a PEM certificate`);
    expect(existsSync(dataDir)).toBe(false); // no index, no _spool
  });
});
