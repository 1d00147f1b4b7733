/** Failures talking to an upstream registry, shaped for the cache's stale-serving decisions. */

/** Why an upstream could not give an answer. */
export type UpstreamFailure = 'unreachable' | 'timeout' | 'auth' | 'protocol';

/** An upstream that did not answer usefully (network, timeout, token service, malformed reply). */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    readonly upstream: string,
    readonly failure: UpstreamFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
