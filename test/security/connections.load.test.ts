// 1,000 concurrent connections mixing manifest and blob requests (wrk, 60 s by default): no failed
// request, and file descriptors and memory return to their baseline afterwards.
// On this 2-core machine 1,000 connections saturate the process, and node's HTTP server does not
// share it evenly: most requests take ~0.1-0.3 s, a tenth of them seconds, the slowest 20-30 s
// (a plain node:http server shows the same tail at 1,000 connections). So wrk waits up to 60 s for
// an answer, and a probe on a connection of its own asks every 2 s during each round: each of its
// requests must be answered, 200, within 60 s — a request that hangs fails the test.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, run, seedImage, startRegistry, tempDir, type Registry, type SeededImage } from '../support/index.js';
import { spawnMirror, type MirrorProcess } from '../harness/process-mirror.js';
import { ACCEPT_ALL, send } from '../harness/http.js';

const SECONDS = Number(process.env.REGMIRROR_LOAD_SECONDS ?? 60);
/** How long a request may wait for its answer under full load. */
const ANSWER_WITHIN_MS = 60_000;
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
      const load = run('wrk', ['-t2', '-c1000', `-d${SECONDS / 2}s`, '--timeout', `${ANSWER_WITHIN_MS / 1000}s`, '--latency', '-s', script, mirror.url]);
      const probes = probeWhile(load, `${mirror.url}${paths[0]}`);
      const [output, statuses] = await Promise.all([load, probes]);
      expect(statuses.length).toBeGreaterThan(0);
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
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
  }, (SECONDS + 60 + 2 * ANSWER_WITHIN_MS / 1000) * 1000);
});

/** Asks `url` every 2 s until `load` settles, each answer within ANSWER_WITHIN_MS; returns the statuses (0: no answer in time). */
async function probeWhile(load: Promise<unknown>, url: string): Promise<number[]> {
  let done = false;
  void load.finally(() => (done = true)).catch(() => undefined);
  const statuses: number[] = [];
  while (!done) {
    await sleep(2_000);
    const status = await send(url, { headers: { accept: ACCEPT_ALL }, signal: AbortSignal.timeout(ANSWER_WITHIN_MS) }).then((r) => r.status, () => 0);
    statuses.push(status);
  }
  return statuses;
}
