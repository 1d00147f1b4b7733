/**
 * The load generators: wrk for many concurrent clients, curl for single transfers (one process
 * per client, reading with curl's own large buffer; wrk reads 8 KiB at a time, which caps a single
 * large download below what the servers can send), and follow-load.ts for many clients that
 * follow redirects (wrk does not).
 */
import { fileURLToPath } from 'node:url';
import { run } from '../test/support/index.js';

const WRK_SCRIPT = fileURLToPath(new URL('./wrk-report.lua', import.meta.url));

/** What a timed load run measured. */
export interface LoadResult {
  requests: number;
  bytes: number;
  seconds: number;
  requestsPerSec: number;
  bytesPerSec: number;
  /** Failed requests (for wrk: socket errors, timeouts and responses with status >= 400). */
  errors: number;
}

/** What a wrk run measured. */
export interface WrkResult extends LoadResult {
  p50Ms: number;
  p99Ms: number;
}

interface WrkJson {
  requests: number;
  bytes: number;
  durationUs: number;
  p50Us: number;
  p99Us: number;
  errors: Record<string, number>;
}

/** Runs wrk against one URL for `seconds` with `connections` clients on two threads. */
export async function wrk(url: string, opts: { connections: number; seconds: number; headers?: Record<string, string> }): Promise<WrkResult> {
  const threads = Math.min(2, opts.connections);
  const headers = Object.entries(opts.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  const out = await run('wrk', ['-t', String(threads), '-c', String(opts.connections), '-d', `${opts.seconds}s`, '--timeout', '10s', '-s', WRK_SCRIPT, ...headers, url]);
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${out}`);
  const r = JSON.parse(line.slice('WRK_JSON '.length)) as WrkJson;
  const seconds = r.durationUs / 1e6;
  return {
    requests: r.requests,
    bytes: r.bytes,
    seconds,
    requestsPerSec: r.requests / seconds,
    bytesPerSec: r.bytes / seconds,
    p50Ms: r.p50Us / 1000,
    p99Ms: r.p99Us / 1000,
    errors: Object.values(r.errors).reduce((a, b) => a + b, 0),
  };
}

const FOLLOW_CLIENT = fileURLToPath(new URL('./follow-load.ts', import.meta.url));

/**
 * `connections` clients download `url` (a blob of `size` bytes) for `seconds`, following its 307
 * each time (bench/follow-load.ts, in a process of its own); `redirects` counts the hops taken.
 */
export async function followLoad(url: string, opts: { connections: number; seconds: number; size: number }): Promise<LoadResult & { redirects: number }> {
  const out = await run(process.execPath, ['--import', 'tsx', FOLLOW_CLIENT, url, String(opts.connections), String(opts.seconds), String(opts.size)]);
  const line = out.split('\n').find((l) => l.startsWith('FOLLOW_JSON '));
  if (!line) throw new Error(`follow-load printed no summary:\n${out}`);
  const r = JSON.parse(line.slice('FOLLOW_JSON '.length)) as { requests: number; redirects: number; bytes: number; errors: number; durationUs: number };
  const seconds = r.durationUs / 1e6;
  return { ...r, seconds, requestsPerSec: r.requests / seconds, bytesPerSec: r.bytes / seconds };
}

/** One curl transfer. */
export interface Transfer {
  status: number;
  bytes: number;
  /** Seconds from the start to the first body byte. */
  firstByte: number;
  /** Seconds from the start to the last byte. */
  total: number;
}

const WRITE_OUT = '%{http_code} %{size_download} %{time_starttransfer} %{time_total}\\n';

function parseTransfers(out: string): Transfer[] {
  return out.trim().split('\n').map((line) => {
    const [status, bytes, firstByte, total] = line.split(' ').map(Number);
    return { status: status!, bytes: bytes!, firstByte: firstByte!, total: total! };
  });
}

/** Downloads `url` once into `output` (default: discarded). */
export async function curlOnce(url: string, output = '/dev/null'): Promise<Transfer> {
  const [transfer] = parseTransfers(await run('curl', ['-s', '-o', output, '-w', WRITE_OUT, url]));
  return transfer!;
}

/**
 * Downloads `url` `count` times one after the other on one kept-alive connection: one client.
 * With `follow`, each transfer follows redirects (its time and bytes include the hop).
 */
export async function curlSeries(url: string, count: number, opts: { headers?: Record<string, string>; follow?: boolean } = {}): Promise<Transfer[]> {
  const headers = Object.entries(opts.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  const args = ['-s', ...(opts.follow ? ['-L'] : []), '-w', WRITE_OUT, ...headers];
  for (let i = 0; i < count; i++) args.push('-o', '/dev/null', url);
  return parseTransfers(await run('curl', args));
}

/** Throws unless every transfer got a 200 and `size` bytes. */
export function expectComplete(transfers: Transfer[], size: number, what: string): void {
  const bad = transfers.filter((t) => t.status !== 200 || t.bytes !== size);
  if (bad.length > 0) {
    throw new Error(`${what}: ${bad.length} of ${transfers.length} transfers incomplete (${bad.map((t) => `${t.status}/${t.bytes}`).join(', ')}; want 200/${size})`);
  }
}
