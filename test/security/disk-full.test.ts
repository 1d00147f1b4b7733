// A full disk (a small tmpfs mounted by the test, as root): clients get an error or their content,
// the process stays up, nothing partial is stored, and everything works once space returns.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedImage, startRegistry, type Registry, type SeededImage } from '../support/index.js';
import { startTestMirror, type TestMirror } from '../harness/mirror.js';
import { ACCEPT_ALL, send, sha256 } from '../harness/http.js';
import { verifyStore } from '../harness/store.js';

const canMount = process.getuid?.() === 0;
let registry: Registry;
let image: SeededImage;
let mirror: TestMirror;
let mountPoint: string;

beforeAll(async () => {
  if (!canMount) return;
  registry = await startRegistry();
  image = await seedImage(registry, { repo: 'team/app', tag: 'v1', layerSizes: [6_000_000], compressible: false, compression: 'none' });
  mountPoint = mkdtempSync(join(tmpdir(), 'regmirror-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mountPoint]);
  mirror = await startTestMirror({ upstreams: { 'quay.io': { url: registry.url } }, dataDir: mountPoint });
});

afterAll(async () => {
  await mirror?.close();
  await registry?.stop();
  if (mountPoint) execFileSync('umount', ['-l', mountPoint]);
});

describe.runIf(canMount)('disk full', () => {
  it('cuts a blob that does not fit, keeps serving, and works again when space returns', async () => {
    const layer = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const url = `${mirror.url}/v2/team/app/blobs/${layer.digest}?ns=quay.io`;
    const res = await fetch(url);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect((await send(`${mirror.url}/v2/`)).status).toBe(200);

    // Fill what is left: dd stops (and fails) at ENOSPC, which is the point.
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(mountPoint, 'filler')}`, 'bs=64k', 'count=100'], { stdio: 'ignore' });
    } catch {
      // disk full
    }
    const manifest = await send(`${mirror.url}/v2/team/app/manifests/v1?ns=quay.io`, { headers: { accept: ACCEPT_ALL } });
    expect([manifest.status, sha256(manifest.body)]).toEqual([200, image.manifestDigest]);

    execFileSync('mount', ['-o', 'remount,size=64m', mountPoint]);
    const ok = await send(url);
    expect([ok.status, sha256(ok.body)]).toEqual([200, layer.digest]);
    for (let i = 0; i < 50 && (await readdir(join(mountPoint, '_spool'))).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await readdir(join(mountPoint, '_spool'))).toEqual([]);
    const { corrupt } = await verifyStore(mountPoint);
    expect(corrupt).toEqual([]);
  });
});
