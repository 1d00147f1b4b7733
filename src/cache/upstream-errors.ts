/**
 * Turns what an upstream answered into regmirror's error model. A client is told which upstream
 * failed (by its configured name) and how, in a short category; never an address, a host a
 * redirect led to, or a raw network error. Those stay in the error's `cause`, which the server logs
 * with the request's id.
 */
import { RegistryError, toRegistryError, type ErrorCode } from '../oci/errors.js';
import { UpstreamError, type UpstreamFailure } from '../upstream/errors.js';
import type { UpstreamResponse } from '../upstream/client.js';
import { SpoolError } from './spool.js';

/**
 * True when an answer means "upstream is not available now", the case for serving stale content.
 * Judged by the code the client would get, so the two never disagree.
 */
export function isUnavailable(error: RegistryError): boolean {
  return UNAVAILABLE_CODES.has(error.code);
}

const UNAVAILABLE_CODES = new Set<ErrorCode>(['UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'TOOMANYREQUESTS']);

/** What else an upstream failure carries: client-facing detail and headers, and the logged cause. */
interface FailureExtras {
  detail?: unknown;
  headers?: Record<string, string>;
  cause?: unknown;
}

/** The RegistryError for a failure of `upstream`: `upstream <name>: <category>`. */
export function upstreamFailure(code: ErrorCode, upstream: string, category: string, extras: FailureExtras = {}): RegistryError {
  const options = extras.cause === undefined ? undefined : { cause: extras.cause };
  return new RegistryError(code, `upstream ${upstream}: ${category}`, extras.detail, extras.headers, options);
}

/** The RegistryError for an upstream answer that is not a success; `notFound` is the 404 code. */
export function errorForStatus(res: UpstreamResponse, upstream: string, notFound: ErrorCode): RegistryError {
  const status = res.status;
  if (status === 404) return new RegistryError(notFound, `not found on ${upstream}`);
  if (status === 401 || status === 403) return upstreamFailure('DENIED', upstream, 'access denied', { detail: { upstreamStatus: status } });
  if (status === 429) return rateLimited(upstream, res.headers['retry-after']);
  if (status === 416) return new RegistryError('RANGE_INVALID', 'range not satisfiable');
  const detail = { upstreamStatus: status };
  // Any other 4xx is upstream refusing this request, which cached content must not paper over.
  if (status >= 400 && status < 500) return upstreamFailure('UPSTREAM_REFUSED', upstream, `refused with HTTP status ${status}`, { detail });
  return upstreamFailure('UPSTREAM_UNAVAILABLE', upstream, `answered HTTP status ${status}`, { detail });
}

/** A 429 from `upstream` (or its token service), passing its Retry-After on to the client. */
function rateLimited(upstream: string, retryAfter: string | string[] | undefined, cause?: unknown): RegistryError {
  const headers: Record<string, string> = typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : {};
  return upstreamFailure('TOOMANYREQUESTS', upstream, 'rate limited', { headers, cause });
}

const FAILURE_ANSWER: Record<UpstreamFailure, { code: ErrorCode; category: string }> = {
  unreachable: { code: 'UPSTREAM_UNAVAILABLE', category: 'unreachable' },
  timeout: { code: 'UPSTREAM_TIMEOUT', category: 'timed out' },
  unavailable: { code: 'UPSTREAM_UNAVAILABLE', category: 'token service unavailable' },
  auth: { code: 'DENIED', category: 'authentication failed' },
  // A host other than the upstream's own (where a redirect led, its token service) at an address
  // the mirror may not be sent to. Where upstream sends the mirror now has no bearing on what it
  // sent before: stale content may be served.
  'redirect-refused': { code: 'UPSTREAM_UNAVAILABLE', category: 'redirect refused' },
  protocol: { code: 'UPSTREAM_UNAVAILABLE', category: 'protocol error' },
  // An outage, not a refusal: what the cache holds came over a certificate that was trusted then,
  // so it is served stale while the upstream's certificate fails (expired, replaced, intercepted).
  tls: { code: 'UPSTREAM_UNAVAILABLE', category: 'TLS certificate rejected' },
};

/** The RegistryError for an exception from the upstream client. */
export function errorForFailure(err: unknown, upstream: string): RegistryError {
  if (!(err instanceof UpstreamError)) return toRegistryError(err);
  if (err.answer?.status === 429) return rateLimited(upstream, err.answer.retryAfter, err);
  const { code, category } = FAILURE_ANSWER[err.failure];
  return upstreamFailure(code, upstream, category, { cause: err });
}

const DOWNLOAD_CATEGORY: Record<SpoolError['reason'], string> = {
  'digest-mismatch': 'digest mismatch',
  'size-mismatch': 'size mismatch',
  'upstream-failed': 'download cut short',
  'write-failed': 'download failed (local write)',
};

/** The RegistryError for a blob download from `upstream` that failed once under way. */
export function errorForDownload(err: unknown, upstream: string): RegistryError {
  const reason = err instanceof SpoolError ? err.reason : 'upstream-failed';
  return upstreamFailure('UPSTREAM_UNAVAILABLE', upstream, DOWNLOAD_CATEGORY[reason], { cause: err });
}
