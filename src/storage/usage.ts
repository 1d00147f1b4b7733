/** Measures what the store holds, for the cache-size metrics at start. */
import type { StorageDriver } from './driver.js';

/** Bytes and count of the objects under `prefix`. */
export async function measureUsage(storage: StorageDriver, prefix: string): Promise<{ bytes: number; objects: number }> {
  let bytes = 0;
  let objects = 0;
  for await (const key of storage.list(prefix)) {
    const stat = await storage.stat(key);
    if (!stat) continue; // removed while listing
    bytes += stat.size;
    objects++;
  }
  return { bytes, objects };
}
