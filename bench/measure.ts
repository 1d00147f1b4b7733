/**
 * One measurement of one server, per workload: what the bench runs round after round, and what
 * bench/profile.ts and bench/ab.ts run against regmirror alone.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File, skopeoCopyToDir, tempDir } from '../test/support/index.js';
import { curlOnce, curlSeries, expectComplete, wrk, type Transfer, type WrkResult } from './load.js';
import type { BenchSettings } from './settings.js';
import type { BenchImage } from './upstream.js';

/** What containerd sends when it resolves a tag. */
export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

/**
 * Workload 1: one client downloads the blob at `blobUrl` (`size` bytes) over and over for about
 * `settings.seconds` at `expectedMBps` (default 1000), at least twice; `follow`: through a redirect each time.
 */
export async function singleClientThroughput(blobUrl: string, size: number, settings: BenchSettings, opts: { follow?: boolean; expectedMBps?: number } = {}): Promise<{ mbps: number; bytes: number }> {
  const count = Math.max(2, Math.round((settings.seconds * (opts.expectedMBps ?? 1000) * 1e6) / size));
  const transfers = await curlSeries(blobUrl, count, { follow: opts.follow });
  expectComplete(transfers, size, `one client at ${blobUrl}`);
  const bytes = transfers.reduce((sum, t) => sum + t.bytes, 0);
  const seconds = transfers.reduce((sum, t) => sum + t.total, 0);
  return { mbps: bytes / seconds / 1e6, bytes };
}

/** Workload 2: `settings.connections` clients download the blob for `settings.seconds`. */
export function blobLoad(url: string, image: BenchImage, settings: BenchSettings, seconds = settings.seconds): Promise<WrkResult> {
  return wrk(url + image.blobPath, { connections: settings.connections, seconds });
}

/** Workload 3: `settings.connections` clients ask for the manifest by tag for `settings.seconds`. */
export function manifestLoad(url: string, image: BenchImage, settings: BenchSettings, seconds = settings.seconds): Promise<WrkResult> {
  return wrk(url + image.manifestPath, { connections: settings.connections, seconds, headers: { accept: MANIFEST_ACCEPT } });
}

/** Fetches the image's manifest and blob once (twice: `times`), failing on anything but 200. */
export async function fetchImage(url: string, image: BenchImage, times = 1): Promise<void> {
  for (const path of [image.manifestPath, image.blobPath]) {
    const bad = (await curlSeries(url + path, times, { headers: { accept: MANIFEST_ACCEPT } })).filter((t) => t.status !== 200);
    if (bad.length > 0) throw new Error(`${url} answered ${bad[0]!.status} for ${path}`);
  }
}

/** Workload 4: one download of the blob; throws unless it is whole. */
export async function coldBlob(url: string, image: BenchImage): Promise<Transfer> {
  const t = await curlOnce(url + image.blobPath);
  expectComplete([t], image.layer.size, `cold blob from ${url}`);
  return t;
}

/** Workload 4: seconds that `skopeo copy` takes to pull the image from `url` into an empty folder. */
export async function timedPull(url: string, image: BenchImage): Promise<number> {
  const dir = tempDir('bench-pull');
  try {
    const started = performance.now();
    await skopeoCopyToDir(`${new URL(url).host}/${image.name}`, join(dir, 'image'));
    return (performance.now() - started) / 1000;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What workload 5 saw. */
export interface Stampede {
  transfers: Transfer[];
  /** From the first request to the last byte of the last client. */
  seconds: number;
  /** Clients that got status 200 and every byte. */
  complete: number;
  /** Whether the first client's bytes hash to the blob's digest. */
  digestOk: boolean;
}

/** Workload 5: `clients` downloads of the blob at once; the first client's content is checked. */
export async function stampede(url: string, image: BenchImage, clients: number): Promise<Stampede> {
  const dir = tempDir('bench-stampede');
  const checked = join(dir, 'blob');
  const failed: Transfer = { status: 0, bytes: 0, firstByte: Number.NaN, total: Number.NaN };
  try {
    const started = performance.now();
    const transfers = await Promise.all(Array.from({ length: clients }, (_, i) =>
      curlOnce(url + image.blobPath, i === 0 ? checked : '/dev/null').catch(() => failed)));
    const seconds = (performance.now() - started) / 1000;
    const complete = transfers.filter((t) => t.status === 200 && t.bytes === image.layer.size).length;
    const digestOk = transfers[0]!.status === 200 && (await sha256File(checked)) === image.layer.digest;
    return { transfers, seconds, complete, digestOk };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
