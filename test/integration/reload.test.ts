// Reloading the configuration of a running mirror (what SIGHUP does), against real registries: upstreams
// added, removed and changed (a new password), repository filters, the default upstream and the tag TTL
// take effect at once; a reload that needs a restart, or a file that does not load, changes nothing; a
// blob being downloaded when its upstream changes still arrives whole and is cached. And the signal
// itself, sent to the real `regmirror serve` process.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBlobGet, isManifestRequest, seedImage, skopeoCopyToDir, startCountingRelay, startRegistry, startRelay, tempDir, type Registry, type Relay, type SeededImage } from '../support/index.js';
import { ACCEPT_ALL, errorCodes, send, sha256 } from '../harness/http.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { spawnMirror } from '../harness/process-mirror.js';
import { isCached, waitFor } from '../lifecycle/support.js';

const USER = { username: 'bot', password: 'right-password' };

let open: Registry;
let locked: Registry;
let relay: Relay;
let alpine: SeededImage;
let busybox: SeededImage;
let app: SeededImage;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  [open, locked] = await Promise.all([startRegistry(), startRegistry({ auth: 'basic', ...USER })]);
  closers.push(() => open.stop(), () => locked.stop());
  [alpine, busybox, app] = await Promise.all([
    seedImage(open, { repo: 'library/alpine', tag: '1', layerSizes: [20_000] }),
    seedImage(open, { repo: 'library/busybox', tag: '1', layerSizes: [3_000_000], compressible: false }),
    seedImage(locked, { repo: 'team/app', tag: '1', layerSizes: [20_000], creds: USER }),
  ]);
  relay = await startCountingRelay(open.url);
  closers.push(() => relay.stop());
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

async function mirrorOf(options: Parameters<typeof startTestMirror>[0]): Promise<TestMirror> {
  const m = await startTestMirror(options);
  closers.push(() => m.close());
  return m;
}

const manifest = (m: TestMirror, name: string, reference = '1'): Promise<{ status: number; codes: string[]; digest: string }> =>
  send(`${m.url}/v2/${name}/manifests/${reference}`, { headers: { accept: ACCEPT_ALL } }).then((res) => ({
    status: res.status,
    codes: res.status >= 400 ? errorCodes(res.body) : [],
    digest: res.status === 200 ? sha256(res.body) : '',
  }));

