/**
 * `regmirror ls`: the tags the cache knows (from the tag records in storage), each with the bytes of
 * its content still cached — the manifest, and for an index its platforms' manifests, configs and
 * layers — and its pulls from the access index.
 */
import { parseDigest, type Digest } from '../oci/digest.js';
import type { TagRecord } from '../metadata/records.js';
import type { StorageDriver } from '../storage/driver.js';
import { blobKey } from '../storage/keys.js';
import type { AccessIndex } from './access-index.js';

/** One tag of a cached repository. */
export interface TagListing {
  upstream: string;
  repository: string;
  tag: string;
  /** What the tag pointed at when last resolved. */
  digest: string;
  /** Bytes of the tag's content that are cached. */
  bytes: number;
  /** `complete`: everything pulled is cached; `partial`: some of it was evicted; `evicted`: not even the manifest is. */
  cached: 'complete' | 'partial' | 'evicted';
  /** When a client last asked for the tag (ms since the epoch), if the index knows. */
  lastPulled: number | undefined;
  /** Manifest requests by this tag that the index counted. */
  pulls: number;
}

interface Descriptor {
  digest?: unknown;
}

interface ManifestDocument {
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
}

/** Lists the cached tags, optionally of one upstream, sorted by upstream, repository and tag. */
export async function listCache(storage: StorageDriver, index: AccessIndex, options: { upstream?: string | undefined } = {}): Promise<TagListing[]> {
  const pulls = new Map(index.pulls().map((p) => [`${p.upstream} ${p.repository} ${p.tag}`, p]));
  const sizes = new Sizes(storage, index);
  const listings: TagListing[] = [];
  const prefix = options.upstream === undefined ? 'repositories/' : `repositories/${options.upstream}/`;
  for await (const key of storage.list(prefix)) {
    const m = /^repositories\/([^/]+)\/(.+)\/_tags\/([^/]+)$/.exec(key);
    if (!m) continue;
    const [, upstream, repository, tag] = m as unknown as [string, string, string, string];
    const record = await readJson<TagRecord>(storage, key);
    if (!record) continue;
    const pull = pulls.get(`${upstream} ${repository} ${tag}`);
    const { bytes, missing, total } = await sizes.of(record.digest);
    const cached = missing === 0 ? 'complete' : missing === total ? 'evicted' : 'partial';
    listings.push({ upstream, repository, tag, digest: record.digest, bytes, cached, lastPulled: pull?.pulledAt, pulls: pull?.pulls ?? 0 });
  }
  return listings.sort((a, b) => a.upstream.localeCompare(b.upstream) || a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
}

/** Sizes of manifests' content, each document read once. */
class Sizes {
  private readonly documents = new Map<string, ManifestDocument | undefined>();

  constructor(
    private readonly storage: StorageDriver,
    private readonly index: AccessIndex,
  ) {}

  /**
   * Cached bytes of everything `digest` names, and how many of its pieces are missing. A platform
   * manifest of an index that is not cached counts as never pulled (clients pull one platform),
   * not as missing.
   */
  async of(digest: string): Promise<{ bytes: number; missing: number; total: number }> {
    const seen = new Set<string>();
    let bytes = 0;
    let missing = 0;
    const visit = async (d: string, kind: 'root' | 'platform' | 'blob'): Promise<void> => {
      if (seen.has(d)) return;
      const size = await this.size(d);
      if (size === undefined && kind === 'platform') return;
      seen.add(d);
      if (size === undefined) {
        missing++;
        return;
      }
      bytes += size;
      if (kind === 'blob') return;
      const doc = await this.document(d);
      for (const child of doc?.manifests ?? []) if (validDigest(child)) await visit(child.digest, 'platform');
      for (const blob of [doc?.config, ...(doc?.layers ?? [])]) if (validDigest(blob)) await visit(blob.digest, 'blob');
    };
    await visit(digest, 'root');
    return { bytes, missing, total: seen.size };
  }

  private async size(digest: string): Promise<number | undefined> {
    return this.index.get(digest)?.size ?? (await this.storage.stat(blobKey(digest as Digest)))?.size;
  }

  private async document(digest: string): Promise<ManifestDocument | undefined> {
    if (!this.documents.has(digest)) this.documents.set(digest, await readJson<ManifestDocument>(this.storage, blobKey(digest as Digest)));
    return this.documents.get(digest);
  }
}

function validDigest(d: Descriptor | undefined): d is { digest: Digest } {
  return typeof d?.digest === 'string' && parseDigest(d.digest) !== undefined;
}

async function readJson<T>(storage: StorageDriver, key: string): Promise<T | undefined> {
  const data = await storage.get(key);
  if (!data) return undefined;
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}
