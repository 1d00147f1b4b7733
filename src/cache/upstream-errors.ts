/** Turns what an upstream answered into regmirror's error model. */
import { RegistryError, type ErrorCode } from '../oci/errors.js';
import { UpstreamError } from '../upstream/errors.js';
import type { UpstreamResponse } from '../upstream/client.js';

/** True when a failure means "upstream is not available now", the case for serving stale content. */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof UpstreamError) return err.failure !== 'auth';
  if (err instanceof RegistryError) return UNAVAILABLE_CODES.has(err.code);
  return false;
}

const UNAVAILABLE_CODES = new Set<ErrorCode>(['UPSTREAM_UNAVAILABLE', 'UPSTREAM_TIMEOUT', 'TOOMANYREQUESTS']);

/** The RegistryError for an upstream answer that is not a success; `notFound` is the 404 code. */
export function errorForStatus(res: UpstreamResponse, upstream: string, notFound: ErrorCode): RegistryError {
  const status = res.status;
  if (status === 404) return new RegistryError(notFound, `not found on ${upstream}`);
  if (status === 401 || status === 403) return new RegistryError('DENIED', `${upstream} denied access`, { upstreamStatus: status });
  if (status === 429) {
    const retryAfter = res.headers['retry-after'];
    const headers: Record<string, string> = typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : {};
    return new RegistryError('TOOMANYREQUESTS', `${upstream} is rate limiting this mirror`, undefined, headers);
  }
  if (status === 416) return new RegistryError('RANGE_INVALID', 'range not satisfiable');
  // Any other 4xx is upstream refusing this request, which cached content must not paper over.
  if (status >= 400 && status < 500) return new RegistryError('UPSTREAM_REFUSED', `${upstream} refused the request (${status})`, { upstreamStatus: status });
  return new RegistryError('UPSTREAM_UNAVAILABLE', `${upstream} answered ${status}`, { upstreamStatus: status });
}

/** The RegistryError for an exception from the upstream client. */
export function errorForFailure(err: unknown, upstream: string): RegistryError {
  if (err instanceof RegistryError) return err;
  if (err instanceof UpstreamError) {
    if (err.failure === 'timeout') return new RegistryError('UPSTREAM_TIMEOUT', `${upstream} timed out`);
    if (err.failure === 'auth') return new RegistryError('DENIED', `could not authenticate to ${upstream}: ${err.message}`);
    return new RegistryError('UPSTREAM_UNAVAILABLE', `${upstream} is unavailable: ${err.message}`);
  }
  return new RegistryError('UNKNOWN', 'internal error');
}
