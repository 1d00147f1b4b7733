// `regmirror warm`, `ls` and `gc` as users run them: real processes against a real upstream registry.
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exited, isBlobGet, run, seedImage, skopeoCopyToDir, startFaultyUpstream, startRegistry, tempDir,
  type FaultyUpstream, type Registry, type SeededImage,
} from '../support/index.js';
import { spawnMirror } from '../harness/process-mirror.js';
import { renderListing } from '../../src/cli/ls.js';
import { AccessIndex } from '../../src/lifecycle/access-index.js';
import { indexFile } from '../../src/lifecycle/lifecycle.js';
import { listCache, type TagListing } from '../../src/lifecycle/listing.js';
import { parseImageRef, parsePlatform, warmImages, type WarmReporter } from '../../src/lifecycle/warm.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { isCached, pullImage, regmirror, startLimitedMirror, UPSTREAM, type LimitedMirror } from './support.js';

let registry: Registry;
let upstream: FaultyUpstream;
let multi: SeededImage;
let single: SeededImage;
let mirror: LimitedMirror;
const silent: WarmReporter = { planned: () => undefined, progress: () => undefined, finished: () => undefined, failed: () => undefined };

/** The config and layer digests of one platform of a seeded multi-platform image, read from the registry. */
async function platformBlobs(image: SeededImage, platform: string): Promise<string[]> {
  const digest = image.manifests!.find((m) => m.platform === platform)!.digest;
  const res = await fetch(`${registry.url}/v2/${image.repo}/manifests/${digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  const doc = (await res.json()) as { config: { digest: string }; layers: { digest: string }[] };
  return [doc.config.digest, ...doc.layers.map((l) => l.digest)];
}

beforeAll(async () => {
  registry = await startRegistry();
  multi = await seedImage(registry, { repo: 'team/multi', tag: 'v1', layerSizes: [300_000], platforms: ['linux/amd64', 'linux/arm64/v8'], compressible: false, compression: 'none' });
  single = await seedImage(registry, { repo: 'team/single', tag: 'v1', layerSizes: [200_000, 100_000], compressible: false, compression: 'none' });
  upstream = await startFaultyUpstream(registry.url);
  mirror = await startLimitedMirror(upstream.url);
});

afterAll(async () => {
  await mirror?.close();
  await upstream?.stop();
  await registry?.stop();
});

describe('regmirror warm', () => {
  it('fills the cache through a running mirror: the pull after it asks upstream for no blob', async () => {
    const warm = await regmirror(['warm', '--mirror', mirror.url, '--all-platforms', `${UPSTREAM}/team/multi:v1`, `${UPSTREAM}/team/single:v1`]);
    expect(warm.stderr).toBe('');
    expect(warm.code).toBe(0);
    expect(warm.stdout).toContain(`warming ${UPSTREAM}/team/multi:v1: 4 blobs`);
    expect(warm.stdout).toContain(`warmed ${UPSTREAM}/team/single:v1`);
    expect(warm.stdout).toContain('warmed 2 of 2 images');

    upstream.reset();
    const host = new URL(mirror.url).host;
    await skopeoCopyToDir(`${host}/${UPSTREAM}/team/multi:v1`, tempDir('pull-multi'), { all: true });
    await skopeoCopyToDir(`${host}/${UPSTREAM}/team/single:v1`, tempDir('pull-single'));
    expect(upstream.count(isBlobGet)).toBe(0);
  });

  it('picks the platforms asked for, and names each image that failed', async () => {
    const fresh = await startLimitedMirror(upstream.url);
    try {
      const [arm] = await warmImages([parseImageRef(`${UPSTREAM}/team/multi:v1`)], { mirrorUrl: fresh.url, platforms: [parsePlatform('linux/arm64')], reporter: silent });
      expect(arm!.error).toBeUndefined();
      for (const digest of await platformBlobs(multi, 'linux/arm64/v8')) expect(await isCached(fresh.dataDir, digest)).toBe(true);
      for (const digest of await platformBlobs(multi, 'linux/amd64')) expect(await isCached(fresh.dataDir, digest)).toBe(false);

      const bad = await regmirror(['warm', '--mirror', fresh.url, '--platform', 'linux/s390x', `${UPSTREAM}/team/multi:v1`, `${UPSTREAM}/team/nothing:v1`, `${UPSTREAM}/team/single:v1`]);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain(`warmed ${UPSTREAM}/team/single:v1`);
      expect(bad.stderr).toContain('2 of 3 images failed');
      expect(bad.stderr).toMatch(new RegExp(`${UPSTREAM}/team/multi:v1: no linux/s390x image \\(it has linux/amd64, linux/arm64/v8\\)`));
      expect(bad.stderr).toMatch(new RegExp(`${UPSTREAM}/team/nothing:v1: manifest v1: 404`));
    } finally {
      await fresh.close();
    }
  });

  it('logs in to a mirror that asks clients for credentials', async () => {
    const htpasswd = join(tempDir('warm-auth'), 'htpasswd');
    await writeFile(htpasswd, await run('htpasswd', ['-Bbn', '-C', '5', 'ci', 's3cret']));
    const guarded = await startLimitedMirror(upstream.url, {}, { htpasswd });
    try {
      const [refused] = await warmImages([parseImageRef(`${UPSTREAM}/team/single:v1`)], { mirrorUrl: guarded.url, platforms: 'all', reporter: silent });
      expect(refused!.error?.message).toMatch(/^manifest v1: 401 UNAUTHORIZED/);
      const warm = await regmirror(['warm', '--mirror', guarded.url, '--user', 'ci:s3cret', `${UPSTREAM}/team/single:v1`]);
      expect([warm.code, warm.stderr]).toEqual([0, '']);
      for (const blob of single.blobs) expect(await isCached(guarded.dataDir, blob.digest)).toBe(true);
    } finally {
      await guarded.close();
    }
  });

  it('fills a cache folder directly when no mirror serves it, and refuses when one does', async () => {
    const data = tempDir('warm-direct');
    const config = join(data, '..', `warm-${Date.now()}.yaml`);
    await writeFile(config, JSON.stringify({ version: 1, storage: { path: data }, upstreams: { [UPSTREAM]: { url: upstream.url } } }));
    const list = join(data, '..', `list-${Date.now()}.txt`);
    await writeFile(list, `# images for tomorrow\n${UPSTREAM}/team/single:v1\n\n`);
    const warm = await regmirror(['warm', '--config', config, '--file', list]);
    expect([warm.code, warm.stderr]).toEqual([0, '']);
    for (const blob of single.blobs) expect(await isCached(data, blob.digest)).toBe(true);

    const serving = await startLimitedMirror(upstream.url, { path: data });
    try {
      const refused = await regmirror(['warm', '--config', config, `${UPSTREAM}/team/single:v1`]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`a mirror (pid ${process.pid}) serves ${data}: warm through it with --mirror URL`);
    } finally {
      await serving.close();
    }
  });
});

