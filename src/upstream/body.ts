/** Reading small upstream bodies (token replies, manifests, lists) whole, within a size limit. */
import type { Dispatcher } from 'undici';

/**
 * The body as one buffer, or undefined once it passes `limit` bytes (the body is destroyed then).
 * Rejects when the body is cut or stalls.
 */
export async function readUpTo(body: Dispatcher.ResponseData['body'], limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) return undefined; // leaving the loop destroys the body
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
