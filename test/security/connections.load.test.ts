// 1,000 concurrent connections mixing manifest and blob requests (wrk, 60 s by default): no failed
// request, and file descriptors and memory return to their baseline afterwards.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, run, seedImage, startRegistry, tempDir, type Registry, type SeededImage } from '../support/index.js';
import { spawnMirror, type MirrorProcess } from '../harness/process-mirror.js';
import { ACCEPT_ALL, send } from '../harness/http.js';

const SECONDS = Number(process.env.REGMIRROR_LOAD_SECONDS ?? 60);
let registry: Registry;
let image: SeededImage;
let mirror: MirrorProcess;

const openFds = async (pid: number): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;
const rssBytes = async (pid: number): Promise<number> => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

beforeAll(async () => {
  registry = await startRegistry();
  image = await seedImage(registry, { repo: 'library/app', tag: 'v1', layerSizes: [64_000, 256_000] });
  mirror = await spawnMirror(['--data', tempDir('load'), '--upstream', `docker.io=${registry.url}`]);
});

afterAll(async () => {
  mirror?.child.kill('SIGTERM');
  if (mirror) await exited(mirror.child);
  await registry?.stop();
});

describe('load', () => {
  it(`serves 1,000 concurrent connections for ${SECONDS} s without a failed request, and does not leak`, async () => {
    const paths = [
      '/v2/library/app/manifests/v1?ns=docker.io',
      `/v2/library/app/manifests/${image.manifestDigest}?ns=docker.io`,
      ...image.blobs.map((b) => `/v2/library/app/blobs/${b.digest}?ns=docker.io`),
      '/v2/app/manifests/v1',
    ];
    for (const path of paths) expect((await send(`${mirror.url}${path}`, { headers: { accept: ACCEPT_ALL } })).status).toBe(200);
    const pid = mirror.child.pid!;
    await sleep(500);
    const fdsBefore = await openFds(pid);

    const script = join(tempDir('wrk'), 'mix.lua');
    await writeFile(script, [
      `local paths = {${paths.map((p) => JSON.stringify(p)).join(', ')}}`,
      'local i = 0',
      `wrk.headers["Accept"] = "${ACCEPT_ALL}"`,
      'request = function() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end',
    ].join('\n'));
    // Two rounds: the first brings memory to its working size; the second must not grow it (no leak).
    const rss: number[] = [];
    for (let round = 0; round < 2; round++) {
      const output = await run('wrk', ['-t2', '-c1000', `-d${SECONDS / 2}s`, '--timeout', '30s', '-s', script, mirror.url]);
      const requests = Number(/(\d+) requests in/.exec(output)![1]);
      expect(requests).toBeGreaterThan((SECONDS / 2) * 100);
      expect(output).not.toMatch(/Non-2xx or 3xx responses/);
      expect(output).not.toMatch(/Socket errors/);
      let fds = await openFds(pid);
      for (let i = 0; i < 50 && fds > fdsBefore + 2; i++) {
        await sleep(100);
        fds = await openFds(pid);
      }
      expect(fds).toBeLessThanOrEqual(fdsBefore + 2);
      rss.push(await rssBytes(pid));
    }
    expect(rss[1]!).toBeLessThan(rss[0]! + 32 * 1024 * 1024);
    expect((await send(`${mirror.url}/v2/`)).status).toBe(200);
  }, (SECONDS + 60) * 1000);
});
