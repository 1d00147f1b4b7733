// An HTTPS listener with certificate files from `tls init`: it serves /v2/ and a verified skopeo
// pull, follows replaced files without a restart, keeps its certificate when a replacement is bad,
// and refuses to start on bad files with an error naming the key and the file.
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startMirror } from '../../src/main.js';
import { initLocalCa, type LocalCaResult } from '../../src/tls/init.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { run, seedImage, startRegistry, tempDir, type Registry, type SeededImage } from '../support/index.js';
import { collectLog, eventually, servedCertificate } from './served.js';

let registry: Registry;
let image: SeededImage;
let local: LocalCaResult;
let ca: string;
let mirror: TestMirror;
const log = collectLog();

const read = (path: string): string => readFileSync(path, 'utf8');
const serial = async (): Promise<string> => (await servedCertificate(mirror.host, { ca })).cert.serialNumber;
const fileSerial = (path: string): string => new X509Certificate(read(path)).serialNumber;
const logged = (message: string): boolean => log.entries('tls: ').some((entry) => entry.msg.includes(message) || (entry.err ?? '').includes(message));

beforeAll(async () => {
  registry = await startRegistry();
  image = await seedImage(registry, { repo: 'team/app', tag: 'v1', layerSizes: [200_000, 50_000] });
  local = await initLocalCa({ dir: tempDir('https-listener'), names: ['127.0.0.1', 'localhost'] });
  ca = read(local.files.caCert);
  mirror = await startTestMirror({
    upstreams: { 'quay.io': { url: registry.url } },
    defaultUpstream: 'quay.io',
    tls: { cert: local.files.cert, key: local.files.key, ca: local.files.caCert },
    logStream: log.stream,
  });
});

afterAll(async () => {
  await mirror?.close();
  await registry?.stop();
});

describe('an HTTPS listener with certificate files', () => {
  it('serves /v2/ over HTTPS with the certificate tls init made, and no plain HTTP', async () => {
    expect(mirror.url).toMatch(/^https:\/\//);
    const dispatcher = new Agent({ connect: { ca } });
    const res = await request(`${mirror.url}/v2/`, { dispatcher });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    await dispatcher.close();
    const served = await servedCertificate(mirror.host, { ca });
    expect(served.authorized).toBe(true);
    expect(served.cert.serialNumber).toBe(fileSerial(local.files.cert));
    await expect(request(`http://${mirror.host}/v2/`)).rejects.toThrow();
  });

  it('serves a skopeo pull that verifies the certificate against the CA in a certs dir', async () => {
    const certDir = tempDir('skopeo-certs');
    copyFileSync(local.files.caCert, join(certDir, 'ca.crt'));
    const dest = tempDir('pull');
    await run('skopeo', ['copy', '--src-tls-verify=true', '--src-cert-dir', certDir, `docker://${mirror.host}/team/app:v1`, `dir:${dest}`]);
    for (const blob of image.blobs) {
      expect(read(join(dest, blob.digest.slice('sha256:'.length)))).toBe(read(blob.path));
    }
    // Without the CA, skopeo refuses the mirror: verification is really on.
    await expect(run('skopeo', ['copy', '--src-tls-verify=true', `docker://${mirror.host}/team/app:v1`, `dir:${tempDir('pull')}`])).rejects.toThrow(/certificate/);
  });

  it('serves replaced certificate files without a restart', async () => {
    const before = await serial();
    const renewed = await initLocalCa({ dir: join(local.files.cert, '..'), names: ['127.0.0.1', 'localhost'] });
    expect(renewed.createdCa).toBe(false);
    const expected = fileSerial(renewed.files.cert);
    expect(expected).not.toBe(before);
    await eventually(async () => ((await serial()) === expected ? true : undefined), 5_000, 'the new certificate');
    expect(logged('tls: certificate reloaded')).toBe(true);
  });

  it('keeps the current certificate and logs the error when a replacement is bad', async () => {
    const current = await serial();
    const goodCert = read(local.files.cert);
    writeFileSync(local.files.cert, 'not a certificate\n');
    await eventually(async () => (logged('not a PEM certificate') ? true : undefined), 5_000, 'the error in the log');
    expect(await serial()).toBe(current);

    // A valid certificate with somebody else's key: refused too.
    const other = await initLocalCa({ dir: tempDir('other-ca'), names: ['127.0.0.1'] });
    writeFileSync(local.files.cert, goodCert);
    writeFileSync(local.files.key, read(other.files.key));
    await eventually(async () => (logged('is not the key of the certificate') ? true : undefined), 5_000, 'the mismatch in the log');
    expect(await serial()).toBe(current);
    const errors = log.entries('tls: new certificate files cannot be served; keeping the current certificate');
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors.every((entry) => entry.level === 50)).toBe(true); // error level

    // A good pair again: served.
    const fixed = await initLocalCa({ dir: join(local.files.cert, '..'), names: ['127.0.0.1', 'localhost'] });
    const expected = fileSerial(fixed.files.cert);
    await eventually(async () => ((await serial()) === expected ? true : undefined), 5_000, 'the fixed certificate');
  });
});

