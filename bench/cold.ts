/**
 * Workloads 4 and 5, on cold caches: every measurement gets a mirror process with empty storage.
 * 4: pulls through a mirror against the same pull straight from the upstream.
 * 5: many clients at once for one uncached blob, upstream bytes counted by a relay in front of it.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isBlobGet, sha256File, skopeoCopyToDir, startCountingRelay, tempDir } from '../test/support/index.js';
import { curlOnce, curlSeries, type Transfer } from './load.js';
import { watchPeakRss } from './memory.js';
import type { Column, Samples } from './report.js';
import { startDistributionProxy, startRegmirror, type BenchServer } from './servers.js';
import type { BenchSettings } from './settings.js';
import type { BenchImage, BenchUpstream } from './upstream.js';
import { MANIFEST_ACCEPT, rotation } from './warm.js';

type Mirror = 'regmirror' | 'distribution';

/**
 * Runs `fn` against a new mirror of `upstreamUrl` with empty storage; returns its result and the
 * mirror's peak RSS. The mirror first serves the small image (cold too, but not measured), so what
 * is measured is a cold cache, not a cold process: JIT, upstream connection and token are warm.
 */
async function withFreshMirror<T>(mirror: Mirror, upstreamUrl: string, warm: BenchImage, fn: (server: BenchServer) => Promise<T>): Promise<{ value: T; rss: number | undefined }> {
  const server = await (mirror === 'regmirror' ? startRegmirror(upstreamUrl) : startDistributionProxy(upstreamUrl));
  try {
    const meter = watchPeakRss(server.pid);
    for (const path of [warm.manifestPath, warm.blobPath]) {
      const [t] = await curlSeries(server.url + path, 1, { accept: MANIFEST_ACCEPT });
      if (t!.status !== 200) throw new Error(`${mirror} answered ${t!.status} for ${path}`);
    }
    const value = await fn(server);
    return { value, rss: meter.stop() };
  } finally {
    await server.stop();
  }
}

/** Seconds that `skopeo copy` takes to pull `ref` into an empty folder. */
async function timedPull(ref: string): Promise<number> {
  const dir = tempDir('bench-pull');
  try {
    const started = performance.now();
    await skopeoCopyToDir(ref, join(dir, 'image'));
    return (performance.now() - started) / 1000;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs `fn` with the URL of a fresh mirror (or of the upstream itself for 'limit'), recording the mirror's RSS. */
async function fromColdSource(column: Column, upstream: BenchUpstream, samples: Samples, fn: (url: string) => Promise<void>): Promise<void> {
  if (column === 'limit') return fn(upstream.registry.url);
  const { rss } = await withFreshMirror(column, upstream.registry.url, upstream.small, (server) => fn(server.url));
  samples.add('w4.rss', column, rss);
}

/** Workload 4: cold pulls through each mirror and directly from the upstream. */
export async function runColdPulls(settings: BenchSettings, upstream: BenchUpstream, samples: Samples): Promise<void> {
  const { big, multi } = upstream;
  for (let round = 0; round < settings.rounds; round++) {
    console.log(`  round ${round + 1}/${settings.rounds}: cold pulls`);
    for (const column of rotation<Column>(['regmirror', 'distribution', 'limit'], round)) {
      await fromColdSource(column, upstream, samples, async (url) => {
        samples.add('w4.pull', column, await timedPull(`${new URL(url).host}/${big.name}`));
      });
      await fromColdSource(column, upstream, samples, async (url) => {
        const blob = await curlOnce(url + big.blobPath);
        if (blob.status !== 200 || blob.bytes !== big.layer.size) throw new Error(`workload 4, ${column}: cold blob got ${blob.status}/${blob.bytes}`);
        samples.add('w4.blob.firstByte', column, blob.firstByte);
        samples.add('w4.blob.total', column, blob.total);
        samples.add('w4.multi', column, await timedPull(`${new URL(url).host}/${multi.name}`));
      });
    }
  }
}

/** Problems workload 5 saw (wrong content), reported under the table. */
export const coldNotes: string[] = [];

/** `clients` downloads of one cold blob at once; checks the first client's content. */
async function stampede(server: BenchServer, image: BenchImage, clients: number, mirror: Mirror): Promise<{ transfers: Transfer[]; seconds: number }> {
  const dir = tempDir('bench-stampede');
  const checked = join(dir, 'blob');
  const failed: Transfer = { status: 0, bytes: 0, firstByte: Number.NaN, total: Number.NaN };
  try {
    const started = performance.now();
    const transfers = await Promise.all(Array.from({ length: clients }, (_, i) =>
      curlOnce(server.url + image.blobPath, i === 0 ? checked : '/dev/null').catch(() => failed)));
    const seconds = (performance.now() - started) / 1000;
    if (transfers[0]!.status === 200 && (await sha256File(checked)) !== image.layer.digest) {
      coldNotes.push(`workload 5, ${mirror}: a client received content that does not match ${image.layer.digest}`);
    }
    return { transfers, seconds };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Workload 5: many clients at once for one uncached blob, at two blob sizes. */
export async function runColdStampede(settings: BenchSettings, upstream: BenchUpstream, samples: Samples): Promise<void> {
  const sizes = [['mid', upstream.mid], ['big', upstream.big]] as const;
  for (let round = 0; round < settings.rounds; round++) {
    for (const [key, image] of sizes) {
      console.log(`  round ${round + 1}/${settings.rounds}: ${settings.coldClients} clients, one cold blob (${key})`);
      for (const mirror of rotation<Mirror>(['regmirror', 'distribution'], round)) {
        const relay = await startCountingRelay(upstream.registry.url);
        try {
          const { value, rss } = await withFreshMirror(mirror, relay.url, upstream.small, async (server) => {
            relay.reset();
            const result = await stampede(server, image, settings.coldClients, mirror);
            await sleep(200); // let a mirror's last upstream reads land in the count
            return { ...result, upstreamBytes: relay.bytesFor(isBlobGet) };
          });
          const size = image.layer.size;
          samples.add(`w5.${key}.ratio`, mirror, value.upstreamBytes / size);
          samples.add(`w5.${key}.seconds`, mirror, value.seconds);
          samples.add(`w5.${key}.complete`, mirror, value.transfers.filter((t) => t.status === 200 && t.bytes === size).length);
          samples.add(`w5.${key}.rss`, mirror, rss);
        } finally {
          await relay.stop();
        }
      }
    }
  }
}
