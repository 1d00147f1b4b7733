/**
 * `regmirror warm <image>... [--file list.txt] [--platform linux/amd64,...|--all-platforms]`: pulls
 * images into the cache so the next pull is warm, through a running mirror (`--mirror URL`) or, with
 * no mirror serving the folder, straight into its storage (an in-process mirror on loopback).
 * Progress bars on a terminal (per image and overall: bytes, rate, ETA), plain lines otherwise.
 */
import { readFile } from 'node:fs/promises';
import { arch } from 'node:os';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { pino } from 'pino';
import { loadConfig } from '../config/load.js';
import { indexDir } from '../lifecycle/lifecycle.js';
import { liveServer } from '../lifecycle/server-mark.js';
import { parseImageRef, parsePlatform, warmImages, type ImageRef, type Platform, type WarmReporter } from '../lifecycle/warm.js';
import { startMirror } from '../main.js';
import { formatBytes, formatDuration } from '../web/assets/format.js';

interface WarmFlags {
  file?: string;
  platform?: string;
  allPlatforms?: boolean;
  mirror?: string;
  config?: string;
  data?: string;
  user?: string;
  concurrency: string;
}

/** Adds `warm` to the program. */
export function registerWarm(program: Command): void {
  program
    .command('warm')
    .description('pull images into the cache so the next pull is warm (through a running mirror with --mirror, else straight into the cache folder)')
    .argument('[images...]', 'image references, e.g. alpine:3.20 ghcr.io/org/app:v1')
    .option('-f, --file <list>', 'read image references from a file, one a line (# comments)')
    .option('--platform <platforms>', `platforms to pick from multi-platform images, comma-separated (default: ${hostPlatform()})`)
    .option('--all-platforms', 'every platform of multi-platform images')
    .option('-m, --mirror <url>', 'a running mirror, e.g. http://127.0.0.1:5000')
    .option('-c, --config <file>', 'without --mirror: configuration file (YAML); default: the embedded one')
    .option('-d, --data <dir>', 'without --mirror: cache folder (storage.path)')
    .option('-u, --user <name:password>', 'credentials for a mirror that asks clients to log in (access.htpasswd)')
    .option('--concurrency <n>', 'blob downloads at once', '4')
    .action(async (args: string[], opts: WarmFlags) => {
      const fail = (message: string): never => program.error(`regmirror warm: ${message}`);
      if (opts.platform !== undefined && opts.allPlatforms) fail('give --platform or --all-platforms, not both');
      const concurrency = Number(opts.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) fail('--concurrency must be a whole number from 1 to 64');
      let images: ImageRef[];
      let platforms: Platform[] | 'all';
      try {
        const texts = [...args, ...(opts.file ? await readList(opts.file) : [])];
        if (texts.length === 0) fail('name at least one image, or give --file');
        images = texts.map(parseImageRef);
        platforms = opts.allPlatforms ? 'all' : (opts.platform ?? hostPlatform()).split(',').map(parsePlatform);
      } catch (err) {
        return fail((err as Error).message);
      }

      const target = opts.mirror ? { url: opts.mirror, close: async () => undefined } : await startLocalMirror(opts, fail);
      const reporter = process.stderr.isTTY ? new BarReporter() : new LineReporter();
      const started = Date.now();
      let results;
      try {
        const headers = opts.user && opts.mirror ? { authorization: `Basic ${Buffer.from(opts.user).toString('base64')}` } : undefined;
        results = await warmImages(images, { mirrorUrl: target.url, platforms, concurrency, reporter, headers });
      } finally {
        reporter.stop();
        await target.close();
      }
      const failed = results.filter((r) => r.error);
      console.log(`warmed ${results.length - failed.length} of ${results.length} images: ${formatBytes(reporter.bytes)} in ${formatDuration((Date.now() - started) / 1000)}`);
      if (failed.length > 0) {
        console.error(`regmirror warm: ${failed.length} of ${results.length} images failed:`);
        for (const r of failed) console.error(`  ${r.image}: ${r.error!.message}`);
        process.exitCode = 1;
      }
    });
}

/** This machine's platform in OCI terms: what a container runtime here would pull. */
function hostPlatform(): string {
  const names: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return `linux/${names[arch()] ?? arch()}`;
}