describe('slow TLS clients', () => {
  it('cuts off a client that never finishes its handshake after http.headersTimeout', async () => {
    const quick = await startTestMirror({
      upstreams: { 'quay.io': { url: registry.url } },
      tls: { cert: local.files.cert, key: local.files.key },
      http: { headersTimeout: '300ms' },
    });
    try {
      const [host, port] = [quick.host.split(':')[0]!, Number(quick.host.split(':')[1])];
      const started = Date.now();
      const socket = createConnection({ host, port });
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('close', resolve));
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await quick.close();
    }
  });
});

describe('bad certificate files at startup', () => {
  const start = (tls: { cert: string; key: string }): Promise<unknown> => startMirror(parseConfig({
    version: 1,
    listeners: [{ address: '127.0.0.1:0' }, { address: '127.0.0.1:0', tls }],
    storage: { path: tempDir('tls-data') },
    upstreams: { 'quay.io': { url: 'http://127.0.0.1:1' } },
  }), pino({ level: 'silent' }));

  it('names the listener and the file that is missing, unparseable or not the pair', async () => {
    const dir = tempDir('bad-tls');
    const missing = join(dir, 'nope.crt');
    await expect(start({ cert: missing, key: local.files.key })).rejects.toThrow(`config error at listeners[1].tls: cannot read ${missing}: ENOENT`);
    const garbage = join(dir, 'garbage.crt');
    writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await expect(start({ cert: garbage, key: local.files.key })).rejects.toThrow(`config error at listeners[1].tls: ${garbage} is not a PEM certificate`);
    const other = await initLocalCa({ dir: join(dir, 'other'), names: ['127.0.0.1'] });
    await expect(start({ cert: other.files.cert, key: local.files.key })).rejects.toThrow(`config error at listeners[1].tls: ${local.files.key} is not the key of the certificate in ${other.files.cert}`);
    await expect(start({ cert: other.files.cert, key: other.files.cert })).rejects.toThrow(`${other.files.cert} is not a PEM private key`);
  });

  it('rejects incomplete or mixed tls settings in the configuration', () => {
    const parse = (tls: object): unknown => parseConfig({ version: 1, listeners: [{ address: ':5000', tls }], upstreams: { 'quay.io': { url: 'https://quay.io' } } });
    expect(() => parse({ cert: 'a.crt' })).toThrow('config error at listeners[0].tls: needs both cert and key (or acme)');
    expect(() => parse({ cert: 'a.crt', key: 'a.key', acme: { domains: ['m.example'] } })).toThrow('config error at listeners[0].tls: either cert and key (and ca) or acme, not both');
    expect(() => parse({ acme: { domains: ['m.example'], challengeAddress: ':5000' } })).toThrow('config error at listeners[0].tls.acme.challengeAddress: port 5000 is also listener 0\'s');
    expect(() => parse({ acme: { domains: ['not a name'] } })).toThrow('config error at listeners[0].tls.acme.domains[0]: must be a DNS name');
    expect(() => parse({ cert: 'a.crt', key: 'a.key', chain: 'x' })).toThrow('config error at listeners[0].tls: unknown key "chain"');
  });
});
