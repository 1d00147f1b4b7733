/**
 * Manifests and tags. Manifests by digest are immutable: verified once, then served from the cache.
 * Tags are trusted for their TTL with no upstream request at all; after it they are revalidated
 * with a HEAD (Docker Hub does not count HEADs against its pull limit), and fetched with a GET only
 * when the digest moved. When upstream is unavailable, what is cached is served, marked stale.
 */
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { digestAlgorithm, digestOf, parseDigest, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { DEFAULT_MANIFEST_ACCEPT, isAcceptable, isIndexMediaType, looksLikeManifest, manifestMediaType, MEDIA_TYPE, withoutParameters } from '../oci/media-types.js';
import type { MetadataStore, TagRecord } from '../metadata/records.js';
import type { StorageDriver } from '../storage/driver.js';
import { blobKey } from '../storage/keys.js';
import { discard, type UpstreamClient, type UpstreamResponse } from '../upstream/client.js';
import type { CacheOutcome, ContentUse } from './blobs.js';
import { readLimited } from './read-limited.js';
import { SingleFlight } from './single-flight.js';
import { errorForFailure, errorForStatus, isUnavailable, upstreamFailure } from './upstream-errors.js';

/** Largest manifest accepted from upstream (Distribution's own limit is 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** A manifest request, routed and validated. */
export interface ManifestQuery {
  upstream: string;
  repository: string;
  /** A tag, or the digest when `digest` is set. */
  reference: string;
  digest?: Digest | undefined;
  /** Media types the client accepts; empty means any. */
  accept: readonly string[];
  /** HEAD needs no body, so a cold HEAD costs upstream only a HEAD. */
  method: 'GET' | 'HEAD';
}

/** A manifest ready to be sent. */
export interface ManifestAnswer {
  digest: Digest;
  mediaType: string;
  size: number;
  /** The document; absent only for HEAD answers. */
  body?: Buffer | undefined;
  outcome: CacheOutcome;
}

/** Dependencies of the manifest cache. */
export interface ManifestCacheOptions {
  storage: StorageDriver;
  metadata: MetadataStore;
  upstream: (name: string) => UpstreamClient;
  /** How long a tag is trusted without asking upstream, per upstream. */
  tagTTL: (upstream: string) => number;
  serveStaleOnError: boolean;
  /** Bytes of manifest documents kept in memory. */
  memoryBytes: number;
  logger: Logger;
  now?: () => number;
  /** Called when a manifest document is added to storage (for the cache-size metrics). */
  onStored?: ((bytes: number) => void) | undefined;
  use?: ContentUse | undefined;
}

/** Serves manifests by tag and digest for every upstream. */
export class ManifestCache {
  private readonly documents: LRUCache<Digest, Buffer> | undefined;
  private readonly flights = new SingleFlight<ManifestAnswer>();
  private readonly now: () => number;

  constructor(private readonly options: ManifestCacheOptions) {
    this.now = options.now ?? Date.now;
    this.documents = options.memoryBytes > 0
      ? new LRUCache<Digest, Buffer>({ maxSize: options.memoryBytes, sizeCalculation: (b) => Math.max(1, b.length) })
      : undefined;
  }

  /** Answers a manifest request from the cache or upstream. */
  async get(query: ManifestQuery): Promise<ManifestAnswer> {
    const answer = await (query.digest ? this.byDigest(query, query.digest) : this.byTag(query));
    // As Distribution does: a client never gets a manifest type its Accept header leaves out.
    if (!isAcceptable(answer.mediaType, query.accept)) {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest is a ${answer.mediaType}, which the request does not accept`);
    }
    this.options.use?.accessed(answer.digest);
    if (!query.digest) this.options.use?.pulled(query.upstream, query.repository, query.reference);
    return answer;
  }

  private async byDigest(query: ManifestQuery, digest: Digest): Promise<ManifestAnswer> {
    const local = await this.local(query, digest);
    if (local) return { ...local, outcome: 'hit' };
    return this.coalesced(query, `${digest}`, () => this.fetch(query, digest));
  }

  private async byTag(query: ManifestQuery): Promise<ManifestAnswer> {
    const { metadata } = this.options;
    const record = await metadata.getTag(query.upstream, query.repository, query.reference);
    if (!record || !isAcceptable(record.mediaType, query.accept)) {
      return this.coalesced(query, `tag:${query.reference}`, () => this.fetch(query, undefined));
    }
    if (this.now() - record.checkedAt < this.options.tagTTL(query.upstream)) {
      const local = await this.fromRecord(query, record);
      if (local) return { ...local, outcome: 'hit' };
      return this.coalesced(query, record.digest, () => this.fetch(query, record.digest)).catch((err: unknown) => {
        // The recorded digest is gone upstream (deleted after the tag moved on): the tag may not be.
        if (!(err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN')) throw err;
        return this.coalesced(query, `revalidate:${query.reference}`, () => this.revalidate(query, record));
      });
    }
    return this.coalesced(query, `revalidate:${query.reference}`, () => this.revalidate(query, record));
  }

  /**
   * HEADs the tag upstream; the cached manifest stays if the digest did not move. A tag that moved
   * is followed with a GET by digest — for a GET; a HEAD is answered from upstream's HEAD, since
   * Docker Hub counts GETs against its limit — and when that GET fails as an outage would (429,
   * 5xx, unreachable), the cached manifest is served stale.
   */
  private async revalidate(query: ManifestQuery, record: TagRecord): Promise<ManifestAnswer> {
    let res: UpstreamResponse;
    try {
      res = await this.send(query, 'HEAD', query.reference);
      discard(res);
    } catch (err) {
      return this.staleOr(query, record, err);
    }
    if (res.status !== 200) return this.staleOr(query, record, errorForStatus(res, query.upstream, 'MANIFEST_UNKNOWN'));
    const digest = parseDigest(String(res.headers['docker-content-digest'] ?? ''));
    const orStale = (err: unknown): Promise<ManifestAnswer> => this.staleOr(query, record, err);
    if (!digest) return this.fetch(query, undefined).catch(orStale);
    if (digest !== record.digest) {
      if (query.method === 'HEAD') return this.fromHead(query, res, digest).catch(orStale);
      return this.fetch(query, digest, { tag: query.reference }).catch(orStale);
    }
    await this.options.metadata.confirmTag(query.upstream, query.repository, query.reference, { ...record, checkedAt: this.now() });
    const local = await this.fromRecord(query, record);
    if (local) return { ...local, outcome: 'revalidated' };
    return this.fetch(query, digest, { tag: query.reference });
  }

  private async staleOr(query: ManifestQuery, record: TagRecord, err: unknown): Promise<ManifestAnswer> {
    const error = errorForFailure(err, query.upstream);
    if (!this.options.serveStaleOnError || !isUnavailable(error)) throw error;
    const local = await this.fromRecord(query, record);
    if (!local) throw error;
    this.options.logger.warn({ upstream: query.upstream, repository: query.repository, tag: query.reference, reason: error.message, err: error.cause }, 'upstream unavailable: serving stale tag');
    return { ...local, outcome: 'stale' };
  }

  /**
   * Gets a manifest from upstream by `digest`, or by the query's tag when no digest is given, verifies
   * it and stores it. A HEAD by tag asks upstream only for a HEAD; a HEAD by digest gets the
   * document, which then verifies and stays cached.
   */
  private async fetch(query: ManifestQuery, digest: Digest | undefined, opts: { tag?: string } = {}): Promise<ManifestAnswer> {
    const tag = digest === undefined ? query.reference : opts.tag;
    const method = query.method === 'HEAD' && digest === undefined ? 'HEAD' : 'GET';
    let res: UpstreamResponse;
    try {
      res = await this.send(query, method, digest ?? query.reference);
    } catch (err) {
      throw errorForFailure(err, query.upstream);
    }
    if (res.status !== 200) {
      discard(res);
      throw errorForStatus(res, query.upstream, 'MANIFEST_UNKNOWN');
    }
    const announced = parseDigest(String(res.headers['docker-content-digest'] ?? ''));
    if (method === 'HEAD') return this.fromHead(query, res, announced);

    const body = await readLimited(res, MAX_MANIFEST_BYTES, 'MANIFEST_INVALID', query.upstream);
    const actual = digestOf(body, digest ? digestAlgorithm(digest) : 'sha256');
    if ((digest && actual !== digest) || (announced && digestAlgorithm(announced) === digestAlgorithm(actual) && announced !== actual)) {
      throw upstreamFailure('UPSTREAM_UNAVAILABLE', query.upstream, 'digest mismatch', { detail: { expected: digest ?? announced, actual } });
    }
    if (!looksLikeManifest(body)) throw upstreamFailure('UPSTREAM_UNAVAILABLE', query.upstream, 'not a manifest');
    const contentType = headerString(res.headers['content-type']);
    const answer: ManifestAnswer = { digest: actual, mediaType: manifestMediaType(body, contentType), size: body.length, body, outcome: 'miss' };
    try {
      await this.store(query, answer, tag);
    } catch (err) {
      // The client still gets its verified manifest; the cache just could not keep it (disk full, ...).
      this.options.logger.warn({ err, upstream: query.upstream, repository: query.repository, digest: actual }, 'manifest served but not cached');
    }
    return answer;
  }

  /** A cold HEAD by tag: answered from upstream's HEAD, and the tag recorded (no GET, no pull counted). */
  private async fromHead(query: ManifestQuery, res: UpstreamResponse, digest: Digest | undefined): Promise<ManifestAnswer> {
    const size = Number(res.headers['content-length']);
    const contentType = headerString(res.headers['content-type']);
    const mediaType = contentType && withoutParameters(contentType);
    // Without a usable digest, size and type, the document itself has to tell.
    if (!digest || !Number.isInteger(size) || size <= 0 || !mediaType) return this.fetch({ ...query, method: 'GET' }, undefined);
    const answer: ManifestAnswer = { digest, mediaType, size, outcome: 'miss' };
    if (this.recordsTags(query)) {
      await this.options.metadata.putTag(query.upstream, query.repository, query.reference, { digest, mediaType, size, checkedAt: this.now() });
    }
    return answer;
  }

  private async store(query: ManifestQuery, answer: ManifestAnswer, tag: string | undefined): Promise<void> {
    const { storage, metadata } = this.options;
    const { upstream, repository } = query;
    const key = blobKey(answer.digest);
    // A stored copy of another size is damaged (a power cut before it reached the disk): replace it.
    const stored = await storage.stat(key);
    if (stored?.size !== answer.size) {
      await storage.put(key, answer.body!);
      if (!stored) this.options.onStored?.(answer.size);
    }
    this.options.use?.stored(answer.digest, answer.size);
    this.documents?.set(answer.digest, answer.body!);
    await metadata.putManifest(upstream, repository, answer.digest, { mediaType: answer.mediaType, size: answer.size });
    // The layers and config an image manifest names are, by definition, in this repository upstream.
    for (const child of referencedBlobs(answer.body!, answer.mediaType)) await metadata.linkBlob(upstream, repository, child);
    if (tag !== undefined && this.recordsTags(query)) {
      await metadata.putTag(upstream, repository, tag, { digest: answer.digest, mediaType: answer.mediaType, size: answer.size, checkedAt: this.now() });
    }
  }

  /** Tag records are written only for requests that accept every modern form, so none is skewed by a narrow Accept. */
  private recordsTags(query: ManifestQuery): boolean {
    return query.accept.length === 0 || ALL_MANIFEST_TYPES.every((t) => isAcceptable(t, query.accept));
  }

  private async fromRecord(query: ManifestQuery, record: TagRecord): Promise<Omit<ManifestAnswer, 'outcome'> | undefined> {
    if (query.method === 'HEAD') return { digest: record.digest, mediaType: record.mediaType, size: record.size };
    return this.local({ ...query, method: 'GET' }, record.digest);
  }

  /** The manifest from the cache, when this repository holds it and its bytes are present. */
  private async local(query: ManifestQuery, digest: Digest): Promise<Omit<ManifestAnswer, 'outcome'> | undefined> {
    const record = await this.options.metadata.getManifest(query.upstream, query.repository, digest);
    if (!record) return undefined;
    const body = await this.document(digest);
    if (!body) return undefined;
    return { digest, mediaType: record.mediaType, size: body.length, body: query.method === 'GET' ? body : undefined };
  }

  private async document(digest: Digest): Promise<Buffer | undefined> {
    const cached = this.documents?.get(digest);
    if (cached) return cached;
    const body = await this.options.storage.get(blobKey(digest));
    if (!body || digestOf(body, digestAlgorithm(digest)) !== digest) return undefined;
    this.documents?.set(digest, body);
    return body;
  }

  private send(query: ManifestQuery, method: 'GET' | 'HEAD', reference: string): Promise<UpstreamResponse> {
    const accept = query.accept.length > 0 ? query.accept.join(', ') : DEFAULT_MANIFEST_ACCEPT;
    return this.options.upstream(query.upstream).request({
      method,
      path: `/v2/${query.repository}/manifests/${reference}`,
      repository: query.repository,
      headers: { accept },
    });
  }

  private async coalesced(query: ManifestQuery, key: string, fn: () => Promise<ManifestAnswer>): Promise<ManifestAnswer> {
    // The same Accept types in another order are the same request.
    const flightKey = `${query.upstream}/${query.repository}|${key}|${query.method}|${[...query.accept].sort().join(',')}`;
    const { value, joined } = await this.flights.do(flightKey, fn);
    // A stale answer stays marked stale for everyone who shares it.
    return joined && value.outcome !== 'stale' ? { ...value, outcome: 'coalesced' } : value;
  }
}

const ALL_MANIFEST_TYPES = [MEDIA_TYPE.ociIndex, MEDIA_TYPE.ociManifest, MEDIA_TYPE.dockerManifestList, MEDIA_TYPE.dockerManifest];

function headerString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Digests of the config and layers of an image manifest (none for indexes or unreadable documents). */
function referencedBlobs(body: Buffer, mediaType: string): Digest[] {
  if (isIndexMediaType(mediaType)) return [];
  try {
    const doc = JSON.parse(body.toString('utf8')) as { config?: { digest?: unknown }; layers?: Array<{ digest?: unknown }> };
    const candidates = [doc.config?.digest, ...(doc.layers ?? []).map((l) => l.digest)];
    return candidates.flatMap((d) => (typeof d === 'string' && parseDigest(d) ? [d as Digest] : []));
  } catch {
    return [];
  }
}
