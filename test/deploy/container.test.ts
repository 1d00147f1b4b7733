// The Containerfile, built and run with podman: the image pulls through to a local Distribution
// registry, answers its probes, runs unprivileged with its cache in the volume, and stops cleanly.
// There is no network, so no node:20-bookworm-slim: the build runs on a stand-in made from this
// host's node and npm (stand-in-base.sh), offline, from the host's npm cache.
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort, run, seedImage, skopeoCopyToDir, startRegistry, tempDir, type Registry, type SeededImage,
} from '../support/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const havePodman = (() => {
  try {
    execFileSync('podman', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

const store = tempDir('podman-deploy');
const podmanGlobal = [
  '--root', join(store, 'root'), '--runroot', join(store, 'run'), '--tmpdir', join(store, 'tmp'),
  '--storage-driver', 'overlay', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs',
];
// Root here lacks CAP_SYS_RESOURCE, so podman's default limits (above the host's) cannot be set.
const ulimits = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];
const podman = (args: string[]): Promise<string> => run('podman', [...podmanGlobal, ...args]);

const BASE = 'localhost/regmirror-test/node-standin:20';
const IMAGE = 'localhost/regmirror-test/regmirror:test';
const CONTAINER = 'regmirror-deploy-test';
const VOLUME = 'regmirror-deploy-data';

let upstream: Registry;
let image: SeededImage;
let mirrorUrl: string;

/** better-sqlite3's prebuilt binary as prebuild-install names it, made from the one npm ci built here. */
function localPrebuilds(): string {
  const dir = tempDir('prebuilds');
  const pkg = join(ROOT, 'node_modules', 'better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string };
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  execFileSync('tar', ['-czf', join(dir, name), '-C', pkg, 'build/Release/better_sqlite3.node']);
  return dir;
}

/** Imports the stand-in base, with npm set offline and better-sqlite3 pointed at the local prebuild. */
async function importStandInBase(): Promise<void> {
  const tarball = join(tempDir('stand-in'), 'base.tar');
  await run('bash', [join(ROOT, 'test/deploy/stand-in-base.sh'), tarball]);
  await podman([
    'import',
    '--change', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    '--change', 'ENV npm_config_offline=true',
    '--change', 'ENV npm_config_better_sqlite3_local_prebuilds=/prebuilds',
    tarball, BASE,
  ]);
}

/** A configuration for the container: one listener on the host's loopback, the fixture upstream. */
function configDir(port: number): string {
  const dir = tempDir('container-config');
  chmodSync(dir, 0o755); // the image's user (uid 1000) reads it
  const config = {
    version: 1,
    listeners: [{ address: `127.0.0.1:${port}` }],
    routing: { defaultUpstream: 'registry.test' },
    upstreams: { 'registry.test': { url: upstream.url } },
  };
  writeFileSync(join(dir, 'regmirror.yaml'), JSON.stringify(config), { mode: 0o644 }); // JSON is YAML
  return dir;
}

describe.skipIf(!havePodman)(`the container image${havePodman ? '' : ' (skipped: podman is not installed)'}`, () => {
  beforeAll(async () => {
    upstream = await startRegistry();
    image = await seedImage(upstream, { repo: 'team/app', tag: '1.0', layerSizes: [300_000, 50_000] });
    await importStandInBase();
    const npmCache = (await run('npm', ['config', 'get', 'cache'])).trim();
    const started = Date.now();
    // --network none: the build must need nothing but the npm cache (overlaid, so left unchanged).
    await podman([
      'build', '--network', 'none', ...ulimits, '--format', 'docker', // docker format keeps HEALTHCHECK
      '--build-arg', `NODE_IMAGE=${BASE}`,
      '--volume', `${npmCache}:/root/.npm:O`, '--volume', `${localPrebuilds()}:/prebuilds:ro`,
      '--tag', IMAGE, '--file', join(ROOT, 'Containerfile'), ROOT,
    ]);
    console.log(`podman build took ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const port = await freePort();
    mirrorUrl = `http://127.0.0.1:${port}`;
    // Host networking: the upstream and the clients are on the host's 127.0.0.1. The listener is
    // not on 5000, so HEALTHCHECK is told where /healthz is, as docs/deployment.md says.
    // Read-only, /tmp too (as Kubernetes' readOnlyRootFilesystem): only the volume is writable.
    await podman([
      'run', '--detach', '--name', CONTAINER, '--network', 'host', '--read-only', '--read-only-tmpfs=false', ...ulimits,
      '--env', `REGMIRROR_HEALTH_URL=${mirrorUrl}/healthz`,
      '--volume', `${configDir(port)}:/etc/regmirror:ro`, '--volume', `${VOLUME}:/var/lib/regmirror`, IMAGE,
    ]);
    for (let i = 0; ; i++) {
      const res = await fetch(`${mirrorUrl}/v2/`).catch(() => undefined);
      if (res?.ok) break;
      if (i === 600) throw new Error(`the container did not answer in 30 s:\n${await podman(['logs', CONTAINER])}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, 300_000);

  afterAll(async () => {
    await podman(['rm', '--force', '--ignore', CONTAINER]);
    await upstream?.stop();
    rmSync(store, { recursive: true, force: true }); // images and the volume: a few hundred MB
  });

  it('holds only the runtime: dist, config and production node_modules', async () => {
    const app = await podman(['run', '--rm', ...ulimits, '--entrypoint', 'ls', IMAGE, '/app', '/app/node_modules']);
    expect(app).toMatch(/^\/app:\nconfig\ndist\nnode_modules\npackage\.json\n/);
    expect(app).toContain('better-sqlite3');
    expect(app).not.toMatch(/^(typescript|vitest|tsx)$/m);
  });

  it('pulls an image through the mirror, as the unprivileged user, into the volume', async () => {
    const copied = await skopeoCopyToDir(`${mirrorUrl.slice('http://'.length)}/team/app:1.0`, tempDir('pulled'));
    expect(copied.manifestDigest).toBe(image.manifestDigest);
    expect(copied.blobs.map((b) => b.digest).sort()).toEqual(image.blobs.map((b) => b.digest).sort());

    expect((await podman(['exec', CONTAINER, 'id', '-u'])).trim()).toBe('1000');
    const volume = (await podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', VOLUME])).trim();
    const stored = await readdir(join(volume, 'data', 'blobs', 'sha256'), { recursive: true });
    for (const blob of image.blobs) expect(stored).toContain(join(blob.digest.slice(7, 9), blob.digest.slice(7)));
    // A sub-command in the running container finds the same cache (relative paths, WORKDIR).
    expect(await podman(['exec', CONTAINER, 'regmirror', 'ls', '--config', '/etc/regmirror/regmirror.yaml'])).toContain('team/app');
  });

  it('answers /healthz and /readyz, and its HEALTHCHECK passes', async () => {
    expect((await fetch(`${mirrorUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${mirrorUrl}/readyz`)).status).toBe(200); // the volume is writable by uid 1000
    await podman(['healthcheck', 'run', CONTAINER]); // exits non-zero when unhealthy
    expect((await podman(['inspect', '--format', '{{.State.Health.Status}}', CONTAINER])).trim()).toBe('healthy');
  });

  it('stops on SIGTERM within its grace period and exits 0', async () => {
    const started = Date.now();
    await podman(['stop', '--time', '15', CONTAINER]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await podman(['inspect', '--format', '{{.State.ExitCode}}', CONTAINER])).trim()).toBe('0');
  });
});
