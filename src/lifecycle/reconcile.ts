/**
 * Brings the access index in line with storage: content the index does not know (an index that is
 * new, or lost its last second of notes to a kill -9) is added as accessed now; rows of content that
 * is gone are dropped. Safe while the mirror serves: rows stored after the walk began are kept.
 */
import { parseDigest, type Digest } from '../oci/digest.js';
import type { StorageDriver } from '../storage/driver.js';
import type { AccessIndex } from './access-index.js';

/** What a reconciliation found. */
export interface Reconciled {
  /** Every digest whose content is in storage. */
  present: Set<string>;
  /** Content the index did not know. */
  added: number;
  /** Digests the index knew whose content was gone. */
  dropped: string[];
}

const BATCH = 500;

/** The digest a content key (`blobs/<alg>/<xx>/<hex>`) stands for, or undefined for any other key. */
export function digestOfKey(key: string): Digest | undefined {
  const parts = key.split('/');
  if (parts.length !== 4 || parts[0] !== 'blobs') return undefined;
  const digest = parseDigest(`${parts[1]}:${parts[3]}`);
  return digest && parts[3]!.startsWith(parts[2]!) ? digest : undefined;
}

/** Walks `blobs/` and corrects the index; see the module comment. */
export async function reconcile(index: AccessIndex, storage: StorageDriver, now: () => number = Date.now): Promise<Reconciled> {
  const started = now();
  const present = new Set<string>();
  let added = 0;
  let batch: { digest: string; size: number }[] = [];
  const addBatch = (): void => {
    index.flush(); // notes of content stored meanwhile carry real access times: write them first
    added += index.addFound(batch, now());
    batch = [];
  };
  // Sizes come with the listing where the driver has them (S3): no HEAD per object the index lacks.
  const listing = storage.listWithSizes?.('blobs/') ?? keysOnly(storage.list('blobs/'));
  for await (const { key, size: listedSize } of listing) {
    const digest = digestOfKey(key);
    if (!digest) continue;
    present.add(digest);
    if (index.get(digest)) continue;
    const size = listedSize ?? (await storage.stat(key))?.size;
    if (size === undefined) {
      present.delete(digest); // removed while walking
      continue;
    }
    batch.push({ digest, size });
    if (batch.length >= BATCH) addBatch();
  }
  addBatch();
  return { present, added, dropped: index.dropMissing(present, started) };
}

/** A listing without sizes, in the shape of one with them. */
async function* keysOnly(keys: AsyncIterable<string>): AsyncIterable<{ key: string; size?: number }> {
  for await (const key of keys) yield { key };
}
