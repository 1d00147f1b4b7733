// podman 4.3 (Debian's) pulls docker.io and ghcr.io images with the registries.conf that
// `regmirror config podman` writes (CONTAINERS_REGISTRIES_CONF), into its own vfs storage.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBlobGet, run, tempDir } from '../support/index.js';
import { expectServedFromCache, pathsSeen, resetRelays, runClientCommand, startRealClientFixture, type RealClientFixture } from './real-client-fixture.js';

let fx: RealClientFixture;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  fx = await startRealClientFixture();
  const written = tempDir('podman-config');
  await runClientCommand(['config', 'podman', '--config', fx.configFile, '--url', fx.front.url, '--write', written]);
  const home = tempDir('podman-home');
  const containersConf = join(home, 'containers.conf');
  await writeFile(containersConf, '');
  await writeFile(join(home, 'auth.json'), '{}');
  env = {
    CONTAINERS_REGISTRIES_CONF: join(written, 'registries.conf.d', 'regmirror.conf'),
    CONTAINERS_CONF: containersConf,
    REGISTRY_AUTH_FILE: join(home, 'auth.json'),
    HOME: home,
    XDG_RUNTIME_DIR: home,
  };
});

afterAll(async () => {
  await fx?.stop();
});

/** Pulls into a fresh podman store, so every pull fetches every blob. */
async function pull(ref: string): Promise<string> {
  const store = tempDir('podman-store');
  const podman = ['--root', join(store, 'root'), '--runroot', join(store, 'run'), '--tmpdir', join(store, 'tmp'), '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];
  await run('podman', [...podman, 'pull', '--quiet', ref], env);
  return run('podman', [...podman, 'images', '--format', '{{.Repository}}:{{.Tag}}'], env);
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
