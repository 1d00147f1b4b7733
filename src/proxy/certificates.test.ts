// Host certificates: one signing per host however many CONNECTs ask at once, a bounded cache, a new
// signing after the CA files are replaced, and a CA that cannot sign refused at start.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { initLocalCa } from '../tls/init.js';
import { tempDir } from '../../test/support/process.js';
import { eventually, servedCertificate } from '../../test/tls/served.js';
import { HostCertificates } from './certificates.js';

const logger = pino({ level: 'silent' });

/** The certificate a TLS server with the host's context presents. */
async function presented(certificates: HostCertificates, host: string): Promise<X509Certificate> {
  const secureContext = await certificates.context(host);
  const server = createServer({ SNICallback: (_name, cb) => cb(null, secureContext) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return (await servedCertificate(`127.0.0.1:${(server.address() as AddressInfo).port}`, { servername: host })).cert;
  } finally {
    server.close();
  }
}

describe('HostCertificates', () => {
  it('signs once per host, however many ask at once, and keeps at most maxHosts', async () => {
    const dir = tempDir('host-certs');
    const { files } = await initLocalCa({ dir, names: ['127.0.0.1'] });
    const maxHosts = 8;
    const certificates = await HostCertificates.open({ caCert: files.caCert, caKey: files.caKey, logger, maxHosts });
    const contexts = await Promise.all([1, 2, 3, 4].map(() => certificates.context('ghcr.io')));
    expect(new Set(contexts).size).toBe(1);
    expect(certificates.minted).toBe(1);
    const cert = await presented(certificates, 'ghcr.io');
    expect(cert.subjectAltName).toBe('DNS:ghcr.io');
    expect(cert.checkIssued(new X509Certificate(readFileSync(files.caCert)))).toBe(true);
    expect(new Date(cert.validTo).getTime() - Date.now()).toBeLessThan(8 * 86_400_000);
    for (let i = 0; i < maxHosts; i++) await certificates.context(`host${i}.example`);
    expect(certificates.minted).toBe(1 + maxHosts);
    await certificates.context('ghcr.io'); // the least recently used: pushed out, signed again
    expect(certificates.minted).toBe(2 + maxHosts);
    await certificates.close();
  });

  it('signs with a replaced CA from then on', async () => {
    const dir = tempDir('host-certs');
    const first = await initLocalCa({ dir, names: ['127.0.0.1'] });
    const certificates = await HostCertificates.open({ caCert: first.files.caCert, caKey: first.files.caKey, logger });
    await certificates.context('quay.io');
    await initLocalCa({ dir, names: ['127.0.0.1'], newCa: true });
    const newCa = new X509Certificate(readFileSync(first.files.caCert));
    await eventually(async () => ((await presented(certificates, 'quay.io')).checkIssued(newCa) ? true : undefined), 5_000, 'a certificate from the new CA');
    await certificates.close();
  });

  it('refuses a certificate that is no CA', async () => {
    const { files } = await initLocalCa({ dir: tempDir('host-certs'), names: ['127.0.0.1'] });
    await expect(HostCertificates.open({ caCert: files.cert, caKey: files.key, logger })).rejects.toThrow(`${files.cert} is not a CA certificate`);
  });
});
