/**
 * Small mutable records beside the content: which repository holds which blob and manifest, and what
 * each tag points at. Kept in the storage driver (so they survive restarts and scale out with it)
 * and mirrored in bounded memory caches so warm requests do no metadata I/O.
 */
import { LRUCache } from 'lru-cache';
import type { Digest } from '../oci/digest.js';
import type { StorageDriver } from '../storage/driver.js';
import { blobLinkKey, manifestLinkKey, tagKey } from '../storage/keys.js';

/** What a tag pointed at when last asked upstream. */
export interface TagRecord {
  digest: Digest;
  mediaType: string;
  size: number;
  /** When upstream last confirmed the tag (ms since the epoch). */
  checkedAt: number;
}

/** A manifest known to be in a repository. */
export interface ManifestRecord {
  mediaType: string;
  size: number;
}

/**
 * Tag records shared by replicas (coordination/ keeps them in Redis). `get` resolves null for a tag
 * it does not have and rejects when it cannot answer; either way storage is asked next.
 */
export interface SharedTagRecords {
  get(key: string): Promise<TagRecord | null>;
  put(key: string, record: TagRecord): Promise<void>;
  /** Writes `record` unless the shared record names another digest, in one step; false when it does. */
  confirm(key: string, record: TagRecord): Promise<boolean>;
}

/** Entries kept in memory per record kind. */
const MEMORY_ENTRIES = 50_000;

/** Reads and writes tag records and repository links. */
export class MetadataStore {
  private readonly tags = new LRUCache<string, TagRecord>({ max: MEMORY_ENTRIES });
  private readonly manifests = new LRUCache<string, ManifestRecord>({ max: MEMORY_ENTRIES });
  private readonly blobLinks = new LRUCache<string, true>({ max: MEMORY_ENTRIES });

  /** With `sharedTags`, tag records come from there first, so one replica's revalidation serves all. */
  constructor(
    private readonly storage: StorageDriver,
    private readonly sharedTags?: SharedTagRecords,
  ) {}

  /** The tag's record, or undefined when the tag was never resolved. */
  async getTag(upstream: string, repository: string, tag: string): Promise<TagRecord | undefined> {
    const key = tagKey(upstream, repository, tag);
    if (this.sharedTags) {
      const shared = await this.sharedTags.get(key).catch(() => undefined); // undefined: unreachable
      if (shared) return shared;
      if (shared === null) {
        // Not shared yet (or lost): storage has the latest, where this process's memory may not.
        const stored = await this.load(key, this.tags);
        if (stored) await this.sharedTags.put(key, stored).catch(() => undefined);
        return stored;
      }
    }
    return this.tags.get(key) ?? this.load(key, this.tags);
  }

  /** Records what a tag points at. */
  async putTag(upstream: string, repository: string, tag: string, record: TagRecord): Promise<void> {
    const key = tagKey(upstream, repository, tag);
    await this.save(key, record, this.tags);
    await this.sharedTags?.put(key, record).catch(() => undefined); // Redis down: storage has it
  }

  /**
   * Records that upstream still has the tag at `record.digest`, unless the tag's record names
   * another digest by now (another request's HEAD, answered later, saw the tag move). With shared
   * records the check and the write are one step in Redis, so no replica overwrites a newer digest.
   */
  async confirmTag(upstream: string, repository: string, tag: string, record: TagRecord): Promise<void> {
    const key = tagKey(upstream, repository, tag);
    if (this.sharedTags) {
      const confirmed = await this.sharedTags.confirm(key, record).catch(() => undefined); // undefined: unreachable
      if (confirmed === false) return;
      if (confirmed) return this.save(key, record, this.tags);
    }
    const current = this.tags.get(key) ?? (await this.load(key, this.tags));
    if (current === undefined || current.digest === record.digest) await this.save(key, record, this.tags);
  }

  /** The repository's record of a manifest, or undefined when it has none. */
  async getManifest(upstream: string, repository: string, digest: Digest): Promise<ManifestRecord | undefined> {
    const key = manifestLinkKey(upstream, repository, digest);
    return this.manifests.get(key) ?? this.load(key, this.manifests);
  }

  /** Records that the repository holds a manifest. */
  async putManifest(upstream: string, repository: string, digest: Digest, record: ManifestRecord): Promise<void> {
    await this.save(manifestLinkKey(upstream, repository, digest), record, this.manifests);
  }

  /** True when the repository is known to hold the blob. */
  async hasBlobLink(upstream: string, repository: string, digest: Digest): Promise<boolean> {
    const key = blobLinkKey(upstream, repository, digest);
    if (this.blobLinks.get(key)) return true;
    if ((await this.storage.stat(key)) === undefined) return false;
    this.blobLinks.set(key, true);
    return true;
  }

  /** Records that the repository holds the blob. */
  async linkBlob(upstream: string, repository: string, digest: Digest): Promise<void> {
    const key = blobLinkKey(upstream, repository, digest);
    if (this.blobLinks.get(key)) return;
    await this.storage.put(key, Buffer.alloc(0));
    this.blobLinks.set(key, true);
  }

  private async load<T extends object>(key: string, memory: LRUCache<string, T>): Promise<T | undefined> {
    const data = await this.storage.get(key);
    if (!data) return undefined;
    try {
      const value = JSON.parse(data.toString('utf8')) as T;
      memory.set(key, value);
      return value;
    } catch {
      return undefined; // a damaged record is as good as none: the next fetch rewrites it
    }
  }

  private async save<T extends object>(key: string, value: T, memory: LRUCache<string, T>): Promise<void> {
    await this.storage.put(key, Buffer.from(JSON.stringify(value)));
    memory.set(key, value);
  }
}
