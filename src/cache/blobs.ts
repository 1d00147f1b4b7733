/**
 * Blobs: served from storage when the repository is known to hold them, otherwise fetched once from
 * upstream through a spool that every concurrent client follows (see spool.ts), then committed.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import type { DownloadClaim, DownloadCoordinator } from '../coordination/fleet-flight.js';
import type { MetadataStore } from '../metadata/records.js';
import type { StorageDriver } from '../storage/driver.js';
import { blobKey } from '../storage/keys.js';
import { discard, type UpstreamClient, type UpstreamResponse } from '../upstream/client.js';
import { SpoolDownload, SpoolError } from './spool.js';
import { errorForDownload, errorForFailure, errorForStatus } from './upstream-errors.js';

/** How a request was answered, as reported in headers, logs and metrics. */
export type CacheOutcome = 'hit' | 'miss' | 'coalesced' | 'stale' | 'revalidated';

/** A blob ready to be sent. */
export interface BlobSource {
  /** Its size, when known before the bytes are (always, except for a cold blob upstream sent chunked). */
  size: number | undefined;
  outcome: CacheOutcome;
  /** Bytes `start`..`end` inclusive. Call at most once; otherwise call `release`. */
  stream(start?: number, end?: number): Readable;
  release(): void;
  /** Resolves with the final size once the blob is complete (at once for stored blobs). */
  complete(): Promise<number>;
  /**
   * Copies bytes at `position` into `buffer` (waiting for them on a cold blob, and for verification
   * before byte `last`, the response's last); resolves with their count, 0 at the end. An
   * alternative to `stream` that lets the caller reuse buffers; then `release`.
   */
  read?(buffer: Buffer, position: number, last: number): Promise<number>;
}

interface Download {
  /** Undefined when another replica stored the blob while this one waited for it. */
  spool: Promise<SpoolDownload | undefined>;
  /** The upstream it is fetched from. */
  upstream: string;
  /** The upstream and repository it was fetched for. */
  origin: string;
}

/** What the blob cache reports as it works (for metrics). */
export interface BlobCacheEvents {
  downloadStarted(upstream: string): void;
  /** A download ended: `failure` is the reason when it did not verify or finish. */
  downloadEnded(upstream: string, bytes: number, failure?: string): void;
  joined(upstream: string): void;
  /** A blob was committed to storage. */
  stored(bytes: number): void;
}

/**
 * What the caches report about content use, for the size limit and `regmirror ls` (lifecycle/).
 * Called on the request path: implementations only note the call in memory.
 */
export interface ContentUse {
  /** `digest` was served to a client (from the cache, or as it arrived). */
  accessed(digest: Digest): void;
  /** `digest`, of `size` bytes, is now in storage. */
  stored(digest: Digest, size: number): void;
  /** A manifest was asked for by tag. */
  pulled(upstream: string, repository: string, tag: string): void;
}

/** What a replica of a fleet learns at each sync about the evictor's work (from lifecycle/). */
export interface FleetNews {
  /** Content the fleet's evictor is deleting: no URL to it is signed (it is streamed) until it is kept or deleted. */
  evicting: readonly string[];
  /** `evicting` is all such content, not only what changed since the last sync. */
  all: boolean;
  /** Content no longer being deleted (kept after all, or deleted): a redirect to it looks in storage first. */
  settled: readonly string[];
  /**
   * Until when (`Date.now()`) URLs signed earlier are taken to lead to the object without a look in
   * storage: a replica out of touch with the fleet would not learn that the object was deleted.
   */
  trustedUntil: number;
}

/** Dependencies of the blob cache. */
export interface BlobCacheOptions {
  storage: StorageDriver;
  metadata: MetadataStore;
  upstream: (name: string) => UpstreamClient;
  /** A local folder for spool files, on the same filesystem as storage when that is local. */
  spoolDir: string;
  logger: Logger;
  events?: BlobCacheEvents | undefined;
  /** Lifetime of presigned blob URLs; unset: blobs are always streamed through this process. */
  redirectSeconds?: number | undefined;
  /** Single flight across replicas (coordination/); unset: each process downloads on its own. */
  fleet?: DownloadCoordinator | undefined;
  use?: ContentUse | undefined;
}

/** Serves blobs for any upstream, one download per digest at a time. */
export class BlobCache {
  private readonly downloads = new Map<Digest, Download>();
  /** Stored blobs being opened or streamed, with how many clients each. */
  private readonly reading = new Map<Digest, number>();
  /**
   * Blobs handed out as presigned URLs that are still valid: a client may be downloading them from
   * storage, so eviction leaves them, and the next redirect needs no `HEAD` of the object.
   */
  private readonly redirected: LRUCache<Digest, true> | undefined;
  /** Blobs the evictor is deleting now (reserveForDelete): no URL to them is signed meanwhile. */
  private readonly deleting = new Set<Digest>();
  /** Blobs the fleet's evictor is deleting (fleetSynced): no URL to them is signed either. */
  private evictingElsewhere = new Set<string>();
  /** Until when `redirected` is trusted (fleetSynced); always, outside a fleet. */
  private redirectedTrustedUntil = Number.POSITIVE_INFINITY;

