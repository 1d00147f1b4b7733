// `regmirror config` and `regmirror setup` on a temp root: printing, writing, diffs, merges into
// existing files, backups, idempotence, and refusing what cannot be done safely.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { registerClientConfig, registerSetup } from '../../src/cli/client-config.js';
import { ConfigError } from '../../src/config/load.js';
import { tempDir } from '../support/index.js';
import { runClientCommand } from './real-client-fixture.js';

let configFile: string;
const MIRROR = 'http://mirror.internal:5000';

beforeAll(() => {
  configFile = join(tempDir('cli-config'), 'regmirror.yaml');
  writeFileSync(
    configFile,
    'version: 1\nlisteners: [{ address: "0.0.0.0:5000" }]\nrouting: { defaultUpstream: docker.io }\nupstreams:\n  docker.io: { url: "https://registry-1.docker.io" }\n  ghcr.io: { url: "https://ghcr.io" }\n',
  );
});

const cli = (...args: string[]) => runClientCommand([...args, '--config', configFile]);

/** A temp root holding the given files (paths relative to /). */
function rootWith(files: Record<string, string> = {}): string {
  const root = tempDir('setup-root');
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

const read = (root: string, path: string): string => readFileSync(join(root, path), 'utf8');
const backups = (root: string, path: string): string[] =>
  readdirSync(dirname(join(root, path))).filter((name) => name.startsWith(`${path.split('/').pop()}.regmirror-backup-`));

async function rejection(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ConfigError);
  return (err as Error).message;
}

describe('regmirror config', () => {
  it('prints several files with a header each, and where they go and how to reload on stderr', async () => {
    const { out, err } = await cli('config', 'containerd', '--url', MIRROR);
    expect(out).toContain('# ==> /etc/containerd/certs.d/docker.io/hosts.toml\n');
    expect(out).toContain('# ==> /etc/containerd/certs.d/ghcr.io/hosts.toml\n');
    expect(out).toContain('[host."http://mirror.internal:5000"]');
    expect(err).toContain('# then: systemctl restart containerd');
    const config = out.slice(out.indexOf('# ==> /etc/containerd/config.toml'));
    expect(parseToml(config)).toMatchObject({ plugins: { 'io.containerd.grpc.v1.cri': { registry: { config_path: '/etc/containerd/certs.d' } } } });
  });

  it('prints a single file bare, so it can be redirected', async () => {
    const { out, err } = await cli('config', 'docker', '--url', MIRROR);
    expect(JSON.parse(out)).toEqual({ 'registry-mirrors': [MIRROR], 'insecure-registries': ['mirror.internal:5000'] });
    expect(err).toContain('# goes to /etc/docker/daemon.json');
    expect(err).toMatch(/registry-mirrors for Docker Hub only/);
  });

  it('writes the files under --write DIR, laid out as in the client folder', async () => {
    const dir = tempDir('written');
    const { out } = await cli('config', 'containerd', '--url', MIRROR, '--wildcard', '--write', dir);
    expect(out.trim().split('\n').sort()).toEqual(['config.toml', 'certs.d/_default/hosts.toml', 'certs.d/docker.io/hosts.toml', 'certs.d/ghcr.io/hosts.toml'].map((p) => join(dir, p)).sort());
    expect(parseToml(read(dir, 'config.toml'))).toMatchObject({ plugins: { 'io.containerd.grpc.v1.cri': { registry: { config_path: join(dir, 'certs.d') } } } });
  });

  it('uses the listener address, with this host\'s name for 0.0.0.0, when --url is not given', async () => {
    const { out } = await cli('config', 'k3s');
    const endpoint = (parseYaml(out) as { mirrors: Record<string, { endpoint: string[] }> }).mirrors['ghcr.io']!.endpoint[0]!;
    expect(endpoint).toMatch(/^http:\/\/[^/]+:5000$/);
    expect(endpoint).not.toContain('0.0.0.0');
  });

  it('reaches each listener as its own tls says, with its CA made absolute', async () => {
    const mixed = join(tempDir('cli-config'), 'mixed.yaml');
    writeFileSync(
      mixed,
      'version: 1\nlisteners:\n  - { address: "0.0.0.0:5000" }\n  - { address: "0.0.0.0:5001", upstream: docker.io, tls: { cert: tls/m.crt, key: tls/m.key, ca: tls/ca.crt } }\n' +
        'upstreams:\n  docker.io: { url: "https://registry-1.docker.io" }\n  ghcr.io: { url: "https://ghcr.io" }\n',
    );
    const { out } = await runClientCommand(['config', 'docker', '--config', mixed, '--url', MIRROR]);
    expect(out).toContain(`# ==> /etc/docker/certs.d/mirror.internal:5001/ca.crt: a copy of ${join(process.cwd(), 'tls/ca.crt')}\n`);
    expect(JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1))).toEqual({ 'registry-mirrors': ['https://mirror.internal:5001'], 'insecure-registries': ['mirror.internal:5000'] });
  });

  it('refuses a bad --url or CA with a one-line ConfigError', async () => {
    expect(await rejection(cli('config', 'podman', '--url', 'mirror:5000'))).toBe('regmirror: --url "mirror:5000": must be http or https');
    expect(await rejection(cli('config', 'podman', '--url', MIRROR, '--ca', '/ca.pem'))).toMatch(/--ca needs an https mirror URL/);
  });
});

