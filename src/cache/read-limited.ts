/** Reads small upstream documents (manifests, lists) whole, with a size limit. */
import { RegistryError, type ErrorCode } from '../oci/errors.js';
import { discard, type UpstreamResponse } from '../upstream/client.js';

/** The response body as one buffer; throws `code` if it is longer than `limit` bytes. */
export async function readLimited(res: UpstreamResponse, limit: number, code: ErrorCode): Promise<Buffer> {
  const tooLarge = (): RegistryError => {
    discard(res);
    return new RegistryError(code, `upstream document is larger than ${limit} bytes`);
  };
  if (Number(res.headers['content-length']) > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += (chunk as Buffer).length;
    if (total > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