  constructor(private readonly options: BlobCacheOptions) {
    if (options.redirectSeconds !== undefined) this.redirected = new LRUCache({ max: 10_000, ttl: options.redirectSeconds * 1000 });
  }

  /**
   * Empties the spool folder: whatever is there was left by a process that died mid-download. Its
   * contents go, not the folder, which may be a mount point (an emptyDir, a tmpfs) that rmdir refuses.
   */
  async init(): Promise<void> {
    const { spoolDir } = this.options;
    await mkdir(spoolDir, { recursive: true });
    await Promise.all((await readdir(spoolDir)).map((name) => rm(join(spoolDir, name), { recursive: true, force: true })));
  }

  /** Downloads under way now. */
  get inflight(): number {
    return this.downloads.size;
  }

  /** True while `digest` is being downloaded or streamed from storage, or a URL to it is valid: eviction must leave it. */
  inUse(digest: Digest): boolean {
    return this.downloads.has(digest) || this.reading.has(digest) || this.redirected?.has(digest) === true;
  }

  /**
   * For eviction, right before it deletes `digest`: undefined when the blob is in use (it must stay);
   * otherwise a release to call once the delete has ended, until which no URL to the blob is signed
   * (the client would be sent to an object about to vanish).
   */
  reserveForDelete(digest: Digest): (() => void) | undefined {
    if (this.inUse(digest)) return undefined;
    this.deleting.add(digest);
    return () => this.deleting.delete(digest);
  }

  /**
   * What the last sync with the fleet said: content being deleted is not redirected to, and URLs
   * signed earlier for content kept or deleted since no longer stand for the object (nor hold it).
   */
  fleetSynced(news: FleetNews): void {
    if (news.all) this.evictingElsewhere = new Set();
    for (const digest of news.evicting) this.evictingElsewhere.add(digest);
    for (const digest of news.settled) {
      this.evictingElsewhere.delete(digest);
      this.redirected?.delete(digest as Digest);
    }
    this.redirectedTrustedUntil = news.trustedUntil;
  }

  /** Opens a blob for a GET. */
  async open(upstream: string, repository: string, digest: Digest): Promise<BlobSource> {
    const source = await this.find(upstream, repository, digest);
    // An empty blob has no last byte to hold back until verification: it is handed out verified.
    if (source.size === 0) {
      await source.complete().catch((err: unknown) => {
        source.release();
        throw err;
      });
    }
    this.options.use?.accessed(digest);
    return source;
  }

  private async find(upstream: string, repository: string, digest: Digest): Promise<BlobSource> {
    // The download map is checked before storage (a download leaves the map only after its commit)
    // and again after it, since another request may have started a download meanwhile.
    const joined = await this.join(upstream, repository, digest);
    if (joined) return joined;
    const stored = await this.openStored(upstream, repository, digest);
    if (stored) return stored;
    const joinedLater = await this.join(upstream, repository, digest);
    if (joinedLater) return joinedLater;
    const download = await this.startDownload(upstream, repository, digest);
    const fetched = download && fromSpool(download, 'miss', upstream);
    if (fetched) return fetched;
    const storedElsewhere = await this.openStored(upstream, repository, digest); // by another replica
    if (!storedElsewhere) {
      // It failed before this request could join it (a spool that failed is not joined).
      if (download) await verified(download, upstream);
      throw new RegistryError('UNKNOWN', 'download closed before it could be read');
    }
    return { ...storedElsewhere, outcome: 'coalesced' };
  }

  /** Joins a download of the blob under way, if there is one that is still readable. */
  private async join(upstream: string, repository: string, digest: Digest): Promise<BlobSource | undefined> {
    const download = this.downloads.get(digest);
    if (!download) return undefined;
    if (download.origin !== originOf(upstream, repository)) await this.confirmUpstreamHas(upstream, repository, digest);
    const spool = await download.spool;
    const joined = spool && fromSpool(spool, 'coalesced', download.upstream); // undefined: stored or failed meanwhile, look again
    if (joined) this.options.events?.joined(upstream);
    return joined;
  }

