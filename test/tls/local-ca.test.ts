// `regmirror tls init`: the CA and server certificate it writes are valid, a second run keeps the
// CA, and what it prints names the files and each client's place for the CA.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerTls, tlsInitReport } from '../../src/cli/tls.js';
import { initLocalCa } from '../../src/tls/init.js';
import { run, tempDir } from '../support/index.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const read = (path: string): string => readFileSync(path, 'utf8');

describe('tls init', () => {
  it('writes a CA and a server certificate for the names and IPs, signed by it, with matching keys', async () => {
    const dir = join(tempDir('tls-init'), 'tls');
    const result = await initLocalCa({ dir, names: ['mirror.lan', '10.1.2.3', '::1', 'localhost'] });
    expect(result.createdCa).toBe(true);

    const ca = new X509Certificate(read(result.files.caCert));
    const server = new X509Certificate(read(result.files.cert));
    expect(ca.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(ca.checkPrivateKey(createPrivateKey(read(result.files.caKey)))).toBe(true);
    expect(server.checkPrivateKey(createPrivateKey(read(result.files.key)))).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.checkIssued(ca)).toBe(true);
    expect(server.subjectAltName).toBe('DNS:mirror.lan, IP Address:10.1.2.3, IP Address:0:0:0:0:0:0:0:1, DNS:localhost');
    expect(server.checkHost('mirror.lan')).toBe('mirror.lan');
    expect(server.checkIP('10.1.2.3')).toBe('10.1.2.3');
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // serverAuth
    expect(new Date(server.validTo).getTime()).toBe(result.validTo.getTime());
    expect(new Date(server.validFrom).getTime()).toBeLessThan(Date.now());
    expect(statSync(result.files.caKey).mode & 0o077).toBe(0);
    expect(statSync(result.files.key).mode & 0o077).toBe(0);
  });

  it('keeps the existing CA on a second run, and makes a new one only when asked', async () => {
    const dir = tempDir('tls-init');
    const first = await initLocalCa({ dir, names: ['a.lan'] });
    const caBefore = read(first.files.caCert);
    const certBefore = read(first.files.cert);
    const second = await initLocalCa({ dir, names: ['a.lan', 'b.lan'] });
    expect(second.createdCa).toBe(false);
    expect(read(second.files.caCert)).toBe(caBefore);
    expect(read(second.files.cert)).not.toBe(certBefore);
    expect(new X509Certificate(read(second.files.cert)).checkIssued(new X509Certificate(caBefore))).toBe(true);
    const third = await initLocalCa({ dir, names: ['a.lan'], newCa: true });
    expect(third.createdCa).toBe(true);
    expect(read(third.files.caCert)).not.toBe(caBefore);
  });

  it('rejects names that are neither DNS names nor IP addresses', async () => {
    await expect(initLocalCa({ dir: tempDir('tls-init'), names: ['mirror lan', 'ok.lan'] })).rejects.toThrow('"mirror lan" is neither a DNS name nor an IP address');
    await expect(initLocalCa({ dir: tempDir('tls-init'), names: [] })).rejects.toThrow(/at least one name/);
  });

  it('prints the listener settings and, per client, where the CA goes', async () => {
    const dir = tempDir('tls-init');
    const result = await initLocalCa({ dir, names: ['mirror.lan', '::1'] });
    const report = tlsInitReport(result, 5443);
    const ca = result.files.caCert;
    expect(report).toContain(`cert: ${result.files.cert}`);
    expect(report).toContain(`key: ${result.files.key}`);
    expect(report).toContain(`ca: ${ca}`);
    expect(report).toContain(`[host."https://mirror.lan:5443"]`);
    expect(report).toContain(`ca = "${ca}"`);
    expect(report).toContain(`${ca} /etc/docker/certs.d/mirror.lan:5443/ca.crt`);
    expect(report).toContain(`${ca} /etc/docker/certs.d/[::1]:5443/ca.crt`);
    expect(report).toContain(`${ca} /etc/containers/certs.d/mirror.lan:5443/ca.crt`);
    expect(report).toContain(`${ca} /usr/local/share/ca-certificates/regmirror-ca.crt && update-ca-certificates`);
    expect(report).toContain(`regmirror config containerd --url https://mirror.lan:5443 --ca ${ca}`);
  });

  it('runs as `regmirror tls init`', async () => {
    const dir = join(tempDir('tls-cli'), 'certs');
    const out = await run(process.execPath, ['--import', 'tsx', CLI, 'tls', 'init', '--dir', dir, '--port', '5001', 'mirror.lan', '192.168.1.9']);
    expect(out).toContain(`Created a new local CA:       ${join(dir, 'ca.crt')}`);
    expect(out).toContain(`/etc/docker/certs.d/192.168.1.9:5001/ca.crt`);
    expect(new X509Certificate(read(join(dir, 'server.crt'))).checkIP('192.168.1.9')).toBe('192.168.1.9');
  });

  it('refuses a bad name with a plain error and exit code 2', async () => {
    const program = new Command('regmirror').exitOverride().configureOutput({ writeErr: () => {} });
    registerTls(program);
    const parse = program.parseAsync(['tls', 'init', '--dir', tempDir('tls-cli'), 'ok.lan', 'bad name'], { from: 'user' });
    await expect(parse).rejects.toMatchObject({ exitCode: 2, message: 'error: "bad name" is neither a DNS name nor an IP address' });
  });
});