describe('reloading the configuration', () => {
  it('adds an upstream, takes a new password for one, and removes one, with no restart', async () => {
    const passwordFile = join(tempDir('reload-secret'), 'password');
    writeFileSync(passwordFile, 'wrong-password\n');
    const dockerHub = { url: open.url };
    const m = await mirrorOf({ upstreams: { 'docker.io': dockerHub }, defaultUpstream: 'docker.io' });
    expect(await manifest(m, 'locked.example/team/app')).toMatchObject({ status: 404, codes: ['NAME_UNKNOWN'] });

    const withLocked = { 'docker.io': dockerHub, 'locked.example': { url: locked.url, credentials: { username: USER.username, passwordFile } } };
    expect(m.reload({ upstreams: withLocked })).toMatchObject({ applied: true, changes: { added: ['locked.example'], changed: [], removed: [] } });
    // Routed now, but the registry refuses the wrong password: the mirror says so.
    expect(await manifest(m, 'locked.example/team/app')).toMatchObject({ status: 403, codes: ['DENIED'] });

    writeFileSync(passwordFile, `${USER.password}\n`);
    expect(m.reload({ upstreams: withLocked })).toMatchObject({ applied: true, changes: { changed: ['locked.example'] } });
    const pulled = await skopeoCopyToDir(`${m.host}/locked.example/team/app:1`, join(tempDir('reload-pull'), 'app'));
    expect(pulled.manifestDigest).toBe(app.manifestDigest);

    expect(m.reload({ upstreams: { 'docker.io': dockerHub } })).toMatchObject({ applied: true, changes: { removed: ['locked.example'] } });
    expect(await manifest(m, 'locked.example/team/app')).toMatchObject({ status: 404, codes: ['NAME_UNKNOWN'] });
    expect(await manifest(m, 'library/alpine')).toMatchObject({ status: 200, digest: alpine.manifestDigest });
  });

  it('applies repository filters, the default upstream and the tag TTL to the next request', async () => {
    const m = await mirrorOf({ upstreams: { 'docker.io': { url: relay.url }, 'other.example': { url: locked.url, credentials: USER } }, defaultUpstream: 'docker.io', cache: { tagTTL: '1h' } });
    relay.reset();
    expect(await manifest(m, 'library/alpine')).toMatchObject({ status: 200, digest: alpine.manifestDigest });
    expect(await manifest(m, 'library/alpine')).toMatchObject({ status: 200 });
    expect(relay.count(isManifestRequest)).toBe(1); // within the hour's TTL: from the cache

    expect(m.reload({ upstreams: { 'docker.io': { url: relay.url, repositories: { deny: ['library/alpine'] } }, 'other.example': { url: locked.url, credentials: USER } } })).toMatchObject({ applied: true });
    expect(await manifest(m, 'library/alpine')).toMatchObject({ status: 403, codes: ['DENIED'] });

    expect(m.reload({ defaultUpstream: 'other.example', cache: { tagTTL: '0s' } })).toMatchObject({ applied: true, changes: { changed: [], settings: ['routing.defaultUpstream', 'cache.tagTTL'] } });
    expect(await manifest(m, 'team/app')).toMatchObject({ status: 200, digest: app.manifestDigest }); // by the new default
    relay.reset();
    expect(await manifest(m, 'docker.io/library/busybox')).toMatchObject({ status: 200, digest: busybox.manifestDigest });
    expect(await manifest(m, 'docker.io/library/busybox')).toMatchObject({ status: 200, digest: busybox.manifestDigest });
    expect(relay.count(isManifestRequest)).toBe(2); // a TTL of 0: checked with the upstream again
  });

  it('applies nothing when a change needs a restart, or the configuration does not load, and says why', async () => {
    const m = await mirrorOf({ upstreams: { 'docker.io': { url: open.url } }, defaultUpstream: 'docker.io' });
    const invalid = m.reload({ upstreams: { 'docker.io': { url: 'ftp://example.com' } } });
    expect(invalid).toMatchObject({ applied: false, error: expect.stringContaining('config error at upstreams["docker.io"].url') });
    const missing = m.reload({ upstreams: { 'docker.io': { url: open.url, credentials: { username: 'u', passwordFile: '/nonexistent/password' } } } });
    expect(missing).toMatchObject({ applied: false, error: expect.stringContaining('upstreams["docker.io"].credentials.passwordFile') });
    expect(await reloadMetric(m)).toBe(0);

    const twoUpstreams = { 'docker.io': { url: open.url }, 'locked.example': { url: locked.url, credentials: USER } };
    const refused = m.reload({ upstreams: twoUpstreams, listeners: [undefined, 'docker.io'] });
    expect(refused).toEqual({ applied: false, error: 'listeners changed, which a reload cannot apply: restart regmirror for them' });
    expect(await manifest(m, 'locked.example/team/app')).toMatchObject({ status: 404, codes: ['NAME_UNKNOWN'] });
    expect(await manifest(m, 'library/alpine')).toMatchObject({ status: 200, digest: alpine.manifestDigest });

    // The listeners as they were: the rest of the same edit applies.
    expect(m.reload({ listeners: [undefined] })).toMatchObject({ applied: true, changes: { added: ['locked.example'], removed: [], changed: [], settings: [] } });
    expect(await manifest(m, 'locked.example/team/app')).toMatchObject({ status: 200, digest: app.manifestDigest });
    expect(await reloadMetric(m)).toBe(1);

    await m.close();
    expect(m.reload({})).toEqual({ applied: false, error: 'the mirror is shutting down' });
  });

  it('lets a blob download under way finish on the old upstream settings, whole and cached', async () => {
    const gate = latch();
    const reached = latch();
    const held = await startRelay(open.url, {
      // Sends half of a blob, then the rest once the test opens the gate.
      send(_req, target, res, record) {
        if (!isBlobGet(record)) return false;
        void (async () => {
          const chunks: Buffer[] = [];
          for await (const chunk of target) chunks.push(chunk as Buffer);
          const body = Buffer.concat(chunks);
          const half = body.length >> 1;
          res.write(body.subarray(0, half));
          record.bytes += half;
          reached.open();
          await gate.opened;
          res.end(body.subarray(half));
          record.bytes += body.length - half;
        })();
        return true;
      },
    });
    closers.push(() => held.stop());
    const m = await mirrorOf({ upstreams: { 'docker.io': { url: held.url } }, defaultUpstream: 'docker.io' });
    const layer = busybox.blobs.find((b) => b.size > 1_000_000)!;
    const download = send(`${m.url}/v2/library/busybox/blobs/${layer.digest}`);
    await reached.opened;

    relay.reset();
    expect(m.reload({ upstreams: { 'docker.io': { url: relay.url } } })).toMatchObject({ applied: true, changes: { changed: ['docker.io'] } });
    gate.open();
    const res = await download;
    expect(res.status).toBe(200);
    expect(sha256(res.body)).toBe(layer.digest);

    await waitFor('the blob in the cache', () => isCached(m.dataDir, layer.digest));
    expect(relay.count(isBlobGet)).toBe(0);
    // New requests go to the new URL.
    expect(await manifest(m, 'library/alpine')).toMatchObject({ status: 200, digest: alpine.manifestDigest });
    expect(relay.count(isManifestRequest)).toBe(1);
  });
});

