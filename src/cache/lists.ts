/**
 * Tag lists and referrers: always asked of upstream (they change and are cheap), with the last
 * answer kept so that a client still gets one, marked stale, while upstream is down.
 */
import { createHash } from 'node:crypto';
import type { ErrorCode, RegistryError } from '../oci/errors.js';
import type { StorageDriver } from '../storage/driver.js';
import { listKey } from '../storage/keys.js';
import { discard, type UpstreamClient, type UpstreamResponse } from '../upstream/client.js';
import type { CacheOutcome } from './blobs.js';
import { readLimited } from './read-limited.js';
import { errorForFailure, errorForStatus, isUnavailable } from './upstream-errors.js';

/** Largest list document accepted from upstream. */
const MAX_LIST_BYTES = 4 * 1024 * 1024;

/** A list request for one repository. */
export interface ListQuery {
  upstream: string;
  repository: string;
  /** The upstream path with its query, e.g. `/v2/library/alpine/tags/list?n=10`. */
  path: string;
  /** Error code when upstream has no such list. */
  notFound: ErrorCode;
}

/** A list answer. */
export interface ListAnswer {
  body: Buffer;
  contentType: string;
  /** Upstream's `Link` header (pagination), if any. */
  link?: string | undefined;
  outcome: CacheOutcome;
}

interface StoredList {
  contentType: string;
  link?: string | undefined;
  body: string;
}

/** Passes list requests through, remembering the last answer of each. */
export class ListCache {
  constructor(
    private readonly storage: StorageDriver,
    private readonly upstream: (name: string) => UpstreamClient,
    private readonly serveStaleOnError: boolean,
  ) {}

  /** Answers a list request from upstream, or from the last answer when upstream is unavailable. */
  async get(query: ListQuery): Promise<ListAnswer> {
    const key = listKey(query.upstream, query.repository, createHash('sha256').update(query.path).digest('hex'));
    let res: UpstreamResponse;
    try {
      res = await this.upstream(query.upstream).request({ method: 'GET', path: query.path, repository: query.repository, headers: { accept: 'application/json' } });
    } catch (err) {
      return this.stale(key, errorForFailure(err, query.upstream));
    }
    if (res.status !== 200) {
      discard(res);
      const error = errorForStatus(res, query.upstream, query.notFound);
      return this.stale(key, error);
    }
    const body = await readLimited(res, MAX_LIST_BYTES, 'UPSTREAM_UNAVAILABLE', query.upstream);
    const contentType = String(res.headers['content-type'] ?? 'application/json');
    const link = typeof res.headers.link === 'string' ? res.headers.link : undefined;
    const stored: StoredList = { contentType, link, body: body.toString('base64') };
    await this.storage.put(key, Buffer.from(JSON.stringify(stored)));
    return { body, contentType, link, outcome: 'miss' };
  }

  private async stale(key: string, error: RegistryError): Promise<ListAnswer> {
    if (!this.serveStaleOnError || !isUnavailable(error)) throw error;
    const data = await this.storage.get(key);
    if (!data) throw error;
    const stored = JSON.parse(data.toString('utf8')) as StoredList;
    return { body: Buffer.from(stored.body, 'base64'), contentType: stored.contentType, link: stored.link, outcome: 'stale' };
  }
}