async function readList(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  });
  return text.split('\n').map((line) => line.replace(/#.*/, '').trim()).filter(Boolean);
}

/** An in-process mirror on a loopback port over the configured cache folder, for warming it directly. */
async function startLocalMirror(opts: WarmFlags, fail: (message: string) => never): Promise<{ url: string; close: () => Promise<void> }> {
  const config = loadConfig(opts.config, { data: opts.data, listen: ['127.0.0.1:0'] });
  const server = await liveServer(indexDir(config.storage.path));
  if (server) fail(`a mirror (pid ${server.pid}) serves ${config.storage.path}: warm through it with --mirror URL`);
  const mirror = await startMirror({
    ...config,
    admin: { ...config.admin, address: undefined },
    access: { ...config.access, htpasswd: undefined },
    log: { ...config.log, accessLog: false },
  }, pino({ level: 'error' }, pino.destination(2)));
  return { url: `http://127.0.0.1:${mirror.listeners[0]!.address.port}`, close: () => mirror.close() };
}

/** What both reporters count. */
abstract class Reporter implements WarmReporter {
  /** Bytes fetched or found cached, over every image. */
  bytes = 0;
  protected readonly totals = new Map<string, { bytes: number; done: number; started: number }>();

  planned(image: string, bytes: number, blobs: number): void {
    this.totals.set(image, { bytes, done: 0, started: Date.now() });
    this.onPlanned(image, bytes, blobs);
  }

  progress(image: string, bytes: number): void {
    this.bytes += bytes;
    const entry = this.totals.get(image);
    if (entry) entry.done += bytes;
    this.onProgress(image);
  }

  abstract onPlanned(image: string, bytes: number, blobs: number): void;
  abstract onProgress(image: string): void;
  abstract finished(image: string): void;
  abstract failed(image: string, error: Error): void;
  abstract stop(): void;
}

/** Plain lines, for logs and pipes: one when an image starts and ends, and overall progress every 10 s. */
class LineReporter extends Reporter {
  private readonly timer = setInterval(() => this.overall(), 10_000).unref();

  onPlanned(image: string, bytes: number, blobs: number): void {
    console.log(`warming ${image}: ${blobs} blobs, ${formatBytes(bytes)}`);
  }

  onProgress(): void {}

  finished(image: string): void {
    const t = this.totals.get(image)!;
    const seconds = (Date.now() - t.started) / 1000;
    console.log(`warmed ${image}: ${formatBytes(t.bytes)} in ${formatDuration(seconds)} (${formatBytes(t.bytes / Math.max(seconds, 0.001))}/s)`);
  }

  failed(image: string, error: Error): void {
    console.log(`failed ${image}: ${error.message}`);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private overall(): void {
    const total = [...this.totals.values()].reduce((sum, t) => sum + t.bytes, 0);
    console.log(`progress: ${formatBytes(this.bytes)} of ${formatBytes(total)}`);
  }
}

/** Progress bars on a terminal: one per image, and one for all. */
class BarReporter extends Reporter {
  private readonly bars = new cliProgress.MultiBar({ format: renderBar, hideCursor: true, clearOnComplete: false, fps: 5, autopadding: true });
  private readonly perImage = new Map<string, cliProgress.SingleBar>();
  private readonly all = this.bars.create(0, 0, { label: 'all images', status: '' });

  onPlanned(image: string, bytes: number): void {
    this.perImage.set(image, this.bars.create(bytes, 0, { label: image, status: '' }));
    this.all.setTotal(this.all.getTotal() + bytes);
  }

  onProgress(image: string): void {
    this.perImage.get(image)?.update(this.totals.get(image)!.done);
    this.all.update(this.bytes);
  }

  finished(image: string): void {
    this.perImage.get(image)?.update({ status: 'done' });
  }

  failed(image: string, error: Error): void {
    const bar = this.perImage.get(image) ?? this.bars.create(0, 0, { label: image });
    bar.update({ status: `failed: ${error.message}` });
  }

  stop(): void {
    this.bars.stop();
  }
}

function renderBar(_options: cliProgress.Options, params: cliProgress.Params, payload: { label: string; status?: string }): string {
  const width = 24;
  const filled = Math.round(Math.min(1, params.progress) * width);
  const seconds = (Date.now() - params.startTime) / 1000;
  const rate = params.value / Math.max(seconds, 0.001);
  const eta = rate > 0 && params.total > params.value ? `ETA ${formatDuration((params.total - params.value) / rate)}` : '';
  const label = payload.label.length > 40 ? `…${payload.label.slice(-39)}` : payload.label.padEnd(40);
  if (params.total === 0 && payload.status) return `${label} ${payload.status}`; // failed before its size was known
  return `${label} ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${formatBytes(params.value)} / ${formatBytes(params.total)}  ${formatBytes(rate)}/s  ${eta} ${payload.status ?? ''}`;
}
