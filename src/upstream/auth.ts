/**
 * Upstream authentication: parses `WWW-Authenticate` challenges and keeps bearer tokens per scope
 * until they expire, so a warm pull costs no token round trip. The credentials go to the upstream
 * and to the token service its own challenge names (over https when the upstream is https), never
 * to a host a redirect led to; token replies are bounded in size and time.
 */
import { request, type Dispatcher } from 'undici';
import { basicToken, type Credentials } from '../config/credentials.js';
import { readUpTo } from './body.js';
import { isTimeout, toUpstreamError, UpstreamError, type UpstreamFailure } from './errors.js';

/** A parsed `WWW-Authenticate` challenge. */
export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** Longest challenge parsed; real ones are a few hundred bytes. */
const MAX_CHALLENGE_CHARS = 8 * 1024;
/** Longest token reply read; real ones are a few kilobytes. */
const MAX_TOKEN_REPLY_BYTES = 64 * 1024;
/** Longest a token request may take in all (the pool's timeouts only bound each wait). */
const TOKEN_REQUEST_TIMEOUT_MS = 30_000;

/** Parses the first Bearer or Basic challenge of a `WWW-Authenticate` header (none if it is over 8 KiB). */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value || value.length > MAX_CHALLENGE_CHARS) return undefined;
  const m = /^\s*(bearer|basic)\b(.*)$/i.exec(value);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  // A name starts only where no name character precedes it: linear time on any input.
  const paramRe = /(?<![a-zA-Z_])([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (const p of m[2]!.matchAll(paramRe)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase() as Challenge['scheme'], params };
}

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Tokens are renewed this long before the expiry the token service gave. */
const EXPIRY_MARGIN_MS = 10_000;
/** The spec's default lifetime when the token service names none. */
const DEFAULT_TOKEN_SECONDS = 60;
/** Upper bound on cached scopes per upstream; the oldest are dropped first. */
const MAX_CACHED_SCOPES = 10_000;

/** Authorization for one upstream: what scheme it asked for, and tokens by scope. */
export class UpstreamAuth {
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly upstream: string,
    /** The upstream's URL: an https upstream's token service must be https too. */
    private readonly base: URL,
    private readonly credentials: Credentials | undefined,
    private readonly dispatcher: Dispatcher,
    /** Observes each token request that failed (with its kind), once however many requests shared it. */
    private readonly onFailure?: (failure: UpstreamFailure) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** The Authorization header to send for `scope` before any challenge, if one is known. */
  async headerFor(scope: string): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    if (this.challenge.scheme === 'basic') return this.basicHeader();
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt > this.now()) return cached.header;
    return this.fetchToken(scope);
  }

  /** Records a challenge from a 401 and returns the header to retry with, or undefined if none can help. */
  async answer(header: string | string[] | undefined, scope: string): Promise<string | undefined> {
    const challenge = parseChallenge(header);
    if (!challenge) return undefined;
    this.challenge = challenge;
    this.tokens.delete(scope);
    if (challenge.scheme === 'basic') return this.basicHeader();
    return this.fetchToken(scope);
  }

  private basicHeader(): string | undefined {
    if (!this.credentials) return undefined;
    return `Basic ${basicToken(this.credentials)}`;
  }

  /** One token request per scope at a time: concurrent pulls of one image share it. */
  private fetchToken(scope: string): Promise<string> {
    let pending = this.pending.get(scope);
    if (!pending) {
      pending = this.requestToken(scope)
        .catch((err: unknown) => {
          if (err instanceof UpstreamError) this.onFailure?.(err.failure);
          throw err;
        })
        .finally(() => this.pending.delete(scope));
      this.pending.set(scope, pending);
    }
    return pending;
  }

  private async requestToken(scope: string): Promise<string> {
    const params = this.challenge!.params;
    if (!params.realm) throw new UpstreamError(this.upstream, 'auth', 'bearer challenge without a realm');
    let url: URL;
    try {
      url = new URL(params.realm);
    } catch {
      throw new UpstreamError(this.upstream, 'auth', 'bearer challenge with an invalid realm');
    }
    const secureEnough = url.protocol === 'https:' || (url.protocol === 'http:' && this.base.protocol === 'http:');
    if (!secureEnough) {
      throw new UpstreamError(this.upstream, 'auth', `token service at ${url.protocol}// refused: the upstream is ${this.base.protocol}//`);
    }
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    const basic = this.basicHeader();
    if (basic) headers.authorization = basic;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { dispatcher: this.dispatcher, headers, signal: AbortSignal.timeout(TOKEN_REQUEST_TIMEOUT_MS) });
    } catch (err) {
      throw toUpstreamError(this.upstream, err, 'token service');
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      const message = `token service answered ${res.statusCode}`;
      // Down or busy, as the registry itself can be: an outage, not refused credentials.
      if (res.statusCode >= 500 || res.statusCode === 429) {
        const retryAfter = res.headers['retry-after'];
        const answer = { status: res.statusCode, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined };
        throw new UpstreamError(this.upstream, 'unavailable', message, { answer });
      }
      throw new UpstreamError(this.upstream, 'auth', message);
    }
    // Too long, cut or not JSON: no token; out of time: a timeout.
    const reply = await readUpTo(res.body, MAX_TOKEN_REPLY_BYTES).catch((err: unknown) => {
      if (isTimeout(err)) throw toUpstreamError(this.upstream, err, 'token service');
      return undefined;
    });
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown } = {};
    try {
      if (reply) body = JSON.parse(reply.toString('utf8')) as typeof body;
    } catch {
      // not JSON
    }
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new UpstreamError(this.upstream, 'protocol', 'token service answered without a token');
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    const header = `Bearer ${token}`;
    if (this.tokens.size >= MAX_CACHED_SCOPES) this.tokens.delete(this.tokens.keys().next().value!);
    this.tokens.set(scope, { header, expiresAt: this.now() + seconds * 1000 - EXPIRY_MARGIN_MS });
    return header;
  }
}
