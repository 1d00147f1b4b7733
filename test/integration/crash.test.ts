// kill -9 in the middle of a download: nothing partial is visible, staging is cleaned at start.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, seedImage, startFaultyUpstream, startRegistry, tempDir, type FaultyUpstream, type Registry, type SeededImage } from '../support/index.js';
import { spawnMirror } from '../harness/process-mirror.js';
import { ACCEPT_ALL, send, sha256 } from '../harness/http.js';
import { verifyStore } from '../harness/store.js';

let registry: Registry;
let upstream: FaultyUpstream;
let image: SeededImage;
const images: SeededImage[] = [];

const files = async (dir: string): Promise<string[]> => (await readdir(dir, { recursive: true }).catch(() => [])).map(String);

beforeAll(async () => {
  registry = await startRegistry();
  image = await seedImage(registry, { repo: 'team/big', tag: 'v1', layerSizes: [16_000_000], compressible: false, compression: 'none' });
  for (let i = 0; i < 5; i++) {
    images.push(await seedImage(registry, { repo: `team/img${i}`, tag: 'v1', layerSizes: [6_000_000, 1_000_000], compressible: false, compression: 'none' }));
  }
  upstream = await startFaultyUpstream(registry.url);
});

afterAll(async () => {
  await upstream?.stop();
  await registry?.stop();
});

describe('crash safety', () => {
  it('leaves no partial blob after kill -9 mid-download, and cleans staging at start', async () => {
    const data = tempDir('crash');
    const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const args = ['--data', data, '--upstream', `quay.io=${upstream.url}`];
    const first = await spawnMirror(args);
    upstream.setFault('stall');
    const res = await fetch(`${first.url}/v2/team/big/blobs/${layer.digest}?ns=quay.io`);
    const reader = res.body!.getReader();
    await reader.read();
    for (let i = 0; i < 100 && (await files(join(data, '_spool'))).length === 0; i++) await sleep(20);
    expect(await files(join(data, '_spool'))).toHaveLength(1);

    first.child.kill('SIGKILL');
    await exited(first.child);
    await reader.cancel().catch(() => undefined);
    expect((await files(join(data, 'blobs'))).filter((f) => f.endsWith(layer.digest.slice(7)))).toEqual([]);

    upstream.setFault(null);
    const second = await spawnMirror(args);
    try {
      expect(await files(join(data, '_spool'))).toEqual([]);
      expect(await files(join(data, '_staging'))).toEqual([]);
      const blob = await send(`${second.url}/v2/team/big/blobs/${layer.digest}?ns=quay.io`);
      expect([blob.status, sha256(blob.body)]).toEqual([200, layer.digest]);
    } finally {
      second.child.kill('SIGTERM');
      await exited(second.child);
    }
  });

  it('recovers from kill -9 during 20 concurrent cold pulls: every image pulls, the store re-hashes clean', async () => {
    const data = tempDir('crash20');
    const args = ['--data', data, '--upstream', `quay.io=${upstream.url}`];
    const first = await spawnMirror(args);
    const pull = async (url: string, img: SeededImage): Promise<void> => {
      const manifest = await send(`${url}/v2/${img.repo}/manifests/v1?ns=quay.io`, { headers: { accept: ACCEPT_ALL } });
      expect(sha256(manifest.body)).toBe(img.manifestDigest);
      for (const blob of img.blobs) {
        const got = await send(`${url}/v2/${img.repo}/blobs/${blob.digest}?ns=quay.io`);
        expect(sha256(got.body)).toBe(blob.digest);
      }
    };
    const pulls = Array.from({ length: 20 }, (_, i) => pull(first.url, images[i % images.length]!).catch(() => 'cut'));
    for (let i = 0; i < 200 && (await files(join(data, '_spool'))).length < 3; i++) await sleep(5);
    first.child.kill('SIGKILL');
    await exited(first.child);
    await Promise.all(pulls);

    const second = await spawnMirror(args);
    try {
      expect(await files(join(data, '_spool'))).toEqual([]);
      await Promise.all(images.map((img) => pull(second.url, img)));
      // Commits follow a client's last byte by a moment: wait for all of them, then re-hash.
      const expected = new Set(images.flatMap((img) => [img.manifestDigest, ...img.blobs.map((b) => b.digest)])).size;
      let store = await verifyStore(data);
      for (let i = 0; i < 100 && store.checked < expected; i++) {
        await sleep(50);
        store = await verifyStore(data);
      }
      expect(store.corrupt).toEqual([]);
      expect(store.checked).toBe(expected);
    } finally {
      second.child.kill('SIGTERM');
      await exited(second.child);
    }
  });
});
