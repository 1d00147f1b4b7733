/**
 * `npm run soak`: regmirror under mixed load for minutes, with a cache limit far below what the
 * clients ask for, so that downloads, evictions, revalidations and clients leaving mid-blob go on
 * all the time, and its configuration reloaded every few seconds, docker.io's URL switching between
 * the upstream and a relay to it (each reload replaces that upstream's connection pool). Every 10 s
 * it samples the mirror's RSS, heap, external memory, open files and handles. At the end it checks
 * that nothing failed; that every blob and range served (but those left mid-way) and every blob
 * stored matches the upstream's bytes; that memory and open files did not grow from the middle third
 * of the run to the last; that every reload applied and both URLs served; and that the idle cache is
 * within its limit. Exits 1 when a check fails.
 *
 *   SOAK_MINUTES=N  minutes of load (default 5)
 *   SOAK_IMAGES=N   images of three 0.3-6 MB layers in the upstream (default 32, about 300 MB)
 *   SOAK_LIMIT=SIZE the mirror's storage.maxSize (default 120MB: about 40 % of the images)
 *   SOAK_RELOAD_SECONDS=N seconds between reloads (default 5)
 *
 * Clients (all at once): four fetchers, each asking for a random image's manifest by tag, then one
 * of its blobs — whole and verified (80 %), from a third on (`Range`, 10 %), or left after the
 * first chunk (10 %) — routed by `?ns=`, by path prefix or by default at random; and two skopeo
 * pulls of random images, one after the other. The tag TTL is 2 s, so most tag requests revalidate.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256 } from '../test/harness/http.js';
import { metric, metricsOf } from '../test/support/http.js';
import { seedImage, sha256File, skopeoCopyToDir, startCountingRelay, startRegistry, tempDir, type Relay, type SeededImage } from '../test/support/index.js';
import { MANIFEST_ACCEPT } from './measure.js';
import { currentRssMB } from './memory.js';
import { runScript } from './script.js';
import { startRegmirror, type BenchServer } from './servers.js';
import { positiveInt } from './settings.js';

const MB = 1_000_000;
const SAMPLE_MS = 10_000;
/**
 * Growth from the middle third of the load to the last that counts as a leak (medians of the
 * samples in each, so one busy moment does not decide): RSS in MB, open files.
 */
const MAX_RSS_GROWTH_MB = 10;
const MAX_OPEN_FILES_GROWTH = 5;

interface Sample {
  seconds: number;
  rssMB: number;
  heapMB: number;
  externalMB: number;
  openFiles: number;
  handles: number;
  cacheMB: number;
  evictions: number;
}

/** What the clients did and what went wrong, by kind. */
class Tally {
  blobs = 0;
  bytes = 0;
  ranges = 0;
  left = 0;
  pulls = 0;
  readonly failures = new Map<string, number>();
  fail(what: string): void {
    this.failures.set(what, (this.failures.get(what) ?? 0) + 1);
  }
}

const signed = (n: number): string => (n >= 0 ? `+${n.toFixed(0)}` : n.toFixed(0));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

/** A path and query naming the image's repository on docker.io, in one of the three ways clients do. */
function routed(repo: string, rest: string): string {
  const way = Math.random();
  if (way < 1 / 3) return `/v2/docker.io/${repo}${rest}`;
  if (way < 2 / 3) return `/v2/${repo}${rest}?ns=docker.io`;
  return `/v2/${repo}${rest}`;
}

async function fetcher(url: string, images: SeededImage[], until: number, tally: Tally): Promise<void> {
  while (Date.now() < until) {
    const image = pick(images);
    try {
      const manifest = await fetch(url + routed(image.repo, `/manifests/${image.tag}`), { headers: { accept: MANIFEST_ACCEPT } });
      const document = Buffer.from(await manifest.arrayBuffer());
      if (manifest.status !== 200) { tally.fail(`manifest: ${manifest.status}`); continue; }
      if (sha256(document) !== image.manifestDigest) { tally.fail('manifest: wrong digest'); continue; }
      const blob = pick(image.blobs);
      const blobUrl = url + routed(image.repo, `/blobs/${blob.digest}`);
      const kind = Math.random();
      if (kind < 0.1) {
        const res = await fetch(blobUrl);
        if (res.status !== 200) { tally.fail(`blob left mid-way: ${res.status}`); await res.body?.cancel(); continue; }
        const reader = res.body!.getReader();
        await reader.read();
        await reader.cancel();
        tally.left++;
      } else if (kind < 0.2) {
        // Cached or still downloading, a range is answered 206 with exactly those bytes.
        const from = Math.floor(blob.size / 3);
        const res = await fetch(blobUrl, { headers: { range: `bytes=${from}-` } });
        const body = Buffer.from(await res.arrayBuffer());
        const contentRange = res.headers.get('content-range');
        if (res.status !== 206 || contentRange !== `bytes ${from}-${blob.size - 1}/${blob.size}`) tally.fail(`range: ${res.status}, ${contentRange}`);
        else if (!body.equals((await readFile(blob.path)).subarray(from))) tally.fail('range: wrong bytes');
        else tally.ranges++;
      } else {
        const res = await fetch(blobUrl);
        const body = Buffer.from(await res.arrayBuffer());
        if (res.status !== 200) tally.fail(`blob: ${res.status}`);
        else if (sha256(body) !== blob.digest) tally.fail('blob: wrong digest');
        else { tally.blobs++; tally.bytes += body.length; }
      }
    } catch (err) {
      tally.fail(`fetch: ${(err as Error).message}`);
    }
  }
}

