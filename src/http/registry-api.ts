/**
 * The /v2 API: one handler per kind of request, each a thin layer between the parsed, routed request
 * and the caches. Errors are thrown as RegistryErrors and rendered once by the server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { RegistryError, UnsupportedEndpoint } from '../oci/errors.js';
import { parseAccept } from '../oci/media-types.js';
import type { BlobCache, CacheOutcome } from '../cache/blobs.js';
import type { ListCache } from '../cache/lists.js';
import type { ManifestCache } from '../cache/manifests.js';
import type { RoutedRequest } from '../routing/router.js';
import { parseRange } from './range.js';
import { sendJson } from './respond.js';
import { sendByReads } from './send-file.js';

/** The caches the API answers from. */
export interface RegistryApiDeps {
  blobs: BlobCache;
  manifests: ManifestCache;
  lists: ListCache;
}

/** What a handler reports for the access log (`denied`: refused by the upstream's repository filter). */
export interface Served {
  outcome?: CacheOutcome | 'denied' | undefined;
}

/** A request as the handlers see it. */
export interface ApiRequest {
  req: IncomingMessage;
  res: ServerResponse;
  route: RoutedRequest;
  /** The query string as sent (without `?`). */
  query: URLSearchParams;
  head: boolean;
}

/** Answers routed registry API requests. */
export class RegistryApi {
  constructor(private readonly deps: RegistryApiDeps) {}

  /** Dispatches on the kind of request. */
  async handle(r: ApiRequest): Promise<Served> {
    const { route } = r;
    // Paths that serve no method answer the same whatever the method; the rest are read-only.
    if (route.kind === 'upload') {
      throw new RegistryError('UNSUPPORTED', 'regmirror is a read-only mirror: push to the upstream registry', undefined, { allow: '' });
    }
    if (route.kind === 'catalog') throw new UnsupportedEndpoint("a mirror has no catalog: it does not know its upstreams' repository lists");
    if (r.req.method !== 'GET' && !r.head) {
      throw new RegistryError('UNSUPPORTED', 'regmirror is a read-only mirror: only GET and HEAD are served', undefined, { allow: 'GET, HEAD' });
    }
    switch (route.kind) {
      case 'base':
        sendJson(r.res, 200, '{}', r.head);
        return {};
      case 'manifest':
        return this.manifest(r, route);
      case 'blob':
        return this.blob(r, route);
      case 'tags':
        return this.list(r, route, `/v2/${route.repository}/tags/list`, ['n', 'last'], 'NAME_UNKNOWN');
      case 'referrers':
        return this.list(r, route, `/v2/${route.repository}/referrers/${route.digest}`, ['artifactType'], 'MANIFEST_UNKNOWN');
    }
  }

  private async manifest(r: ApiRequest, route: Extract<RoutedRequest, { kind: 'manifest' }>): Promise<Served> {
    const answer = await this.deps.manifests.get({
      upstream: route.upstream,
      repository: route.repository,
      reference: route.reference,
      digest: route.digest,
      accept: parseAccept(r.req.headers.accept),
      method: r.head ? 'HEAD' : 'GET',
    });
    const { res } = r;
    res.statusCode = 200;
    res.setHeader('content-type', answer.mediaType);
    res.setHeader('content-length', answer.size);
    res.setHeader('docker-content-digest', answer.digest);
    res.setHeader('etag', `"${answer.digest}"`);
    setOutcome(res, answer.outcome);
    res.end(r.head ? undefined : answer.body);
    return { outcome: answer.outcome };
  }

