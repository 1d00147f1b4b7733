// dockerd 20.10 (Debian's docker.io), started with its own data root, exec root and socket, pulls
// Docker Hub images through registry-mirrors in the daemon.json that `regmirror setup docker
// --apply` merges into an existing one, picked up on SIGHUP as the generated notes promise. Docker
// Hub does not resolve here, so a pull that succeeds came through the mirror (dockerd falls back
// to the registry itself when its mirror fails).
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, isBlobGet, run, spawnTracked, tempDir } from '../support/index.js';
import { expectServedFromCache, pathsSeen, resetRelays, runClientCommand, startRealClientFixture, type RealClientFixture } from './real-client-fixture.js';

let fx: RealClientFixture;
let root: string;
let daemon: Awaited<ReturnType<typeof startDockerd>>;

/** Starts dockerd without networking (no iptables, no bridge) on the vfs driver; resolves once it answers. */
async function startDockerd(configFile: string) {
  const dir = tempDir('dockerd');
  const sock = join(dir, 'docker.sock');
  const logPath = join(dir, 'dockerd.log');
  const logFd = openSync(logPath, 'a');
  const child = spawnTracked(
    'dockerd',
    [
      '--config-file', configFile, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'dockerd.pid'),
      '--host', `unix://${sock}`, '--iptables=false', '--ip6tables=false', '--bridge=none', '--storage-driver=vfs',
    ],
    { stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  const docker = (...args: string[]): Promise<string> => run('docker', ['--host', `unix://${sock}`, ...args]);
  const exit = exited(child);
  for (let i = 0; ; i++) {
    if (await docker('version').then(() => true, () => false)) break;
    if (i === 300 || (await Promise.race([exit.then(() => true), sleep(50, false)]))) {
      throw new Error(`dockerd did not start:\n${(await readFile(logPath, 'utf8')).slice(-3000)}`);
    }
  }
  return {
    docker,
    log: () => readFile(logPath, 'utf8'),
    /** Sends SIGHUP and waits until dockerd says it reloaded its configuration. */
    async reload(): Promise<void> {
      const before = (await readFile(logPath, 'utf8')).length;
      child.kill('SIGHUP');
      for (let i = 0; !(await readFile(logPath, 'utf8')).slice(before).includes('Reloaded configuration'); i++) {
        if (i === 200) throw new Error('dockerd did not log a reload after SIGHUP');
        await sleep(50);
      }
    },
    async stop(): Promise<void> {
      child.kill('SIGTERM');
      await exited(child);
    },
  };
}

beforeAll(async () => {
  fx = await startRealClientFixture();
  root = tempDir('dockerd-root');
  await mkdir(join(root, 'etc/docker'), { recursive: true });
  // A daemon.json the host already had: setup must keep what it holds.
  await writeFile(join(root, 'etc/docker/daemon.json'), '{ "log-level": "info", "max-concurrent-downloads": 2 }\n');
  daemon = await startDockerd(join(root, 'etc/docker/daemon.json'));
});

afterAll(async () => {
  await daemon?.stop();
  await fx?.stop();
});

describe('dockerd through regmirror', () => {
  it('cannot pull before setup: Docker Hub is out of reach here', async () => {
    await expect(daemon.docker('pull', 'alpine:3.17')).rejects.toThrow(/registry-1\.docker\.io/);
    expect(fx.front.requests).toHaveLength(0);
  });

  it('after `setup docker --apply` and a SIGHUP, pulls Docker Hub images through the mirror, named without a registry', async () => {
    await runClientCommand(['setup', 'docker', '--config', fx.configFile, '--url', fx.front.url, '--root', root, '--apply']);
    const merged = JSON.parse(await readFile(join(root, 'etc/docker/daemon.json'), 'utf8')) as Record<string, unknown>;
    expect(merged).toMatchObject({ 'log-level': 'info', 'max-concurrent-downloads': 2, 'registry-mirrors': [fx.front.url] });
    await daemon.reload();
    await daemon.docker('pull', 'alpine:3.17');
    expect(await daemon.docker('images', '--format', '{{.Repository}}:{{.Tag}}')).toContain('alpine:3.17');
    const seen = pathsSeen(fx.front);
    expect(seen).toContain('/v2/library/alpine/manifests/3.17');
    expect(seen.every((path) => path === '/v2/' || path.startsWith('/v2/library/alpine/'))).toBe(true);
    expect(fx.upstream['docker.io'].count(isBlobGet)).toBe(fx.alpine.blobs.length);
    expect(fx.upstream['ghcr.io'].count()).toBe(0);
  });

  it('pulls again from the cache once the image is removed from dockerd: nothing asked upstream', async () => {
    await daemon.docker('rmi', 'alpine:3.17');
    resetRelays(fx);
    await daemon.docker('pull', 'alpine:3.17');
    expectServedFromCache(fx, fx.alpine.blobs.length);
  });
});
