// `regmirror config|setup <client> --proxy`: what is printed and written for dockerd, the proxy URL
// and CA from the proxy block or the flags, and the errors for what cannot be done.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.js';
import { runClientCommand } from '../clients/real-client-fixture.js';
import { tempDir } from '../support/index.js';

let dir: string;
let configFile: string;
let ca: string;

beforeAll(() => {
  dir = tempDir('proxy-config');
  configFile = join(dir, 'regmirror.yaml');
  ca = join(dir, 'ca.crt');
  writeFileSync(ca, 'the CA\n');
  writeFileSync(
    configFile,
    [
      'version: 1',
      'listeners: [{ address: "0.0.0.0:5000" }]',
      `proxy: { listen: "10.0.0.5:3128", hosts: [ghcr.io, "*.docker.io"], caCert: ${JSON.stringify(ca)} }`,
      'upstreams:',
      '  docker.io: { url: "https://registry-1.docker.io", hosts: [registry-1.docker.io] }',
      '  ghcr.io: { url: "https://ghcr.io" }',
      '  quay.io: { url: "https://quay.io" }',
      '',
    ].join('\n'),
  );
});

const cli = (...args: string[]) => runClientCommand([...args, '--config', configFile]);

describe('config docker --proxy', () => {
  it('prints the systemd drop-in and the CA copies for the intercepted hosts, and what to restart', async () => {
    const { out, err } = await cli('config', 'docker', '--proxy');
    expect(out).toContain('# ==> /etc/systemd/system/docker.service.d/regmirror-proxy.conf\n');
    expect(out).toContain('Environment="HTTPS_PROXY=http://10.0.0.5:3128"');
    expect(out).toMatch(/Environment="NO_PROXY=localhost,127\.0\.0\.0\/8,::1,[^"]+"/);
    expect(out).toContain(`# ==> /etc/docker/certs.d/ghcr.io/ca.crt: a copy of ${ca}`);
    expect(out).toContain(`# ==> /etc/docker/certs.d/registry-1.docker.io/ca.crt: a copy of ${ca}`);
    expect(out).not.toContain('quay.io'); // mirrored, but not listed in proxy.hosts
    expect(err).toContain('# then: systemctl daemon-reload\n# then: systemctl restart docker');
  });

  it('takes the proxy URL and the CA from the flags', async () => {
    const { out } = await cli('config', 'docker', '--proxy', 'http://proxy.lan:8080', '--ca', '/etc/other-ca.crt');
    expect(out).toContain('Environment="HTTPS_PROXY=http://proxy.lan:8080"');
    expect(out).toContain('# ==> /etc/docker/certs.d/ghcr.io/ca.crt: a copy of /etc/other-ca.crt');
  });

  it('setup --apply writes the drop-in and the CA copies under --root', async () => {
    const root = tempDir('proxy-setup-root');
    const { out } = await cli('setup', 'docker', '--proxy', '--root', root, '--apply');
    expect(out).toContain('reload: systemctl restart docker');
    expect(readFileSync(join(root, 'etc/systemd/system/docker.service.d/regmirror-proxy.conf'), 'utf8')).toContain('[Service]\nEnvironment="HTTPS_PROXY=http://10.0.0.5:3128"');
    expect(readFileSync(join(root, 'etc/docker/certs.d/registry-1.docker.io/ca.crt'), 'utf8')).toBe('the CA\n');
    expect((await cli('setup', 'docker', '--proxy', '--root', root, '--apply')).out).toContain('already set up');
  });

  it('refuses clients without a proxy variant, a configuration without a proxy block, and a bad URL', async () => {
    const rejection = async (promise: Promise<unknown>): Promise<string> => {
      const err = await promise.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    };
    expect(await rejection(cli('config', 'k3s', '--proxy'))).toMatch(/--proxy: not for k3s/);
    expect(await rejection(cli('config', 'docker', '--proxy', 'https://proxy.lan:8080'))).toMatch(/must be http:\/\/host:port/);
    const bare = join(dir, 'bare.yaml');
    writeFileSync(bare, 'version: 1\nupstreams: { ghcr.io: { url: "https://ghcr.io" } }\n');
    expect(await rejection(runClientCommand(['config', 'podman', '--proxy', '--config', bare]))).toMatch(/no proxy block/);
  });
});