describe('--help', () => {
  const program = new Command('regmirror');
  registerClientConfig(program);
  registerSetup(program);
  const help = (name: string): string => program.commands.find((c) => c.name() === name)!.helpInformation().replace(/\s+/g, ' ');

  it('says what --ca is for a mirror and for the proxy, with each default', () => {
    for (const name of ['config', 'setup']) {
      expect(help(name)).toContain("--ca <file> CA certificate clients should trust: for the mirror's https URL and listeners (default: each listener's tls.ca); with --proxy, the CA of the proxy's certificates (default: proxy.caCert)");
    }
  });

  it('gives the --root default once', () => {
    expect(help('setup')).toContain('--root <dir> treat <dir> as the filesystem root: for tests and images (default: "/")');
  });
});

describe('regmirror setup', () => {
  it('shows the change as a diff and writes nothing without --apply', async () => {
    const root = rootWith({ 'etc/docker/daemon.json': '{ "log-driver": "journald" }\n' });
    const { out, err } = await cli('setup', 'docker', '--url', MIRROR, '--root', root);
    expect(out).toContain('--- a/etc/docker/daemon.json');
    expect(out).toContain('+  "registry-mirrors": [');
    expect(err).toContain('run again with --apply');
    expect(read(root, 'etc/docker/daemon.json')).toBe('{ "log-driver": "journald" }\n');
    expect(backups(root, 'etc/docker/daemon.json')).toEqual([]);
  });

  it('applies containerd: creates hosts.toml files, edits config.toml in place with a backup, and is idempotent', async () => {
    const config = '# site settings\nversion = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = ""\n';
    const root = rootWith({ 'etc/containerd/config.toml': config });
    const { out } = await cli('setup', 'containerd', '--url', MIRROR, '--root', root, '--apply');
    expect(out).toContain(`created ${join(root, 'etc/containerd/certs.d/docker.io/hosts.toml')}`);
    expect(out).toMatch(/updated .*config\.toml \(backup: .*config\.toml\.regmirror-backup-\d{8}T\d{6}Z\)/);
    expect(out).toContain('reload: systemctl restart containerd');
    expect(read(root, 'etc/containerd/config.toml')).toBe(config.replace('config_path = ""', 'config_path = "/etc/containerd/certs.d"'));
    expect(read(root, 'etc/containerd/certs.d/ghcr.io/hosts.toml')).toContain('server = "https://ghcr.io"');
    const [saved] = backups(root, 'etc/containerd/config.toml');
    expect(readFileSync(join(root, 'etc/containerd', saved!), 'utf8')).toBe(config);

    const again = await cli('setup', 'containerd', '--url', MIRROR, '--root', root, '--apply');
    expect(again.out).toBe('containerd is already set up for this mirror: nothing to change.\n');
    expect(backups(root, 'etc/containerd/config.toml')).toHaveLength(1);
  });

  it('does not ask for a restart when only hosts.toml files change', async () => {
    const root = rootWith({ 'etc/containerd/config.toml': 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n' });
    const { out } = await cli('setup', 'containerd', '--url', MIRROR, '--root', root, '--apply');
    expect(out).toContain('nothing to reload');
    expect(out).not.toContain('created ' + join(root, 'etc/containerd/config.toml'));
  });

  it('applies docker: merges daemon.json, keeps a backup, prints the reload', async () => {
    const root = rootWith({ 'etc/docker/daemon.json': '{ "log-driver": "journald", "insecure-registries": ["10.0.0.0/8"] }\n' });
    const { out } = await cli('setup', 'docker', '--url', MIRROR, '--root', root, '--apply');
    expect(JSON.parse(read(root, 'etc/docker/daemon.json'))).toEqual({
      'log-driver': 'journald',
      'insecure-registries': ['10.0.0.0/8', 'mirror.internal:5000'],
      'registry-mirrors': [MIRROR],
    });
    expect(backups(root, 'etc/docker/daemon.json')).toHaveLength(1);
    expect(out).toContain('reload: systemctl reload docker');
  });

  it('applies podman with a CA: the drop-in and the CA under certs.d, nothing to reload', async () => {
    const ca = join(tempDir('ca'), 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const root = rootWith();
    const { out } = await cli('setup', 'podman', '--url', 'https://cache.example.com', '--ca', ca, '--root', root, '--apply');
    expect(read(root, 'etc/containers/registries.conf.d/regmirror.conf')).toContain('location = "cache.example.com/ghcr.io"');
    expect(read(root, 'etc/containers/certs.d/cache.example.com/ca.crt')).toBe(readFileSync(ca, 'utf8'));
    expect(out).toContain('nothing to reload: podman reads these files at every pull.');
  });

  it('applies k3s and rke2 to their own folders', async () => {
    const root = rootWith({ 'etc/rancher/k3s/registries.yaml': '# mine\nconfigs:\n  other:\n    tls: { insecure_skip_verify: true }\n' });
    await cli('setup', 'k3s', '--url', MIRROR, '--root', root, '--apply');
    await cli('setup', 'rke2', '--url', MIRROR, '--root', root, '--apply');
    const k3s = read(root, 'etc/rancher/k3s/registries.yaml');
    expect(k3s).toContain('# mine');
    expect(parseYaml(k3s)).toMatchObject({ mirrors: { 'docker.io': { endpoint: [MIRROR] } }, configs: { other: { tls: { insecure_skip_verify: true } } } });
    expect(parseYaml(read(root, 'etc/rancher/rke2/registries.yaml'))).toMatchObject({ mirrors: { 'ghcr.io': { endpoint: [MIRROR] } } });
  });

  it('refuses to touch a file it cannot parse, and writes nothing', async () => {
    const root = rootWith({ 'etc/buildkit/buildkitd.toml': 'debug = \n' });
    expect(await rejection(cli('setup', 'buildkit', '--url', MIRROR, '--root', root, '--apply'))).toMatch(/buildkitd.toml is not valid TOML/);
    expect(read(root, 'etc/buildkit/buildkitd.toml')).toBe('debug = \n');
    expect(existsSync(join(root, 'etc/buildkit/buildkitd.toml.regmirror-tmp'))).toBe(false);
  });
});

describe('the regmirror command', () => {
  it('runs config from the command line, and exits 2 on a client that cannot use the mirror', () => {
    const main = join(dirname(new URL(import.meta.url).pathname), '../../src/cli/main.ts');
    const ok = spawnSync(process.execPath, ['--import', 'tsx', main, 'config', 'buildkit', '--config', configFile, '--url', MIRROR], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(parseToml(ok.stdout)).toMatchObject({ registry: { 'ghcr.io': { mirrors: ['mirror.internal:5000/ghcr.io'] }, 'mirror.internal:5000': { http: true } } });
    const noHub = join(tempDir('cli-config'), 'ghcr-only.yaml');
    writeFileSync(noHub, 'version: 1\nupstreams: { ghcr.io: { url: "https://ghcr.io" } }\n');
    const bad = spawnSync(process.execPath, ['--import', 'tsx', main, 'config', 'docker', '--config', noHub], { encoding: 'utf8' });
    expect([bad.status, bad.stderr.trim()]).toEqual([2, 'regmirror: dockerd mirrors only Docker Hub, and this mirror does not serve docker.io']);
  });
});

describe('config and setup for a mirror that requires a login', () => {
  let loginConfig: string;
  let passwordFile: string;
  const PASSWORD = 'pull only: s3cret';
  const main = join(dirname(new URL(import.meta.url).pathname), '../../src/cli/main.ts');

  beforeAll(() => {
    const dir = tempDir('cli-login');
    const htpasswd = spawnSync('htpasswd', ['-Bbn', '-C', '5', 'builder', PASSWORD], { encoding: 'utf8' });
    writeFileSync(join(dir, 'users.htpasswd'), htpasswd.stdout);
    passwordFile = join(dir, 'password');
    writeFileSync(passwordFile, `${PASSWORD}\n`);
    loginConfig = join(dir, 'regmirror.yaml');
    writeFileSync(loginConfig, readFileSync(configFile, 'utf8') + `access: { htpasswd: ${JSON.stringify(join(dir, 'users.htpasswd'))} }\n`);
  });

  const login = (...args: string[]) => runClientCommand([...args, '--config', loginConfig, '--url', MIRROR]);
  const mode = (root: string, path: string): number => statSync(join(root, path)).mode & 0o777;

  it('says what is missing when no credentials are given', async () => {
    expect(await rejection(login('config', 'k3s'))).toMatch(/requires a login \(access\.htpasswd\).*--username USER with --password-file FILE \(- for stdin\), or set REGMIRROR_USERNAME and REGMIRROR_PASSWORD/);
    expect(await rejection(login('config', 'k3s', '--username', 'builder'))).toMatch(/--username builder needs a password/);
  });

  it('refuses a password the htpasswd file does not accept', async () => {
    const wrong = join(tempDir('cli-login'), 'wrong');
    writeFileSync(wrong, 'nope\n');
    expect(await rejection(login('config', 'k3s', '--username', 'builder', '--password-file', wrong))).toMatch(/does not accept this password for builder/);
  });

  it('setup --apply writes the files holding the password 0600, backups too, and a second run changes nothing', async () => {
    const root = rootWith({ 'etc/rancher/k3s/registries.yaml': '# mine\nmirrors: {}\n' });
    const creds = ['--username', 'builder', '--password-file', passwordFile, '--root', root, '--apply'];
    await login('setup', 'k3s', ...creds);
    await login('setup', 'containerd', ...creds);
    await login('setup', 'podman', ...creds);
    expect(parseYaml(read(root, 'etc/rancher/k3s/registries.yaml'))).toMatchObject({ configs: { 'mirror.internal:5000': { auth: { username: 'builder', password: PASSWORD } } } });
    expect(mode(root, 'etc/rancher/k3s/registries.yaml')).toBe(0o600);
    expect(mode(root, `etc/rancher/k3s/${backups(root, 'etc/rancher/k3s/registries.yaml')[0]!}`)).toBe(0o600);
    expect(mode(root, 'etc/containerd/certs.d/ghcr.io/hosts.toml')).toBe(0o600);
    expect(mode(root, 'etc/containerd/config.toml')).toBe(0o644);
    expect(mode(root, 'etc/containers/regmirror-auth.json')).toBe(0o600);
    expect(mode(root, 'etc/containers/registries.conf.d/regmirror.conf')).toBe(0o644);
    expect((await login('setup', 'k3s', ...creds)).out).toBe('k3s is already set up for this mirror: nothing to change.\n');
  });

  it('takes the credentials from REGMIRROR_USERNAME and REGMIRROR_PASSWORD, or the password from stdin', () => {
    const env = { ...process.env, REGMIRROR_USERNAME: 'builder', REGMIRROR_PASSWORD: PASSWORD };
    const fromEnv = spawnSync(process.execPath, ['--import', 'tsx', main, 'config', 'k3s', '--config', loginConfig, '--url', MIRROR], { encoding: 'utf8', env });
    expect(fromEnv.status).toBe(0);
    expect(parseYaml(fromEnv.stdout)).toMatchObject({ configs: { 'mirror.internal:5000': { auth: { username: 'builder', password: PASSWORD } } } });
    const fromStdin = spawnSync(process.execPath, ['--import', 'tsx', main, 'config', 'podman', '--config', loginConfig, '--url', MIRROR, '--username', 'builder', '--password-file', '-'], {
      encoding: 'utf8',
      input: `${PASSWORD}\n`,
    });
    expect(fromStdin.status).toBe(0);
    expect(fromStdin.stdout).toContain(Buffer.from(`builder:${PASSWORD}`).toString('base64'));
  });
});
