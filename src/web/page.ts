/**
 * The status page on the admin listener: the HTML page and its assets at `/` and `/ui/…` (uPlot is
 * served from its package, so the page works with no network), the status document at
 * `/api/status`, and the same document pushed every few seconds as server-sent events at
 * `/api/events`. One snapshot per tick is shared by every open page.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { StatusSnapshot } from './snapshot.js';

const assetsDir = new URL('./assets/', import.meta.url);
const uplotFile = (name: string): string => createRequire(import.meta.url).resolve(`uplot/dist/${name}`);

/** Files the page loads, by path. */
const ASSETS: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => fileURLToPath(new URL('index.html', assetsDir)), type: 'text/html; charset=utf-8' },
  '/ui/status.js': { file: () => fileURLToPath(new URL('status.js', assetsDir)), type: 'text/javascript; charset=utf-8' },
  '/ui/format.js': { file: () => fileURLToPath(new URL('format.js', assetsDir)), type: 'text/javascript; charset=utf-8' },
  '/ui/status.css': { file: () => fileURLToPath(new URL('status.css', assetsDir)), type: 'text/css; charset=utf-8' },
  '/ui/uplot.js': { file: () => uplotFile('uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/uplot.css': { file: () => uplotFile('uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/** Paths the status page answers; the admin handler routes them here. */
export const STATUS_PATHS: ReadonlySet<string> = new Set([...Object.keys(ASSETS), '/api/status', '/api/events']);

// Everything comes from this origin: no CDN, no inline script.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** Options of the status page. */
export interface StatusPageOptions {
  /** Makes the status document. */
  snapshot: () => Promise<StatusSnapshot>;
  /** How often open pages get a new document. Default 2 s. */
  intervalMs?: number;
}

/** Serves the status page, its API and its event stream. */
export class StatusPage {
  private readonly streams = new Set<ServerResponse>();
  private readonly files = new Map<string, Promise<Buffer>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;

  constructor(private readonly options: StatusPageOptions) {
    this.intervalMs = options.intervalMs ?? 2_000;
  }

  /** Answers a GET or HEAD for one of STATUS_PATHS. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const head = req.method === 'HEAD';
    if (path === '/api/events') {
      this.openStream(res, head);
      return;
    }
    let body: Buffer;
    let type: string;
    if (path === '/api/status') {
      body = Buffer.from(JSON.stringify(await this.options.snapshot()));
      type = 'application/json';
    } else {
      const asset = ASSETS[path]!;
      body = await this.read(path, asset.file);
      type = asset.type;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache' });
    res.end(head ? undefined : body);
  }

  /** Ends every event stream and stops the timer (before the listeners close). */
  close(): void {
    for (const res of this.streams) res.end();
    this.streams.clear();
    this.stopTimer();
  }

  private read(path: string, file: () => string): Promise<Buffer> {
    let content = this.files.get(path);
    if (!content) {
      content = readFile(file());
      content.catch(() => this.files.delete(path));
      this.files.set(path, content);
    }
    return content;
  }

  private openStream(res: ServerResponse, head: boolean): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    if (head) {
      res.end();
      return;
    }
    res.write('retry: 3000\n\n');
    this.streams.add(res);
    res.once('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0) this.stopTimer();
    });
    void this.push([res]);
    this.timer ??= setInterval(() => void this.push(this.streams), this.intervalMs).unref();
  }

  /** Sends one snapshot to the given streams; a stream still draining the last one skips this one. */
  private async push(streams: Iterable<ServerResponse>): Promise<void> {
    let message: string;
    try {
      message = `data: ${JSON.stringify(await this.options.snapshot())}\n\n`;
    } catch {
      return;
    }
    for (const res of streams) {
      if (!res.writableEnded && !res.writableNeedDrain) res.write(message);
    }
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
