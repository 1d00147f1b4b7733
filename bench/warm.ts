/**
 * Workloads 1-3, on warm caches: the same requests against regmirror, Distribution's proxy and
 * nginx in turn, round after round (the order rotating), with each mirror's peak RSS per run.
 */
import { ALL_CPUS, pinTree, withServerCpuOfItsOwn } from './affinity.js';
import type { LoadResult } from './load.js';
import { blobLoad, fetchImage, MANIFEST_ACCEPT, manifestLoad, singleClientThroughput } from './measure.js';
import { watchPeakRss } from './memory.js';
import type { Column, Samples } from './report.js';
import type { BenchServer } from './servers.js';
import type { BenchSettings } from './settings.js';
import type { BenchImage, BenchUpstream } from './upstream.js';

/** The three servers of the warm workloads, by column. */
export type WarmServers = Record<Column, BenchServer>;

/** The items, the first one moved along each round so that none always goes first. */
export function rotation<T>(items: T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * Runs `measure` for each column in this round's order, recording as `rssId` the peak RSS of the
 * column's process (`pidOf`; undefined: none watched).
 */
export async function eachColumn<C extends string>(columns: C[], round: number, samples: Samples<C>, rssId: string, pidOf: (column: C) => number | undefined, measure: (column: C) => Promise<void>): Promise<void> {
  for (const column of rotation(columns, round)) {
    const pid = pidOf(column);
    const meter = pid === undefined ? undefined : watchPeakRss(pid);
    await measure(column);
    samples.add(rssId, column, meter?.stop());
  }
}

/** Runs `measure` against each server with the mirrors' peak RSS recorded as `rssId`. */
function eachServer(servers: WarmServers, round: number, samples: Samples, rssId: string, measure: (column: Column, server: BenchServer) => Promise<void>): Promise<void> {
  const pidOf = (column: Column): number | undefined => (column === 'limit' ? undefined : servers[column].pid);
  return eachColumn<Column>(['regmirror', 'distribution', 'limit'], round, samples, rssId, pidOf, (column) => measure(column, servers[column]));
}

/** Fetches each image twice from each server (the second from a mirror's cache), checking regmirror says hit. */
async function warmUp(servers: WarmServers, images: BenchImage[]): Promise<void> {
  for (const server of Object.values(servers)) {
    for (const image of images) await fetchImage(server.url, image, 2);
  }
  for (const path of images.flatMap((i) => [i.manifestPath, i.blobPath])) {
    const res = await fetch(servers.regmirror.url + path, { headers: { accept: MANIFEST_ACCEPT } });
    await res.body?.cancel();
    const outcome = res.headers.get('x-regmirror-cache');
    if (outcome !== 'hit') throw new Error(`warm-up: regmirror said ${outcome} for ${path}, not hit`);
  }
}

/** Failed requests of every load run, reported under the table. */
export const loadErrors: string[] = [];

/** The result, its failed requests (if any) noted in loadErrors. */
export function checked<T extends LoadResult>(result: T, what: string): T {
  if (result.errors > 0) loadErrors.push(`${what}: ${result.errors} errors in ${result.requests} requests`);
  return result;
}

/** Workloads 1, 2 and 3. */
export async function runWarmWorkloads(settings: BenchSettings, servers: WarmServers, images: { small: BenchImage; big: BenchImage }, samples: Samples): Promise<void> {
  const { small, big } = images;
  await warmUp(servers, [big, small]);
  // One short unmeasured run each, so JITs and pools are warm before round 1.
  for (const server of Object.values(servers)) {
    await blobLoad(server.url, small, settings, 1);
    await manifestLoad(server.url, small, settings, 1);
  }

  for (let round = 0; round < settings.rounds; round++) {
    console.log(`  round ${round + 1}/${settings.rounds}: warm blob, one client`);
    await eachServer(servers, round, samples, 'w1.rss', async (column, server) => {
      samples.add('w1.throughput', column, (await singleClientThroughput(server.url + big.blobPath, big.layer.size, settings)).mbps);
    });

    console.log(`  round ${round + 1}/${settings.rounds}: warm blob, ${settings.connections} clients`);
    await eachServer(servers, round, samples, 'w2.rss', async (column, server) => {
      const r = checked(await blobLoad(server.url, small, settings), `workload 2, ${column}`);
      samples.add('w2.rps', column, r.requestsPerSec);
      samples.add('w2.throughput', column, r.bytesPerSec / 1e6);
    });

    console.log(`  round ${round + 1}/${settings.rounds}: warm manifest by tag, ${settings.connections} clients`);
    await eachServer(servers, round, samples, 'w3.rss', async (column, server) => {
      const r = checked(await manifestLoad(server.url, small, settings), `workload 3, ${column}`);
      samples.add('w3.rps', column, r.requestsPerSec);
      samples.add('w3.p50', column, r.p50Ms);
      samples.add('w3.p99', column, r.p99Ms);
    });
  }
}

/** Why a pinned run was left out, reported under the table. */
export const warmNotes: string[] = [];

/**
 * Workload 3 again with each server on the last CPU, and the load generator (this process, so wrk)
 * and the upstream on the others. This machine's kernel packs runnable threads onto as few vCPUs as
 * it can (`sched_vcpu_pack` on its command line): unpinned, wrk's threads and the server under test
 * often share one vCPU while the other idles, one source of the latency's tail (finding 7). A
 * mirror in use does not share its CPU with its clients.
 */
export async function runPinnedManifestLoad(settings: BenchSettings, servers: WarmServers, upstream: BenchUpstream, samples: Samples): Promise<void> {
  const ran = await withServerCpuOfItsOwn(upstream.registry.url, async (serverCpu) => {
    for (let round = 0; round < settings.rounds; round++) {
      console.log(`  round ${round + 1}/${settings.rounds}: warm manifest by tag, ${settings.connections} clients, server on CPU ${serverCpu}`);
      // Its peak RSS counts as workload 3's, as the same requests' (`w3.rss`).
      await eachServer(servers, round, samples, 'w3.rss', async (column, { pid, url }) => {
        pinTree(pid, serverCpu);
        try {
          const r = checked(await manifestLoad(url, upstream.small, settings), `workload 3 on a CPU of its own, ${column}`);
          samples.add('w3.pinned.rps', column, r.requestsPerSec);
          samples.add('w3.pinned.p50', column, r.p50Ms);
          samples.add('w3.pinned.p99', column, r.p99Ms);
        } finally {
          pinTree(pid, ALL_CPUS);
        }
      });
    }
  });
  if (!ran) warmNotes.push('workload 3 with the server on a CPU of its own: skipped, this machine has one CPU');
}
