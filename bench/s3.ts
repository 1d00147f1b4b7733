/**
 * The S3 column (issue 8): workloads 1 and 2 on warm blobs against regmirror on an S3 bucket
 * (OpenStack Swift's s3api, the test fixture), once streaming the blob through the replica and once
 * answering with a 307 to a presigned URL (storage.redirect), next to regmirror on its filesystem
 * and Swift serving the object to a presigned URL itself (the most an S3 setup can give). The two
 * S3 replicas share one bucket and prefix, as a fleet does.
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestBucket } from '../test/scale-out/fleet.js';
import { startSwift } from '../test/scale-out/swift.js';
import { withFreshMirror } from './cold.js';
import { curlOnce, curlSeries, expectComplete, followLoad, wrk } from './load.js';
import { fetchImage, singleClientThroughput } from './measure.js';
import { Samples } from './report.js';
import { startRegmirror, type BenchServer } from './servers.js';
import type { BenchSettings } from './settings.js';
import { seed, type BenchImage, type BenchUpstream } from './upstream.js';
import { checked, eachColumn, rotation } from './warm.js';

/** regmirror on its filesystem, regmirror on S3 streaming, regmirror on S3 redirecting, Swift itself. */
export type S3Column = 'filesystem' | 'stream' | 'redirect' | 'swift';
const COLUMNS: S3Column[] = ['filesystem', 'stream', 'redirect', 'swift'];

type Replicas = Record<Exclude<S3Column, 'swift'>, BenchServer>;

/** Why the S3 column was skipped; reported under the table. */
export const s3Notes: string[] = [];

/** Polls `check` every 100 ms until it holds; throws after 60 s. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
    if (await check()) return;
  }
  throw new Error(`S3 column: ${what} did not happen within 60 s`);
}

/** The regmirror's answer to GET (or HEAD) of the blob, not followed, its body discarded. */
async function ask(server: BenchServer, image: BenchImage, method = 'GET'): Promise<Response> {
  const res = await fetch(server.url + image.blobPath, { method, redirect: 'manual' });
  await res.body?.cancel();
  return res;
}

/** A presigned URL of the stored blob, from the redirecting replica's 307 (valid 5 minutes). */
async function presignedUrl(redirect: BenchServer, image: BenchImage): Promise<string> {
  const res = await ask(redirect, image);
  const location = res.headers.get('location');
  if (res.status !== 307 || !location) throw new Error(`S3 column: the redirecting replica answered ${res.status}, not 307, for ${image.blobPath}`);
  return location;
}

/** The URL a column's clients ask for an image's blob. */
type BlobUrls = (image: BenchImage, column: S3Column) => string;

/** The columns' blob URLs, Swift's freshly presigned (they expire after 5 minutes: new ones every round). */
async function blobUrls(replicas: Replicas, images: { small: BenchImage; big: BenchImage }): Promise<BlobUrls> {
  const direct = new Map<BenchImage, string>();
  for (const image of [images.small, images.big]) direct.set(image, await presignedUrl(replicas.redirect, image));
  return (image, column) => (column === 'swift' ? direct.get(image)! : replicas[column].url + image.blobPath);
}

/**
 * Every image fetched through the filesystem replica twice (a miss, then a hit) and through the
 * streaming one once, which fills the bucket that the redirecting one then redirects to. (Then
 * calibrate() and an unmeasured workload-2 run read each blob warm through every column.)
 */
async function warmUp(replicas: Replicas, images: BenchImage[]): Promise<void> {
  for (const image of images) {
    await fetchImage(replicas.filesystem.url, image, 2);
    await fetchImage(replicas.stream.url, image);
    // The upload to the bucket completes after the client has its last byte.
    await until(`${image.name} stored in the bucket`, async () => (await ask(replicas.stream, image, 'HEAD')).headers.get('x-regmirror-cache') === 'hit');
    const outcome = (await ask(replicas.stream, image)).headers.get('x-regmirror-cache');
    if (outcome !== 'hit') throw new Error(`S3 column warm-up: the streaming replica said ${outcome} for ${image.blobPath}, not hit`);
    await until(`a 307 for ${image.name}`, async () => (await ask(replicas.redirect, image)).status === 307);
  }
}

/**
 * Every layer of `image` asked for at once from `server`, one curl each: the seconds until the
 * clients had all their bytes; resolves once each blob is stored (for S3, uploaded).
 */
async function coldAtOnce(server: BenchServer, image: BenchImage): Promise<number> {
  const started = performance.now();
  const urls = image.image.blobs.filter((b) => b.size === image.layer.size).map((b) => `${server.url}/v2/${image.image.repo}/blobs/${b.digest}`);
  expectComplete(await Promise.all(urls.map((url) => curlOnce(url))), image.layer.size, 'S3 workload 5');
  const seconds = (performance.now() - started) / 1000;
  for (const url of urls) {
    await until(`${url} stored`, async () => (await fetch(url, { method: 'HEAD' })).headers.get('x-regmirror-cache') === 'hit');
  }
  return seconds;
}

/** One timed download of the blob per column: its MB/s, so that a workload-1 series lasts about as long in every column. */
async function calibrate(urlOf: BlobUrls, image: BenchImage): Promise<Map<S3Column, number>> {
  const rates = new Map<S3Column, number>();
  for (const column of COLUMNS) {
    const transfers = await curlSeries(urlOf(image, column), 1, { follow: column === 'redirect' });
    expectComplete(transfers, image.layer.size, `S3 column warm-up, ${column}`);
    rates.set(column, image.layer.size / transfers[0]!.total / 1e6);
  }
  return rates;
}