describe('regmirror ls', () => {
  it('lists cached tags with size, last pull and pulls, while the mirror serves', async () => {
    await pullImage(mirror.url, single);
    await sleep(1_200); // the mirror writes its notes every second
    const ls = await regmirror(['ls', '--data', mirror.dataDir, '--json']);
    expect(ls.code).toBe(0);
    const listings = JSON.parse(ls.stdout) as TagListing[];
    const byRepo = new Map(listings.map((l) => [l.repository, l]));
    const singleBytes = single.blobs.reduce((sum, b) => sum + b.size, 0);
    expect(byRepo.get('team/single')).toMatchObject({ upstream: UPSTREAM, tag: 'v1', digest: single.manifestDigest, cached: 'complete' });
    expect(byRepo.get('team/single')!.bytes).toBeGreaterThan(singleBytes);
    expect(byRepo.get('team/single')!.pulls).toBeGreaterThanOrEqual(2);
    expect(byRepo.get('team/single')!.lastPulled).toBeGreaterThan(Date.now() - 60_000);
    expect(byRepo.get('team/multi')).toMatchObject({ cached: 'complete' });

    const table = renderListing(listings, Date.now(), { bytes: 0, objects: 0 });
    expect(table).toMatch(/UPSTREAM\s+REPOSITORY\s+TAG\s+SIZE\s+CACHED\s+LAST PULLED\s+PULLS/);
    expect(table).toMatch(/quay\.io\s+team\/single\s+v1\s+/);
    const index = AccessIndex.open(indexFile(mirror.dataDir), { repair: false });
    try {
      expect(await listCache(new FilesystemDriver(mirror.dataDir), index, { upstream: 'ghcr.io' })).toEqual([]);
    } finally {
      index.close();
    }
  });
});

describe('regmirror gc', () => {
  it('removes the spool leftovers of a download cut by kill -9, and prints what it freed', async () => {
    const data = tempDir('gc-crash');
    const first = await spawnMirror(['--data', data, '--upstream', `${UPSTREAM}=${upstream.url}`]);
    upstream.setFault('stall');
    const layer = single.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const res = await fetch(`${first.url}/v2/team/single/blobs/${layer.digest}?ns=${UPSTREAM}`);
    const reader = res.body!.getReader();
    await reader.read();
    const spool = join(data, '_spool');
    for (let i = 0; i < 100 && (await readdir(spool)).length === 0; i++) await sleep(20);
    first.child.kill('SIGKILL');
    await exited(first.child);
    await reader.cancel().catch(() => undefined);
    upstream.setFault(null);
    const [leftover] = await readdir(spool);
    expect(leftover).toBeDefined();

    const dry = await regmirror(['gc', '--data', data, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`would remove leftover`);
    expect(dry.stdout).toContain(join(spool, leftover!));
    expect(await readdir(spool)).toEqual([leftover]);

    const gc = await regmirror(['gc', '--data', data]);
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(/removed leftover .*\n/);
    expect(gc.stdout).toMatch(/gc: removed 1 item, freed \d/);
    expect(await readdir(spool)).toEqual([]);
  });

  it('removes expired content per storage.maxAge; while a mirror serves, spares what it just used', async () => {
    const data = tempDir('gc-age');
    const config = join(data, '..', `gc-${Date.now()}.yaml`);
    await writeFile(config, JSON.stringify({ version: 1, storage: { path: data, maxAge: '1s' }, upstreams: { [UPSTREAM]: { url: upstream.url } } }));
    const serving = await startLimitedMirror(upstream.url, { path: data });
    let spared;
    try {
      await pullImage(serving.url, single);
      await sleep(2_200);
      spared = await regmirror(['gc', '--config', config]); // the mirror (this process) is alive: 10 min of grace
    } finally {
      await serving.close();
    }
    expect(spared.stdout).toContain(`a mirror (pid ${process.pid}) serves ${data}`);
    expect(spared.stdout).toContain('gc: removed 0 items');

    const gc = await regmirror(['gc', '--config', config]);
    expect(gc.code).toBe(0);
    expect(gc.stdout.match(/removed expired/g), gc.stdout).toHaveLength(single.blobs.length + 1);
    for (const blob of single.blobs) expect(await isCached(data, blob.digest)).toBe(false);
    expect(await isCached(data, single.manifestDigest)).toBe(false);
  });
});
