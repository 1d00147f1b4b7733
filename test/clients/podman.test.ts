// podman 4.3 (Debian's) pulls docker.io and ghcr.io images with the registries.conf that
// `regmirror config podman` writes (CONTAINERS_REGISTRIES_CONF), into its own vfs storage.
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBlobGet, run, tempDir } from '../support/index.js';
import {
  configWithoutLogin, expectRefusedForLogin, expectServedFromCache, pathsSeen, resetRelays, runClientCommand, startRealClientFixture, type RealClientFixture,
} from './real-client-fixture.js';

let fx: RealClientFixture;
let loginFx: RealClientFixture;
let env: NodeJS.ProcessEnv;

/** podman's environment: the generated registries.conf, and an auth file (default: an empty one). */
async function podmanEnv(written: string, authFile?: string): Promise<NodeJS.ProcessEnv> {
  const home = tempDir('podman-home');
  const containersConf = join(home, 'containers.conf');
  await writeFile(containersConf, '');
  await writeFile(join(home, 'auth.json'), '{}');
  return {
    CONTAINERS_REGISTRIES_CONF: join(written, 'registries.conf.d', 'regmirror.conf'),
    CONTAINERS_CONF: containersConf,
    REGISTRY_AUTH_FILE: authFile ?? join(home, 'auth.json'),
    HOME: home,
    XDG_RUNTIME_DIR: home,
  };
}

beforeAll(async () => {
  [fx, loginFx] = await Promise.all([startRealClientFixture(), startRealClientFixture({ login: true })]);
  const written = tempDir('podman-config');
  await runClientCommand(['config', 'podman', '--config', fx.configFile, '--url', fx.front.url, '--write', written]);
  env = await podmanEnv(written);
});

afterAll(async () => {
  await Promise.all([fx?.stop(), loginFx?.stop()]);
});

/** Pulls into a fresh podman store, so every pull fetches every blob. */
async function pull(ref: string, pullEnv = env): Promise<string> {
  const store = tempDir('podman-store');
  const podman = ['--root', join(store, 'root'), '--runroot', join(store, 'run'), '--tmpdir', join(store, 'tmp'), '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];
  await run('podman', [...podman, 'pull', '--quiet', ref], pullEnv);
  return run('podman', [...podman, 'images', '--format', '{{.Repository}}:{{.Tag}}'], pullEnv);
}

describe('podman through regmirror', () => {
  it('pulls docker.io and ghcr.io images; the registry arrives as a path prefix', async () => {
    expect(await pull('docker.io/library/alpine:3.17')).toContain('docker.io/library/alpine:3.17');
    expect(await pull('ghcr.io/team/tool:1.0')).toContain('ghcr.io/team/tool:1.0');
    const seen = pathsSeen(fx.front);
    expect(seen).toContain('/v2/');
    expect(seen).toContain('/v2/docker.io/library/alpine/manifests/3.17');
    expect(seen).toContain('/v2/ghcr.io/team/tool/manifests/1.0');
    expect(seen.filter((path) => path !== '/v2/').every((path) => /^\/v2\/(docker\.io|ghcr\.io)\//.test(path) && !path.includes('ns='))).toBe(true);
    expect(fx.upstream['docker.io'].count(isBlobGet)).toBe(fx.alpine.blobs.length);
    expect(fx.upstream['ghcr.io'].count(isBlobGet)).toBe(3); // the amd64 config and two layers
  });

  it('pulls again from the cache: nothing asked upstream', async () => {
    resetRelays(fx);
    await pull('docker.io/library/alpine:3.17');
    await pull('ghcr.io/team/tool:1.0');
    expectServedFromCache(fx, fx.alpine.blobs.length + 3);
  });
});

describe('podman through a mirror that requires a login', () => {
  it('without credentials for the mirror host, gets 401 from regmirror and fails', async () => {
    const written = tempDir('podman-no-login');
    await runClientCommand(['config', 'podman', '--config', await configWithoutLogin(loginFx), '--url', loginFx.front.url, '--write', written]);
    resetRelays(loginFx);
    await expect(pull('docker.io/library/alpine:3.17', await podmanEnv(written))).rejects.toThrow();
    expectRefusedForLogin(loginFx);
  });

  it('with the auth file config writes (REGISTRY_AUTH_FILE), pulls docker.io and ghcr.io images', async () => {
    const written = tempDir('podman-login');
    await runClientCommand(['config', 'podman', '--config', loginFx.configFile, '--url', loginFx.front.url, ...loginFx.loginArgs, '--write', written]);
    const authFile = join(written, 'regmirror-auth.json');
    expect((await stat(authFile)).mode & 0o777).toBe(0o600);
    const loginEnv = await podmanEnv(written, authFile);
    resetRelays(loginFx);
    expect(await pull('docker.io/library/alpine:3.17', loginEnv)).toContain('docker.io/library/alpine:3.17');
    expect(await pull('ghcr.io/team/tool:1.0', loginEnv)).toContain('ghcr.io/team/tool:1.0');
    expect(pathsSeen(loginFx.front)).toContain('/v2/docker.io/library/alpine/manifests/3.17');
    // containers/image pings /v2/ without credentials first; everything after it carries them.
    expect(loginFx.front.requests.filter((r) => r.path !== '/v2/').every((r) => r.status === 200)).toBe(true);
    expect(loginFx.upstream['docker.io'].count(isBlobGet)).toBe(loginFx.alpine.blobs.length);
    expect(loginFx.upstream['ghcr.io'].count(isBlobGet)).toBe(3);
  });
});
