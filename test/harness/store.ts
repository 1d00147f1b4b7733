// Checks a cache folder from the outside: every stored blob must hash to the digest it is stored under.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** Re-hashes every blob under `dataDir/blobs/sha256`; returns the digests whose bytes do not match, and the count. */
export async function verifyStore(dataDir: string): Promise<{ checked: number; corrupt: string[] }> {
  const root = join(dataDir, 'blobs', 'sha256');
  const corrupt: string[] = [];
  let checked = 0;
  for (const prefix of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, prefix))) {
      const hash = createHash('sha256');
      await pipeline(createReadStream(join(root, prefix, name)), hash);
      checked++;
      if (hash.digest('hex') !== name) corrupt.push(`sha256:${name}`);
    }
  }
  return { checked, corrupt };
}
