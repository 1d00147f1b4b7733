/** Reads small upstream documents (manifests, lists) whole, with a size limit. */
import type { ErrorCode, RegistryError } from '../oci/errors.js';
import { readUpTo } from '../upstream/body.js';
import { discard, type UpstreamResponse } from '../upstream/client.js';
import { upstreamFailure } from './upstream-errors.js';

/**
 * The body `upstream` sent, as one buffer; throws `code` if it is longer than `limit` bytes,
 * UPSTREAM_UNAVAILABLE if it is cut.
 */
export async function readLimited(res: UpstreamResponse, limit: number, code: ErrorCode, upstream: string): Promise<Buffer> {
  const tooLarge = (): RegistryError => upstreamFailure(code, upstream, `document larger than ${limit} bytes`);
  if (Number(res.headers['content-length']) > limit) {
    discard(res);
    throw tooLarge();
  }
  let body: Buffer | undefined;
  try {
    body = await readUpTo(res.body, limit);
  } catch (err) {
    // Cut or stalled mid-body: an outage like any other (stale content may be served).
    throw upstreamFailure('UPSTREAM_UNAVAILABLE', upstream, 'response cut short', { cause: err });
  }
  if (!body) throw tooLarge(); // readUpTo destroyed the body
  return body;
}
