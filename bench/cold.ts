/**
 * Workloads 4 and 5, on cold caches: every measurement gets a mirror process with empty storage.
 * 4: pulls through a mirror against the same pull straight from the upstream; then again with the
 *    mirror on a CPU of its own (client and upstream on the others), as on a host of its own.
 *    And once more with a link of limited bandwidth (link.ts) between the upstream and everyone else.
 * 5: many clients at once for one uncached blob, upstream bytes counted by a relay in front of it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isBlobGet, startCountingRelay } from '../test/support/index.js';
import { pin, withServerCpuOfItsOwn } from './affinity.js';
import { startLink } from './link.js';
import { coldBlob, fetchImage, stampede, timedPull } from './measure.js';
import { watchPeakRss } from './memory.js';
import type { Column, Samples } from './report.js';
import { startDistributionProxy, startRegmirror, type BenchServer, type RegmirrorOptions } from './servers.js';
import { linkBytesPerSecond, type BenchSettings } from './settings.js';
import type { BenchImage, BenchUpstream } from './upstream.js';
import { rotation } from './warm.js';

type Mirror = 'regmirror' | 'distribution';

/**
 * Runs `fn` against a new mirror of `upstreamUrl` with empty storage; returns its result and the
 * mirror's peak RSS. The mirror first serves `warm` (cold too, but not measured), so that what is
 * measured is a cold cache, not a cold process: JIT, upstream connection and token are warm.
 */
export async function withFreshMirror<T>(mirror: Mirror, upstreamUrl: string, warm: BenchImage, fn: (server: BenchServer) => Promise<T>, opts: { cpus?: string | undefined; regmirror?: RegmirrorOptions } = {}): Promise<{ value: T; rss: number | undefined }> {
  const { cpus } = opts;
  const server = await (mirror === 'regmirror' ? startRegmirror(upstreamUrl, opts.regmirror) : startDistributionProxy(upstreamUrl));
  try {
    if (cpus !== undefined) pin(server.pid, cpus);
    const meter = watchPeakRss(server.pid);
    await fetchImage(server.url, warm);
    const value = await fn(server);
    return { value, rss: meter.stop() };
  } finally {
    await server.stop();
  }
}

/**
 * Runs `fn` with the URL of a fresh mirror of `upstreamUrl` that first served `warm` (or with
 * `upstreamUrl` itself for 'limit'), recording the mirror's RSS.
 */
async function fromColdSource(column: Column, upstreamUrl: string, warm: BenchImage, samples: Samples, fn: (url: string) => Promise<void>, mirrorCpus?: string): Promise<void> {
  if (column === 'limit') return fn(upstreamUrl);
  const { rss } = await withFreshMirror(column, upstreamUrl, warm, (server) => fn(server.url), { cpus: mirrorCpus });
  samples.add('w4.rss', column, rss);
}

/** Workload 4: cold pulls through each mirror and directly from the upstream. */
export async function runColdPulls(settings: BenchSettings, upstream: BenchUpstream, samples: Samples): Promise<void> {
  const { big, multi } = upstream;
  for (let round = 0; round < settings.coldRounds; round++) {
    console.log(`  round ${round + 1}/${settings.coldRounds}: cold pulls`);
    for (const column of rotation<Column>(['regmirror', 'distribution', 'limit'], round)) {
      await fromColdSource(column, upstream.registry.url, upstream.small, samples, async (url) => {
        samples.add('w4.pull', column, await timedPull(url, big));
      });
      await fromColdSource(column, upstream.registry.url, upstream.small, samples, async (url) => {
        const blob = await coldBlob(url, big);
        samples.add('w4.blob.firstByte', column, blob.firstByte);
        samples.add('w4.blob.total', column, blob.total);
        samples.add('w4.multi', column, await timedPull(url, multi));
      });
    }
  }
}

/** Problems workload 5 saw (wrong content), reported under the table. */
export const coldNotes: string[] = [];

/** Workload 5: many clients at once for one uncached blob, at two blob sizes. */
export async function runColdStampede(settings: BenchSettings, upstream: BenchUpstream, samples: Samples): Promise<void> {
  const sizes = [['mid', upstream.mid], ['big', upstream.big]] as const;
  for (let round = 0; round < settings.stampedeRounds; round++) {
    for (const [key, image] of sizes) {
      console.log(`  round ${round + 1}/${settings.stampedeRounds}: ${settings.coldClients} clients, one cold blob (${key})`);
      for (const mirror of rotation<Mirror>(['regmirror', 'distribution'], round)) {
        const relay = await startCountingRelay(upstream.registry.url);
        try {
          const { value, rss } = await withFreshMirror(mirror, relay.url, upstream.small, async (server) => {
            relay.reset();
            const result = await stampede(server.url, image, settings.coldClients);
            await sleep(200); // let a mirror's last upstream reads land in the count
            return { ...result, upstreamBytes: relay.bytesFor(isBlobGet) };
          });
          if (!value.digestOk) coldNotes.push(`workload 5, ${mirror}: the checked client did not get ${image.layer.digest} whole`);
          samples.add(`w5.${key}.ratio`, mirror, value.upstreamBytes / image.layer.size);
          samples.add(`w5.${key}.seconds`, mirror, value.seconds);
          samples.add(`w5.${key}.complete`, mirror, value.complete);
          samples.add(`w5.${key}.rss`, mirror, rss);
        } finally {
          await relay.stop();
        }
      }
    }
  }
}

/**
 * Workload 4 with the mirror on the last CPU and everything else — this process, so the skopeo it
 * starts, and the upstream — on the others: on a shared machine a mirror's hashing and copying
 * take CPU from the client and the upstream, which a mirror on a host of its own does not.
 */
export async function runPinnedColdPulls(settings: BenchSettings, upstream: BenchUpstream, samples: Samples): Promise<void> {
  const ran = await withServerCpuOfItsOwn(upstream.registry.url, async (mirrorCpu) => {
    for (let round = 0; round < settings.coldRounds; round++) {
      console.log(`  round ${round + 1}/${settings.coldRounds}: cold pulls, mirror on CPU ${mirrorCpu}`);
      for (const column of rotation<Column>(['regmirror', 'distribution', 'limit'], round)) {
        await fromColdSource(column, upstream.registry.url, upstream.small, samples, async (url) => {
          samples.add('w4.pinned.pull', column, await timedPull(url, upstream.big));
        }, mirrorCpu);
      }
    }
  });
  if (!ran) coldNotes.push('workload 4 with the mirror on a CPU of its own: skipped, this machine has one CPU');
}

/**
 * Workload 4 with the upstream behind a link of `settings.linkMbit` (1 Gbit/s by default),
 * as a mirror in use sees a registry elsewhere: the pull directly and through each mirror all cross it.
 */
export async function runLinkedColdPulls(settings: BenchSettings, upstream: BenchUpstream, samples: Samples): Promise<void> {
  const link = await startLink(upstream.registry.url, linkBytesPerSecond(settings.linkMbit));
  try {
    for (let round = 0; round < settings.coldRounds; round++) {
      console.log(`  round ${round + 1}/${settings.coldRounds}: cold pulls over the link`);
      for (const column of rotation<Column>(['regmirror', 'distribution', 'limit'], round)) {
        await fromColdSource(column, link.url, upstream.small, samples, async (url) => {
          samples.add('w4.link.pull', column, await timedPull(url, upstream.big));
        });
      }
    }
  } finally {
    await link.stop();
  }
}