/** Workloads 1 and 2 against the four columns; false when Swift did not start (noted in s3Notes). */
export async function runS3Column(settings: BenchSettings, upstream: BenchUpstream, samples: Samples<S3Column>): Promise<boolean> {
  const { small, big } = upstream;
  const upstreamUrl = upstream.registry.url;
  const stops: (() => Promise<void>)[] = [];
  try {
    const swift = await startSwift().catch((err: unknown) => {
      // The first line says what failed, the last why (a command's stderr, a server's log).
      const lines = (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trim()).filter(Boolean);
      const why = lines.length > 1 ? `${lines[0]} … ${lines.at(-1)}` : lines[0];
      s3Notes.push(`S3 column skipped: Swift did not start (${why}); scripts/install-test-deps.sh installs it`);
    });
    if (!swift) return false;
    stops.push(async () => {
      await swift.stop();
      await rm(dirname(swift.logPath), { recursive: true, force: true }); // its folder: config, rings, objects
    });
    // The SDK's notice about Node 22 (docs/scale-out.md, Notes) would cut into the bench's output.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const bucket = await createTestBucket(swift, 'regmirror-bench');
    stops.push(async () => bucket.close());
    const start = async (storage?: Record<string, unknown>): Promise<BenchServer> => {
      const server = await startRegmirror(upstreamUrl, storage ? { config: { storage } } : {});
      stops.push(() => server.stop());
      return server;
    };
    const replicas: Replicas = { filesystem: await start(), stream: await start(bucket.storage), redirect: await start({ ...bucket.storage, redirect: true }) };
    await warmUp(replicas, [big, small]);

    const pidOf = (column: S3Column): number | undefined => (column === 'swift' ? undefined : replicas[column].pid);
    const blobLoads = async (into: Samples<S3Column>, round: number, seconds: number, urlOf: BlobUrls): Promise<void> => {
      const load = { connections: settings.connections, seconds };
      await eachColumn(COLUMNS, round, into, 's3.w2.rss', pidOf, async (column) => {
        // wrk does not follow the 307: against the redirecting replica it measures the 307s alone.
        const r = checked(await wrk(urlOf(small, column), load), `S3 workload 2 (wrk), ${column}`);
        // Its bytes count partial bodies too, its requests only whole ones: on a column too slow to
        // finish 64 bodies in a run, MB/s is the honest figure (whole bodies: the next client).
        if (column === 'redirect') into.add('s3.w2.redirects', column, r.requestsPerSec);
        else into.add('s3.w2.wrk.throughput', column, r.bytesPerSec / 1e6);
      });
      await eachColumn(COLUMNS, round, into, 's3.w2.rss', pidOf, async (column) => {
        const r = checked(await followLoad(urlOf(small, column), { ...load, size: small.layer.size }), `S3 workload 2 (undici), ${column}`);
        into.add('s3.w2.follow.throughput', column, r.bytesPerSec / 1e6);
      });
    };

    const firstUrls = await blobUrls(replicas, upstream);
    const rates = await calibrate(firstUrls, big);
    // One short unmeasured run of workload 2, so that JITs and pools are warm before round 1.
    await blobLoads(new Samples(), 0, 1, firstUrls);
    for (let round = 0; round < settings.s3Rounds; round++) {
      const urlOf = await blobUrls(replicas, upstream);
      console.log(`  round ${round + 1}/${settings.s3Rounds}: S3, warm blob, one client`);
      await eachColumn(COLUMNS, round, samples, 's3.w1.rss', pidOf, async (column) => {
        const { mbps } = await singleClientThroughput(urlOf(big, column), big.layer.size, settings, { follow: column === 'redirect', expectedMBps: rates.get(column) });
        rates.set(column, mbps);
        samples.add('s3.w1.throughput', column, mbps);
      });
      console.log(`  round ${round + 1}/${settings.s3Rounds}: S3, warm blob, ${settings.connections} clients`);
      await blobLoads(samples, round, settings.seconds, urlOf);
    }

    const many = await seed(upstream.registry, 'library/many', settings.manyColdLayers, true);
    for (let round = 0; round < settings.stampedeRounds; round++) {
      console.log(`  round ${round + 1}/${settings.stampedeRounds}: S3, ${settings.manyColdLayers.length} different cold blobs at once`);
      for (const column of rotation<Exclude<S3Column, 'swift'>>(['filesystem', 'stream', 'redirect'], round)) {
        // A fresh replica, on a fresh prefix of the bucket: every blob is cold.
        const fresh = column === 'filesystem' ? undefined : await createTestBucket(swift, 'regmirror-bench');
        try {
          const regmirror = fresh ? { config: { storage: { ...fresh.storage, redirect: column === 'redirect' } } } : {};
          const { value: seconds, rss } = await withFreshMirror('regmirror', upstreamUrl, small, (server) => coldAtOnce(server, many), { regmirror });
          samples.add('s3.w5.total', column, seconds);
          samples.add('s3.w5.rss', column, rss);
        } finally {
          fresh?.close();
        }
      }
    }
    return true;
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}
