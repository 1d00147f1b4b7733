// kill -9 in the middle of a download: nothing partial is visible, staging is cleaned at start.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, seedImage, startFaultyUpstream, startRegistry, tempDir, type FaultyUpstream, type Registry, type SeededImage } from '../support/index.js';
import { spawnMirror } from '../harness/process-mirror.js';
import { send, sha256 } from '../harness/http.js';

let registry: Registry;
let upstream: FaultyUpstream;
let image: SeededImage;

const files = async (dir: string): Promise<string[]> => (await readdir(dir, { recursive: true }).catch(() => [])).map(String);

beforeAll(async () => {
  registry = await startRegistry();
  image = await seedImage(registry, { repo: 'team/big', tag: 'v1', layerSizes: [16_000_000], compressible: false, compression: 'none' });
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
});
