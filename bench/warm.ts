/**
 * Workloads 1-3, on warm caches: the same requests against regmirror, Distribution's proxy and
 * nginx in turn, round after round (the order rotating), with each mirror's peak RSS per run.
 */
import { curlSeries, expectComplete, wrk, type WrkResult } from './load.js';
import { watchPeakRss } from './memory.js';
import type { Column, Samples } from './report.js';
import type { BenchServer } from './servers.js';
import type { BenchSettings } from './settings.js';
import type { BenchImage } from './upstream.js';

/** What containerd sends when it resolves a tag. */
export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

/** The three servers of the warm workloads, by column. */
export type WarmServers = Record<Column, BenchServer>;

/** Every column, the first one moved along each round so no server always goes first. */
export function rotation<T>(items: T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Runs `measure` against each server with the mirrors' peak RSS recorded as `rssId`. */
async function eachServer(servers: WarmServers, round: number, samples: Samples, rssId: string, measure: (column: Column, server: BenchServer) => Promise<void>): Promise<void> {
  for (const column of rotation<Column>(['regmirror', 'distribution', 'limit'], round)) {
    const server = servers[column];
    const meter = column === 'limit' ? undefined : watchPeakRss(server.pid);
    await measure(column, server);
    samples.add(rssId, column, meter?.stop());
  }
}

/** Fetches each path twice from each server (the second from a mirror's cache), checking regmirror says hit. */
async function warmUp(servers: WarmServers, paths: string[]): Promise<void> {
  const headers = { accept: MANIFEST_ACCEPT };
  for (const [column, server] of Object.entries(servers)) {
    for (const path of paths) {
      const bad = (await curlSeries(server.url + path, 2, headers)).filter((t) => t.status !== 200);
      if (bad.length > 0) throw new Error(`warm-up: ${column} answered ${bad[0]!.status} for ${path}`);
      if (column !== 'regmirror') continue;
      const res = await fetch(server.url + path, { headers });
      await res.body?.cancel();
      const outcome = res.headers.get('x-regmirror-cache');
      if (outcome !== 'hit') throw new Error(`warm-up: regmirror said ${outcome} for ${path}, not hit`);
    }
  }
}

/** wrk errors of every run, reported under the table. */
export const wrkErrors: string[] = [];

function checked(result: WrkResult, what: string): WrkResult {
  if (result.errors > 0) wrkErrors.push(`${what}: ${result.errors} errors in ${result.requests} requests`);
  return result;
}

/** Workloads 1, 2 and 3. */
export async function runWarmWorkloads(settings: BenchSettings, servers: WarmServers, images: { small: BenchImage; big: BenchImage }, samples: Samples): Promise<void> {
  const { small, big } = images;
  await warmUp(servers, [big.blobPath, small.blobPath, small.manifestPath]);
  // Downloads of the big blob per single-client series: about `seconds` at 1 GB/s.
  const series = Math.max(2, Math.round((settings.seconds * 1e9) / big.layer.size));
  const load = { connections: settings.connections, seconds: settings.seconds };
  const manifestLoad = { ...load, headers: { accept: MANIFEST_ACCEPT } };

  // One short unmeasured run each, so JITs and pools are warm before round 1.
  for (const server of Object.values(servers)) {
    await curlSeries(server.url + big.blobPath, 1);
    await wrk(server.url + small.blobPath, { ...load, seconds: 1 });
    await wrk(server.url + small.manifestPath, { ...manifestLoad, seconds: 1 });
  }

  for (let round = 0; round < settings.rounds; round++) {
    console.log(`  round ${round + 1}/${settings.rounds}: warm blob, one client`);
    await eachServer(servers, round, samples, 'w1.rss', async (column, server) => {
      const transfers = await curlSeries(server.url + big.blobPath, series);
      expectComplete(transfers, big.layer.size, `workload 1, ${column}`);
      const bytes = transfers.reduce((sum, t) => sum + t.bytes, 0);
      const seconds = transfers.reduce((sum, t) => sum + t.total, 0);
      samples.add('w1.throughput', column, bytes / seconds / 1e6);
    });

    console.log(`  round ${round + 1}/${settings.rounds}: warm blob, ${settings.connections} clients`);
    await eachServer(servers, round, samples, 'w2.rss', async (column, server) => {
      const r = checked(await wrk(server.url + small.blobPath, load), `workload 2, ${column}`);
      samples.add('w2.rps', column, r.requestsPerSec);
      samples.add('w2.throughput', column, r.bytesPerSec / 1e6);
    });

    console.log(`  round ${round + 1}/${settings.rounds}: warm manifest by tag, ${settings.connections} clients`);
    await eachServer(servers, round, samples, 'w3.rss', async (column, server) => {
      const r = checked(await wrk(server.url + small.manifestPath, manifestLoad), `workload 3, ${column}`);
      samples.add('w3.rps', column, r.requestsPerSec);
      samples.add('w3.p50', column, r.p50Ms);
      samples.add('w3.p99', column, r.p99Ms);
    });
  }
}