  private async blob(r: ApiRequest, route: Extract<RoutedRequest, { kind: 'blob' }>): Promise<Served> {
    const { res } = r;
    res.setHeader('docker-content-digest', route.digest);
    res.setHeader('etag', `"${route.digest}"`);
    res.setHeader('accept-ranges', 'bytes');
    res.setHeader('content-type', 'application/octet-stream');
    if (r.head) {
      const { size, outcome } = await this.deps.blobs.stat(route.upstream, route.repository, route.digest);
      if (size !== undefined) res.setHeader('content-length', size);
      setOutcome(res, outcome);
      res.end();
      return { outcome };
    }

    const location = await this.deps.blobs.presigned(route.upstream, route.repository, route.digest);
    if (location !== undefined) {
      // The client fetches the bytes from storage itself (storage.redirect).
      res.statusCode = 307;
      res.setHeader('location', location);
      setOutcome(res, 'hit');
      res.end();
      return { outcome: 'hit' };
    }
    const source = await this.deps.blobs.open(route.upstream, route.repository, route.digest);
    setOutcome(res, source.outcome);
    const rangeHeader = r.req.headers.range;
    let size = source.size;
    try {
      // A range needs the total size; only a cold blob that upstream sent chunked lacks it.
      if (rangeHeader !== undefined && size === undefined) size = await source.complete();
    } catch (err) {
      source.release();
      throw err;
    }
    const range = size === undefined ? undefined : parseRange(rangeHeader, size);
    if (range === 'unsatisfiable') {
      source.release();
      throw new RegistryError('RANGE_INVALID', 'range not satisfiable', { range: rangeHeader?.slice(0, 100), size }, { 'content-range': `bytes */${size}` });
    }
    if (range) {
      res.statusCode = 206;
      res.setHeader('content-range', `bytes ${range.start}-${range.end}/${size}`);
      res.setHeader('content-length', range.end - range.start + 1);
    } else {
      res.statusCode = 200;
      if (size !== undefined) res.setHeader('content-length', size);
    }
    if (source.read && size !== undefined) {
      await sendByReads(res, source.read, range?.start ?? 0, range?.end ?? size - 1).finally(() => source.release());
      return { outcome: source.outcome };
    }
    // A client that leaves early ends the pipeline; the upstream download (if any) carries on.
    await pipeline(source.stream(range?.start, range?.end), res).catch((err: unknown) => {
      if (!res.destroyed) res.destroy(err as Error);
    });
    return { outcome: source.outcome };
  }

  private async list(r: ApiRequest, route: Extract<RoutedRequest, { kind: 'tags' | 'referrers' }>, upstreamPath: string, params: string[], notFound: 'NAME_UNKNOWN' | 'MANIFEST_UNKNOWN'): Promise<Served> {
    const forwarded = new URLSearchParams();
    for (const name of params) {
      const value = r.query.get(name);
      if (value !== null) forwarded.set(name, value);
    }
    const n = forwarded.get('n');
    if (n !== null && !/^\d{1,9}$/.test(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer');
    const suffix = forwarded.size > 0 ? `?${forwarded}` : '';
    const answer = await this.deps.lists.get({ upstream: route.upstream, repository: route.repository, path: upstreamPath + suffix, notFound });
    if (answer.link) r.res.setHeader('link', rewriteLink(answer.link, r.req.url ?? '', r.query.get('ns')));
    setOutcome(r.res, answer.outcome);
    sendJson(r.res, 200, answer.body, r.head, answer.contentType);
    return { outcome: answer.outcome };
  }
}

function setOutcome(res: ServerResponse, outcome: CacheOutcome): void {
  res.setHeader('x-regmirror-cache', outcome);
  if (outcome === 'stale') res.setHeader('warning', '110 regmirror "Response is Stale"');
}

/**
 * Points upstream's pagination link back at this mirror, on the path the client used (so a path
 * prefix or `ns` keeps routing to the same upstream), keeping only upstream's query.
 */
export function rewriteLink(link: string, requestUrl: string, ns: string | null): string {
  const m = /<([^>]*)>(.*)/.exec(link);
  if (!m) return link;
  const query = new URL(m[1]!, 'http://upstream.invalid').searchParams;
  if (ns !== null) query.set('ns', ns);
  return `<${requestUrl.split('?')[0]}?${query}>${m[2]}`;
}