  /**
   * A short-lived URL to get a stored blob straight from storage (when redirects are on, the driver
   * can sign URLs, and the repository is known to hold the blob); undefined: serve it with `open`.
   */
  async presigned(upstream: string, repository: string, digest: Digest): Promise<string | undefined> {
    const { storage, metadata, redirectSeconds } = this.options;
    if (redirectSeconds === undefined || !this.redirected || !storage.presignGet) return undefined;
    if (!(await metadata.hasBlobLink(upstream, repository, digest))) return undefined;
    // Held before the look-up, in the same turn as the look for a delete under way: the evictor
    // reserves only blobs not held, so either it leaves this one, or this sees its reservation and
    // the blob is streamed instead (a miss, once it is gone).
    const done = this.hold(digest);
    try {
      if (this.deleting.has(digest) || this.evictingElsewhere.has(digest)) return undefined;
      const known = this.redirected.has(digest) && Date.now() < this.redirectedTrustedUntil;
      if (!known && !(await storage.stat(blobKey(digest)))) return undefined;
      this.redirected.set(digest, true);
    } finally {
      done();
    }
    this.options.use?.accessed(digest); // served, though not through this process: still a use for LRU
    return storage.presignGet(blobKey(digest), redirectSeconds);
  }

  /** Size and outcome for a HEAD, without downloading the blob. */
  async stat(upstream: string, repository: string, digest: Digest): Promise<{ size: number | undefined; outcome: CacheOutcome }> {
    const download = this.downloads.get(digest);
    const spool = download && download.origin === originOf(upstream, repository) ? await download.spool : undefined;
    // A download upstream sends chunked has no size yet: a HEAD asks upstream for it below.
    if (spool?.size !== undefined) return { size: spool.size, outcome: 'coalesced' };
    const stored = await this.options.storage.stat(blobKey(digest));
    if (stored && (await this.options.metadata.hasBlobLink(upstream, repository, digest))) {
      this.options.use?.accessed(digest);
      return { size: stored.size, outcome: 'hit' };
    }
    const size = await this.confirmUpstreamHas(upstream, repository, digest);
    return { size: stored?.size ?? size, outcome: stored ? 'hit' : 'miss' };
  }

  private async openStored(upstream: string, repository: string, digest: Digest): Promise<BlobSource | undefined> {
    const { storage, metadata } = this.options;
    const done = this.hold(digest); // from before the open, so eviction never deletes it in between
    let handle;
    try {
      const linked = await metadata.hasBlobLink(upstream, repository, digest);
      handle = await storage.open(blobKey(digest));
      if (!handle) {
        done();
        return undefined;
      }
      if (!linked) await this.confirmUpstreamHas(upstream, repository, digest);
    } catch (err) {
      await handle?.close();
      done();
      throw err;
    }
    const opened = handle;
    return {
      size: opened.size,
      outcome: 'hit',
      stream: (start, end) => opened.stream(start, end).once('close', done),
      release: () => {
        done();
        void opened.close();
      },
      complete: () => Promise.resolve(opened.size),
      ...(opened.read ? { read: opened.read } : {}),
    };
  }

