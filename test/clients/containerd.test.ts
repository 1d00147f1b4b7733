// containerd 1.6 (Debian's), started with its own root, state and socket, pulls docker.io and ghcr.io
// images with `ctr images pull --hosts-dir` over the certs.d tree `regmirror config containerd`
// writes, and unpacks them with the native snapshotter.
import { closeSync, openSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, isBlobGet, run, spawnTracked, tempDir } from '../support/index.js';
import {
  configWithoutLogin, expectRefusedForLogin, expectServedFromCache, pathsSeen, resetRelays, runClientCommand, startRealClientFixture, type RealClientFixture,
} from './real-client-fixture.js';

let fx: RealClientFixture;
let loginFx: RealClientFixture;
let hostsDir: string;
let ctrAt: (namespace: string, ...args: string[]) => Promise<string>;
let ctr: (...args: string[]) => Promise<string>;
let stopContainerd: () => Promise<void>;

/** Starts containerd without CRI in a temp folder; resolves once ctr can talk to it. */
async function startContainerd(): Promise<{ sock: string; stop(): Promise<void> }> {
  const dir = tempDir('containerd');
  const sock = join(dir, 'containerd.sock');
  const configPath = join(dir, 'config.toml');
  const logPath = join(dir, 'containerd.log');
  await writeFile(
    configPath,
    [
      'version = 2',
      `root = ${JSON.stringify(join(dir, 'root'))}`,
      `state = ${JSON.stringify(join(dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]',
      `[grpc]\n  address = ${JSON.stringify(sock)}`,
      `[plugins."io.containerd.internal.v1.opt"]\n  path = ${JSON.stringify(join(dir, 'opt'))}`,
    ].join('\n'),
  );
  const logFd = openSync(logPath, 'a');
  const daemon = spawnTracked('containerd', ['--config', configPath, '--address', sock, '--root', join(dir, 'root'), '--state', join(dir, 'state')], {
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  const exit = exited(daemon);
  for (let i = 0; ; i++) {
    if (await run('ctr', ['--address', sock, 'version']).then(() => true, () => false)) break;
    if (i === 200 || (await Promise.race([exit.then(() => true), sleep(50, false)]))) {
      throw new Error(`containerd did not start:\n${(await readFile(logPath, 'utf8')).slice(-3000)}`);
    }
  }
  return {
    sock,
    async stop() {
      daemon.kill('SIGTERM');
      await exited(daemon);
    },
  };
}

beforeAll(async () => {
  const [fixture, login, containerd] = await Promise.all([startRealClientFixture(), startRealClientFixture({ login: true }), startContainerd()]);
  fx = fixture;
  loginFx = login;
  stopContainerd = containerd.stop;
  ctrAt = (namespace, ...args) => run('ctr', ['--address', containerd.sock, '--namespace', namespace, ...args]);
  ctr = (...args) => ctrAt('regmirror-test', ...args);
  const written = tempDir('containerd-config');
  await runClientCommand(['config', 'containerd', '--config', fx.configFile, '--url', fx.front.url, '--write', written]);
  hostsDir = join(written, 'certs.d');
});

afterAll(async () => {
  await stopContainerd?.();
  await Promise.all([fx?.stop(), loginFx?.stop()]);
});

const pull = (ref: string, dir = hostsDir): Promise<string> => ctr('images', 'pull', '--hosts-dir', dir, '--snapshotter', 'native', ref);

describe('containerd through regmirror', () => {
  it('pulls and unpacks docker.io and ghcr.io images; every request to the mirror carries ns=', async () => {
    await pull('docker.io/library/alpine:3.17');
    await pull('ghcr.io/team/tool:1.0');
    expect(await ctr('images', 'ls', '--quiet')).toEqual(expect.stringContaining('docker.io/library/alpine:3.17'));
    const snapshots = await ctr('snapshots', '--snapshotter', 'native', 'ls');
    expect(snapshots.trim().split('\n').length).toBeGreaterThan(2); // header + one per unpacked layer
    const seen = pathsSeen(fx.front);
    expect(seen).toContain('/v2/library/alpine/manifests/3.17?ns=docker.io');
    expect(seen).toContain('/v2/team/tool/manifests/1.0?ns=ghcr.io');
    expect(seen.every((path) => /[?&]ns=(docker\.io|ghcr\.io)$/.test(path))).toBe(true);
    expect(fx.front.requests.every((r) => r.status === 200)).toBe(true);
    expect(fx.front.count(isBlobGet)).toBe(fx.upstream['docker.io'].count(isBlobGet) + fx.upstream['ghcr.io'].count(isBlobGet));
    expect(fx.upstream['docker.io'].count(isBlobGet)).toBe(fx.alpine.blobs.length);
    expect(fx.upstream['ghcr.io'].count(isBlobGet)).toBe(3); // the amd64 config and two layers
  });

  it('pulls again from the cache: content removed from containerd, nothing asked upstream', async () => {
    await ctr('images', 'rm', '--sync', 'docker.io/library/alpine:3.17', 'ghcr.io/team/tool:1.0');
    resetRelays(fx);
    await pull('docker.io/library/alpine:3.17');
    await pull('ghcr.io/team/tool:1.0');
    expectServedFromCache(fx, fx.alpine.blobs.length + 3);
  });

  it('the _default form (--wildcard) sends a registry without its own folder to the mirror too', async () => {
    const written = tempDir('containerd-wildcard');
    await runClientCommand(['config', 'containerd', '--config', fx.configFile, '--url', fx.front.url, '--wildcard', '--write', written]);
    await rm(join(written, 'certs.d', 'ghcr.io'), { recursive: true });
    await ctr('images', 'rm', '--sync', 'ghcr.io/team/tool:1.0');
    resetRelays(fx);
    await pull('ghcr.io/team/tool:1.0', join(written, 'certs.d'));
    expect(pathsSeen(fx.front)).toContain('/v2/team/tool/manifests/1.0?ns=ghcr.io');
    expectServedFromCache(fx, 3);
  });
});

describe('containerd through a mirror that requires a login', () => {
  /** Pulls in a namespace of its own, so nothing is already in containerd's content store. */
  const pullAt = (namespace: string, dir: string, ref: string): Promise<string> =>
    ctrAt(namespace, 'images', 'pull', '--hosts-dir', dir, '--snapshotter', 'native', ref);

  it('is refused by config without credentials, saying what is missing', async () => {
    const err = await runClientCommand(['config', 'containerd', '--config', loginFx.configFile, '--url', loginFx.front.url]).then(() => undefined, (e: unknown) => e);
    expect(String(err)).toMatch(/this mirror requires a login \(access\.htpasswd\).*--username USER with --password-file FILE/);
  });

  it('without the credentials in hosts.toml, every pull gets 401 from regmirror and fails', async () => {
    const written = tempDir('containerd-no-login');
    await runClientCommand(['config', 'containerd', '--config', await configWithoutLogin(loginFx), '--url', loginFx.front.url, '--write', written]);
    resetRelays(loginFx);
    await expect(pullAt('login-none', join(written, 'certs.d'), 'docker.io/library/alpine:3.17')).rejects.toThrow();
    expectRefusedForLogin(loginFx);
  });

  it('with them, pulls docker.io and ghcr.io images; the header goes with every request, so none is refused', async () => {
    const written = tempDir('containerd-login');
    await runClientCommand(['config', 'containerd', '--config', loginFx.configFile, '--url', loginFx.front.url, ...loginFx.loginArgs, '--write', written]);
    const hostsToml = join(written, 'certs.d', 'docker.io', 'hosts.toml');
    expect((await stat(hostsToml)).mode & 0o777).toBe(0o600);
    resetRelays(loginFx);
    await pullAt('login', join(written, 'certs.d'), 'docker.io/library/alpine:3.17');
    await pullAt('login', join(written, 'certs.d'), 'ghcr.io/team/tool:1.0');
    expect(pathsSeen(loginFx.front)).toContain('/v2/library/alpine/manifests/3.17?ns=docker.io');
    expect(loginFx.front.requests.every((r) => r.status === 200)).toBe(true);
    expect(loginFx.upstream['docker.io'].count(isBlobGet)).toBe(loginFx.alpine.blobs.length);
    expect(loginFx.upstream['ghcr.io'].count(isBlobGet)).toBe(3);
  });
});
