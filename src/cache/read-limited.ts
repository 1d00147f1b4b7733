/** Reads small upstream documents (manifests, lists) whole, with a size limit. */
import { RegistryError, type ErrorCode } from '../oci/errors.js';
import { readUpTo } from '../upstream/body.js';
import { discard, type UpstreamResponse } from '../upstream/client.js';

/** The response body as one buffer; throws `code` if it is longer than `limit` bytes, UPSTREAM_UNAVAILABLE if it is cut. */
export async function readLimited(res: UpstreamResponse, limit: number, code: ErrorCode): Promise<Buffer> {
  const tooLarge = (): RegistryError => {
    discard(res);
    return new RegistryError(code, `upstream document is larger than ${limit} bytes`);
  };
  if (Number(res.headers['content-length']) > limit) throw tooLarge();
  let body: Buffer | undefined;
  try {
    body = await readUpTo(res.body, limit);
  } catch (err) {
    // Cut or stalled mid-body: an outage like any other (stale content may be served).
    throw new RegistryError('UPSTREAM_UNAVAILABLE', `upstream document cut short: ${(err as Error).message}`);
  }
  if (!body) throw tooLarge();
  return body;
}