  /** Marks a stored blob as being read; the returned function (idempotent) ends that. */
  private hold(digest: Digest): () => void {
    this.reading.set(digest, (this.reading.get(digest) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = this.reading.get(digest)! - 1;
      if (left === 0) this.reading.delete(digest);
      else this.reading.set(digest, left);
    };
  }

  /**
   * Asks upstream (HEAD) whether this repository holds a blob the cache got through another one,
   * so content is never handed to a repository that upstream would refuse it for. Links on success.
   */
  private async confirmUpstreamHas(upstream: string, repository: string, digest: Digest): Promise<number | undefined> {
    const res = await this.requestBlob('HEAD', upstream, repository, digest);
    await this.options.metadata.linkBlob(upstream, repository, digest);
    const length = Number(res.headers['content-length']);
    return Number.isFinite(length) ? length : undefined;
  }

  /** Asks upstream for a blob; anything but a 200 becomes the matching RegistryError (a HEAD's body is dropped). */
  private async requestBlob(method: 'GET' | 'HEAD', upstream: string, repository: string, digest: Digest): Promise<UpstreamResponse> {
    let res: UpstreamResponse;
    try {
      res = await this.options.upstream(upstream).request({ method, path: `/v2/${repository}/blobs/${digest}`, repository });
    } catch (err) {
      throw errorForFailure(err, upstream);
    }
    if (method === 'HEAD' || res.status !== 200) discard(res);
    if (res.status !== 200) throw errorForStatus(res, upstream, 'BLOB_UNKNOWN');
    return res;
  }

  private startDownload(upstream: string, repository: string, digest: Digest): Promise<SpoolDownload | undefined> {
    const started = this.claimAndFetch(upstream, repository, digest);
    const entry: Download = { spool: started.then((s) => s?.download), upstream, origin: originOf(upstream, repository) };
    this.downloads.set(digest, entry);
    const drop = (): void => {
      if (this.downloads.get(digest) === entry) this.downloads.delete(digest);
    };
    started.then(
      (s) => {
        if (!s) return drop();
        void this.commitWhenVerified(s.download, entry, upstream, repository, this.beginUpload(s.download)).finally(() => s.claim?.release());
      },
      drop,
    );
    return entry.spool;
  }

  /** Fetches once the fleet lets this replica (undefined: another replica stored the blob meanwhile). */
  private async claimAndFetch(upstream: string, repository: string, digest: Digest): Promise<{ download: SpoolDownload; claim?: DownloadClaim | undefined } | undefined> {
    const { fleet, storage } = this.options;
    const claim = await fleet?.claim(digest, async () => (await storage.stat(blobKey(digest))) !== undefined);
    if (claim === 'stored') return undefined;
    try {
      const download = await this.fetchIntoSpool(upstream, repository, digest);
      claim?.report(() => ({ written: download.written, size: download.expectedSize }));
      return { download, claim };
    } catch (err) {
      claim?.release();
      throw err;
    }
  }

  private async fetchIntoSpool(upstream: string, repository: string, digest: Digest): Promise<SpoolDownload> {
    const res = await this.requestBlob('GET', upstream, repository, digest);
    const length = Number(res.headers['content-length']);
    const path = join(this.options.spoolDir, randomUUID());
    let download: SpoolDownload;
    try {
      download = await SpoolDownload.start(digest, Number.isFinite(length) ? length : undefined, path, res.body);
    } catch (err) {
      res.body.destroy(); // frees the upstream connection now, not at its idle timeout
      throw err;
    }
    this.options.events?.downloadStarted(upstream);
    return download;
  }

  /**
   * With a driver that stores a file as it grows (S3), starts storing the blob as it arrives, from
   * the spool file: the object is completed only after the digest verified, and the upload is
   * aborted otherwise, so nothing partial is kept. A size upstream did not announce: stored after.
   */
  private beginUpload(download: SpoolDownload): Promise<void> | undefined {
    const { storage } = this.options;
    const size = download.expectedSize;
    if (!storage.putGrowingFile || size === undefined) return undefined;
    const upload = storage.putGrowingFile(blobKey(download.digest), download.path, size, (end) => download.holds(end));
    upload.catch(() => undefined); // awaited by the commit; a failed download aborts it on purpose
    return upload;
  }

  private async commitWhenVerified(download: SpoolDownload, entry: Download, upstream: string, repository: string, upload: Promise<void> | undefined): Promise<void> {
    const { storage, metadata, logger, events } = this.options;
    try {
      await download.done;
    } catch (err) {
      events?.downloadEnded(upstream, download.written, err instanceof SpoolError ? err.reason : 'upstream-failed');
      logger.warn({ err, upstream, repository, digest: download.digest }, 'blob download failed');
      this.forget(download, entry);
      return;
    }
    events?.downloadEnded(upstream, download.written);
    try {
      const key = blobKey(download.digest);
      // Only for the stored-bytes metric: a failed look-up must not abandon a verified blob (its upload goes on).
      const existed = await storage.stat(key).catch(() => undefined);
      // Clients already have every byte (they wait only for verification); the sync happens after,
      // and putFile resolves only once the blob is durable, so no link or count ever outlives it.
      await (upload ? upload.then(() => rm(download.path, { force: true })) : download.sync().then(() => storage.putFile(key, download.path)));
      await metadata.linkBlob(upstream, repository, download.digest);
      if (!existed) events?.stored(download.written);
      this.options.use?.stored(download.digest, download.written);
    } catch (err) {
      logger.warn({ err, upstream, repository, digest: download.digest }, 'blob served but not cached');
      await rm(download.path, { force: true });
    } finally {
      this.forget(download, entry);
    }
  }

  private forget(download: SpoolDownload, entry: Download): void {
    if (this.downloads.get(download.digest) === entry) this.downloads.delete(download.digest);
    void download.closeWhenIdle();
  }
}

function originOf(upstream: string, repository: string): string {
  return `${upstream}/${repository}`;
}

/** A source reading `download`, fetched from `upstream`, as it arrives. */
function fromSpool(download: SpoolDownload, outcome: CacheOutcome, upstream: string): BlobSource | undefined {
  const lease = download.retain();
  if (!lease) return undefined;
  return {
    size: download.size,
    outcome,
    stream: (start, end) => lease.read(start, end),
    read: (buffer, position, last) => lease.readInto(buffer, position, last),
    release: () => lease.release(),
    complete: async () => {
      await verified(download, upstream);
      return download.written;
    },
  };
}

/** Resolves once `download` verified; its failure as the client is to be told it. */
function verified(download: SpoolDownload, upstream: string): Promise<void> {
  return download.done.catch((err: unknown) => {
    throw errorForDownload(err, upstream);
  });
}