describe('SIGHUP to `regmirror serve`', () => {
  it('reloads the file it was started with, keeping its flags, and keeps running on a file that does not load', async () => {
    const dir = tempDir('reload-cli');
    const file = join(dir, 'regmirror.yaml');
    const passwordFile = join(dir, 'password');
    writeFileSync(passwordFile, USER.password);
    const yaml = (upstreams: string): string => `version: 1\nstorage:\n  path: ${join(dir, 'data')}\nrouting:\n  defaultUpstream: docker.io\nupstreams:\n  docker.io:\n    url: ${open.url}\n${upstreams}`;
    writeFileSync(file, yaml(''));
    const m = await spawnMirror(['--config', file]);
    closers.push(async () => void m.child.kill('SIGTERM'));
    const get = (name: string): Promise<number> => fetch(`${m.url}/v2/${name}/manifests/1`, { headers: { accept: ACCEPT_ALL } }).then((res) => res.status);
    expect(await get('locked.example/team/app')).toBe(404);

    writeFileSync(file, yaml(`  locked.example:\n    url: ${locked.url}\n    credentials:\n      username: ${USER.username}\n      passwordFile: ${passwordFile}\n`));
    m.child.kill('SIGHUP');
    await waitFor('the new upstream', async () => (await get('locked.example/team/app')) === 200, 10_000);
    // --listen still wins over the file's (default) listeners: the reload changed no listener.
    expect(m.output()).not.toContain('not reloaded');

    writeFileSync(file, 'version: 1\nupstreams: [\n');
    m.child.kill('SIGHUP');
    await waitFor('the error in the log', async () => m.output().includes('configuration not reloaded'), 10_000);
    expect(m.output()).toContain('is not valid YAML');
    expect(await get('library/alpine')).toBe(200);
    expect(await get('locked.example/team/app')).toBe(200);
    expect(await reloadMetric(m)).toBe(0);
    expect(m.child.exitCode).toBeNull();
  });
});

/** regmirror_config_last_reload_successful from the mirror's /metrics. */
async function reloadMetric(m: { url: string }): Promise<number> {
  const text = (await send(`${m.url}/metrics`)).body.toString();
  return Number(/^regmirror_config_last_reload_successful (\d+)$/m.exec(text)?.[1]);
}

/** A promise the test resolves when it chooses. */
function latch(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}
