/**
 * The HTTP client for one upstream registry: a keep-alive pool, the auth challenge flow, redirects
 * to blob CDNs (followed without credentials, and for a public upstream only to public addresses:
 * see connect.ts), timeouts, and retries with backoff for idempotent requests on connection
 * errors, timeouts, the answers in RETRYABLE_STATUS, and a token service's 5xx or 429 (honouring
 * Retry-After).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { Agent, request, type Dispatcher } from 'undici';
import type { Credentials } from '../config/credentials.js';
import { UpstreamAuth } from './auth.js';
import { guardedConnector } from './connect.js';
import { toUpstreamError, UpstreamError } from './errors.js';

/** Settings for one upstream client. */
export interface UpstreamClientOptions {
  name: string;
  url: string;
  credentials?: Credentials | undefined;
  timeouts: { connect: number; headers: number; idle: number };
  retries: number;
  /** Longest Retry-After honoured by waiting; a longer one is returned to the caller at once. */
  maxRetryWaitMs?: number;
  /** Observes every upstream response (metrics, rate-limit headers). */
  onResponse?: (info: { method: string; status: number; durationMs: number; headers: Dispatcher.ResponseData['headers'] }) => void;
  /** Observes every request that got no response (connection error, timeout, certificate, refused hop), and every failed token request. */
  onFailure?: (failure: UpstreamError['failure']) => void;
  /** The connection pool to send through (default: a keep-alive pool with the timeouts above, dialling as connect.ts says). */
  dispatcher?: Dispatcher;
  /** Told when the upstream's own name does not resolve for connect.ts's rule. */
  logger?: Pick<Logger, 'warn'>;
}

/** A response from upstream whose body the caller must consume or destroy. */
export interface UpstreamResponse {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  body: Dispatcher.ResponseData['body'];
}

/** What a request needs besides the path. */
export interface UpstreamRequest {
  method: 'GET' | 'HEAD';
  /** Path below the registry's API root, starting with `/v2/`, with any query. */
  path: string;
  /** Repository, for the token scope. */
  repository?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 5;
const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

/** One upstream registry. Safe for concurrent use. */
export class UpstreamClient {
  readonly name: string;
  private readonly base: URL;
  private readonly dispatcher: Dispatcher;
  private readonly auth: UpstreamAuth;

  constructor(private readonly options: UpstreamClientOptions) {
    this.name = options.name;
    this.base = new URL(options.url);
    this.dispatcher = options.dispatcher ?? new Agent({
      connect: guardedConnector({ upstream: options.name, url: this.base, connectTimeoutMs: options.timeouts.connect, ...(options.logger ? { logger: options.logger } : {}) }),
      headersTimeout: options.timeouts.headers,
      bodyTimeout: options.timeouts.idle,
      keepAliveTimeout: 30_000,
      connections: 128,
    });
    this.auth = new UpstreamAuth(options.name, this.base, options.credentials, this.dispatcher, options.onFailure);
  }

  /** Sends a request, authenticating, following redirects and retrying as the class comment says. */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const maxWait = this.options.maxRetryWaitMs ?? 10_000;
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.options.retries;
      let res: UpstreamResponse;
      try {
        res = await this.authorized(req);
      } catch (err) {
        if (last || !isRetryableError(err) || req.signal?.aborted) throw err;
        const wait = retryAfterMs(err.answer?.retryAfter) ?? backoff(attempt);
        if (wait > maxWait) throw err;
        await sleep(wait, undefined, { signal: req.signal });
        continue;
      }
      if (last || !RETRYABLE_STATUS.has(res.status)) return res;
      const wait = retryAfterMs(res.headers['retry-after']) ?? backoff(attempt);
      if (wait > maxWait) return res;
      discard(res);
      await sleep(wait, undefined, { signal: req.signal });
    }
  }

  /** Closes the connection pool. */
  close(): Promise<void> {
    return this.dispatcher.close();
  }

  private async authorized(req: UpstreamRequest): Promise<UpstreamResponse> {
    const scope = req.repository ? `repository:${req.repository}:pull` : '';
    const authorization = await this.auth.headerFor(scope);
    const first = await this.follow(req, authorization);
    let res = first.res;
    // Only the upstream's own challenge is answered: one from a host a redirect led to (a CDN)
    // could name any token service, and that service would get the upstream's credentials.
    if (res.status === 401 && first.origin === this.base.origin) {
      const retryWith = await this.auth.answer(res.headers['www-authenticate'], scope);
      if (retryWith !== undefined && retryWith !== authorization) {
        discard(res);
        ({ res } = await this.follow(req, retryWith));
      }
    }
    return res;
  }

  /**
   * Sends the request, following redirects; credentials go only to the upstream's own origin.
   * Resolves with the last response and the origin that sent it.
   */
  private async follow(req: UpstreamRequest, authorization: string | undefined): Promise<{ res: UpstreamResponse; origin: string }> {
    let url = new URL(this.base.pathname.replace(/\/$/, '') + req.path, this.base);
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { ...req.headers };
      if (authorization && url.origin === this.base.origin) headers.authorization = authorization;
      const started = performance.now();
      let data: Dispatcher.ResponseData;
      try {
        data = await request(url, { dispatcher: this.dispatcher, method: req.method, headers, signal: req.signal });
      } catch (err) {
        const error = toUpstreamError(this.name, err, 'upstream');
        if (error instanceof UpstreamError) this.options.onFailure?.(error.failure);
        throw error;
      }
      this.options.onResponse?.({ method: req.method, status: data.statusCode, durationMs: performance.now() - started, headers: data.headers });
      const location = data.headers.location;
      if (data.statusCode >= 300 && data.statusCode < 400 && typeof location === 'string') {
        discard({ status: data.statusCode, headers: data.headers, body: data.body });
        url = this.redirectTarget(location, url, hop);
        continue;
      }
      // Consumers read bodies with pipeline/for-await, which surface errors; this only keeps an
      // abandoned body's late error from crashing the process.
      data.body.on('error', () => undefined);
      return { res: { status: data.statusCode, headers: data.headers, body: data.body }, origin: url.origin };
    }
  }

  /** Where a redirect leads; one the mirror will not follow is a `protocol` failure, observed like any other. */
  private redirectTarget(location: string, from: URL, hop: number): URL {
    const target = URL.canParse(location, from) ? new URL(location, from) : undefined;
    let refusal: string;
    if (hop >= MAX_REDIRECTS) refusal = 'too many redirects';
    else if (!target) refusal = 'redirect to an invalid URL';
    else if (target.protocol !== 'https:' && target.protocol !== 'http:') refusal = 'redirect to a non-HTTP URL';
    else return target;
    this.options.onFailure?.('protocol');
    throw new UpstreamError(this.name, 'protocol', refusal);
  }
}

/** Connection failures, timeouts and a token service's outage may pass; a rejected certificate will be rejected again. */
function isRetryableError(err: unknown): err is UpstreamError {
  return err instanceof UpstreamError && (err.failure === 'unreachable' || err.failure === 'timeout' || err.failure === 'unavailable');
}

function backoff(attempt: number): number {
  return Math.min(200 * 2 ** attempt, 5_000) * (0.5 + Math.random() / 2);
}

/** Milliseconds named by a Retry-After header (seconds or an HTTP date). */
export function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Drops a response body we do not need, reusing the connection when the body is small. */
export function discard(res: UpstreamResponse): void {
  res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
}
