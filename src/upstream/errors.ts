/** Failures talking to an upstream registry, shaped for the cache's stale-serving decisions. */

/**
 * Why an upstream could not give an answer. `unavailable`: its token service answered 5xx or 429
 * (the registry's own such answers reach the caller as responses). `redirect-refused`: a host other than
 * its own (where a redirect led, its token service) at an address the mirror may not be sent to
 * (connect.ts); `protocol`: a reply that makes no sense.
 */
export type UpstreamFailure = 'unreachable' | 'timeout' | 'unavailable' | 'tls' | 'auth' | 'redirect-refused' | 'protocol';

/** The status of an `unavailable` answer, and its Retry-After. */
export interface OutageAnswer {
  status: number;
  retryAfter: string | undefined;
}

/** An upstream that did not answer usefully (network, timeout, certificate, token service, malformed reply). */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  readonly answer: OutageAnswer | undefined;
  constructor(
    readonly upstream: string,
    readonly failure: UpstreamFailure,
    message: string,
    options?: { cause?: unknown; answer?: OutageAnswer },
  ) {
    super(message, options);
    this.answer = options?.answer;
  }
}

/** What Node reports for a certificate it would not accept (besides the CERT_… codes, matched by prefix): OpenSSL's verification codes, and its own host-name check. */
const CERTIFICATE_REJECTED = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE', 'CRL_SIGNATURE_FAILURE', 'CRL_NOT_YET_VALID', 'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD', 'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'INVALID_CA',
  'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The UpstreamError for what a request to `upstream` threw (`from`: who was asked, for the log).
 * An UpstreamError already (a hop connect.ts refused) and an abort by the caller pass as they are.
 */
export function toUpstreamError(upstream: string, err: unknown, from: string): Error {
  if (err instanceof UpstreamError) return err;
  const code = (err as { code?: unknown }).code;
  if ((err as Error).name === 'AbortError') return err as Error;
  if (isTimeout(err)) return new UpstreamError(upstream, 'timeout', `${from} timed out: ${(err as Error).message}`, { cause: err });
  if (typeof code === 'string' && (code.startsWith('CERT_') || CERTIFICATE_REJECTED.has(code))) {
    return new UpstreamError(upstream, 'tls', `${from} certificate rejected: ${(err as Error).message}`, { cause: err });
  }
  return new UpstreamError(upstream, 'unreachable', `${from} unreachable: ${(err as Error).message}`, { cause: err });
}

/** True for the pool's timeouts and for an `AbortSignal.timeout` that fired. */
export function isTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || (err as Error).name === 'TimeoutError';
}