/** skopeo pulls (it checks every digest itself) of random images, one after the other. */
async function puller(url: string, images: SeededImage[], until: number, tally: Tally): Promise<void> {
  const host = new URL(url).host;
  while (Date.now() < until) {
    const image = pick(images);
    const dir = tempDir('soak-pull');
    try {
      await skopeoCopyToDir(`${host}/${Math.random() < 0.5 ? 'docker.io/' : ''}${image.repo}:${image.tag}`, join(dir, 'image'));
      tally.pulls++;
    } catch (err) {
      tally.fail(`skopeo: ${(err as Error).message.split('\n').at(-1)}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

async function sample(mirror: BenchServer, started: number): Promise<Sample> {
  const m = await metricsOf(mirror.url);
  return {
    seconds: (Date.now() - started) / 1000,
    rssMB: currentRssMB(mirror.pid) ?? NaN,
    heapMB: m('regmirror_nodejs_heap_size_used_bytes') / MB,
    externalMB: m('regmirror_nodejs_external_memory_bytes') / MB,
    openFiles: (await readdir(`/proc/${mirror.pid}/fd`)).length,
    handles: m('regmirror_nodejs_active_handles_total'),
    cacheMB: m('regmirror_cache_size_bytes') / MB,
    evictions: m('regmirror_evictions_total'),
  };
}

/** Until `until`, reloads the mirror every `seconds` with docker.io's URL switched; returns how many reloads were sent. */
async function reloader(mirror: BenchServer, config: (url: string) => Record<string, unknown>, urls: [string, string], seconds: number, until: number): Promise<number> {
  let reloads = 0;
  while (Date.now() + seconds * 1000 < until) {
    await sleep(seconds * 1000);
    await mirror.reload!(config(urls[++reloads % 2]!));
  }
  return reloads;
}

/** How much the median of `value` grew from the middle third of `samples` to the last third. */
function growth(samples: Sample[], value: (s: Sample) => number): number {
  const third = Math.floor(samples.length / 3);
  const median = (some: Sample[]): number => {
    const sorted = some.map(value).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  };
  return median(samples.slice(2 * third)) - median(samples.slice(third, 2 * third));
}

/** Blob files in the cache folder whose content does not match their name. */
async function corruptBlobs(dataDir: string): Promise<{ checked: number; corrupt: string[] }> {
  const root = join(dataDir, 'blobs', 'sha256');
  const corrupt: string[] = [];
  let checked = 0;
  for (const name of await readdir(root, { recursive: true })) {
    const hex = name.split('/').at(-1)!;
    if (!/^[a-f0-9]{64}$/.test(hex)) continue;
    let digest: string;
    try {
      digest = await sha256File(join(root, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // evicted meanwhile
      throw err;
    }
    checked++;
    if (digest !== `sha256:${hex}`) corrupt.push(hex);
  }
  return { checked, corrupt };
}

async function main(): Promise<void> {
  const minutes = positiveInt('SOAK_MINUTES', 5);
  const imageCount = positiveInt('SOAK_IMAGES', 32);
  const limit = process.env.SOAK_LIMIT ?? '120MB';
  const reloadSeconds = positiveInt('SOAK_RELOAD_SECONDS', 5);
  const registry = await startRegistry();
  let relay: Relay | undefined;
  let mirror: BenchServer | undefined;
  let failed = 0;
  try {
    const images: SeededImage[] = [];
    for (let i = 0; i < imageCount; i += 4) {
      const batch = Array.from({ length: Math.min(4, imageCount - i) }, (_, k) => seedImage(registry, {
        repo: `soak/image${i + k}`,
        tag: 'v1',
        layerSizes: [0, 1, 2].map(() => Math.round(0.3 * MB + Math.random() * 5.7 * MB)),
        compressible: false,
        compression: 'none',
      }));
      images.push(...(await Promise.all(batch)));
    }
    const seeded = images.flatMap((i) => i.blobs).reduce((sum, b) => sum + b.size, 0);
    console.log(`soak: ${minutes} min, ${images.length} images (${(seeded / MB).toFixed(0)} MB) upstream, cache limit ${limit}, tag TTL 2 s, a reload every ${reloadSeconds} s`);

    relay = await startCountingRelay(registry.url);
    const config = (url: string): Record<string, unknown> => ({ storage: { maxSize: limit }, cache: { tagTTL: '2s' }, routing: { defaultUpstream: 'docker.io' }, upstreams: { 'docker.io': { url } } });
    mirror = await startRegmirror(registry.url, { config: config(registry.url) });
    const started = Date.now();
    const until = started + minutes * 60_000;
    const tally = new Tally();
    const samples: Sample[] = [];
    const show = (s: Sample): void => console.log([s.seconds.toFixed(0).padStart(4), s.rssMB.toFixed(0).padStart(8), s.heapMB.toFixed(0).padStart(8),
      s.externalMB.toFixed(0).padStart(12), String(s.openFiles).padStart(11), String(s.handles).padStart(8), s.cacheMB.toFixed(0).padStart(9), String(s.evictions).padStart(10)].join(' '));
    console.log('   s   RSS MB  heap MB  external MB  open files  handles  cache MB  evictions');
    let loading = true;
    const sampler = (async () => {
      for (; loading; await sleep(SAMPLE_MS)) {
        samples.push(await sample(mirror!, started));
        show(samples.at(-1)!);
      }
    })();
    const [reloads] = await Promise.all([
      reloader(mirror, config, [registry.url, relay.url], reloadSeconds, until),
      ...Array.from({ length: 4 }, () => fetcher(mirror!.url, images, until, tally)),
      ...Array.from({ length: 2 }, () => puller(mirror!.url, images, until, tally)),
    ]);
    loading = false;
    await sampler;
    // Every client is done: what the mirror keeps once idle, after an eviction pass (one a second).
    await sleep(3_000);
    const idle = await sample(mirror, started);
    show(idle);

    const { checked, corrupt } = await corruptBlobs(mirror.dataDir!);
    const rssGrowth = growth(samples, (s) => s.rssMB);
    const fileGrowth = growth(samples, (s) => s.openFiles);
    const limitMB = (await metric(mirror.url, 'regmirror_cache_limit_bytes')) / MB;
    const reloadedAt = await metric(mirror.url, 'regmirror_config_last_reload_success_timestamp_seconds');
    const refused = (await readFile(mirror.logPath!, 'utf8')).split('\n').filter((line) => line.includes('configuration not reloaded')).length;
    if (!(limitMB > 0)) throw new Error(`the mirror reports no cache limit (storage.maxSize ${limit})`);
    console.log(`\nclients: ${tally.blobs} whole blobs verified (${(tally.bytes / MB).toFixed(0)} MB), ${tally.ranges} ranges verified, ${tally.left} left mid-blob, ${tally.pulls} skopeo pulls; evictions ${idle.evictions}`);
    console.log(`under load: RSS at most ${Math.max(...samples.map((s) => s.rssMB)).toFixed(0)} MB, cache at most ${Math.max(...samples.map((s) => s.cacheMB)).toFixed(0)} MB; idle: cache ${idle.cacheMB.toFixed(0)} MB`);
    const checks: [string, boolean][] = [
      [`no failed request (${[...tally.failures].map(([k, v]) => `${k}: ${v}`).join('; ') || 'none'})`, tally.failures.size === 0],
      [`every stored blob matches its digest (${checked} checked${corrupt.length ? `, corrupt: ${corrupt.join(' ')}` : ''})`, corrupt.length === 0],
      [`RSS ${signed(rssGrowth)} MB from the middle third of the load to the last (< ${MAX_RSS_GROWTH_MB})`, rssGrowth < MAX_RSS_GROWTH_MB],
      [`open files ${signed(fileGrowth)} from the middle third to the last (< ${MAX_OPEN_FILES_GROWTH})`, fileGrowth < MAX_OPEN_FILES_GROWTH],
      [`cache within its limit once idle (${idle.cacheMB.toFixed(0)} of ${limitMB.toFixed(0)} MB)`, idle.cacheMB <= limitMB],
      [`every reload applied (${reloads} sent, ${refused} refused, the last at least ${reloadSeconds} s before the end), the relay served ${relay.count()} requests`, refused === 0 && reloadedAt * 1000 >= until - 2 * reloadSeconds * 1000 && relay.count() > 0],
    ];
    for (const [text, ok] of checks) console.log(`${ok ? 'pass' : 'FAIL'}  ${text}`);
    failed = checks.filter(([, ok]) => !ok).length;
  } finally {
    await mirror?.stop();
    await relay?.stop();
    await registry.stop(); // its folder, like every temp folder here, goes when the script exits
  }
  if (failed > 0) throw new Error(`soak: ${failed} check(s) failed`);
}

runScript(main);
