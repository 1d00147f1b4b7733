/**
 * Decides which upstream and repository a request means. The order is fixed: containerd's `?ns=`,
 * then a registry-host path prefix, then the listener's own upstream, then the Host header, then the
 * configured default. Every name is a lookup key into the configured upstreams, never a host to dial.
 * A repository that its upstream's filter refuses is refused here, however the request was routed.
 */
import { parseDigest, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { isValidRepositoryName, isValidTag, looksLikeRegistryHost } from '../oci/reference.js';
import type { RepositoryFilter } from './repository-filter.js';

/** How a request found its upstream (also reported in access logs). */
export type RoutedBy = 'ns' | 'path' | 'listener' | 'host' | 'default';

/** The parts of a request the router looks at. */
export interface IncomingRequest {
  /** The request path without the query, exactly as sent (never percent-decoded). */
  path: string;
  /** The `ns` query parameter, decoded. */
  ns?: string | undefined;
  /** The Host header. */
  host?: string | undefined;
  /** The upstream the listener that took the request is pinned to. */
  listenerUpstream?: string | undefined;
}

/** A registry API request, parsed and routed. */
export type RoutedRequest =
  | { kind: 'base'; upstream?: string; routedBy?: RoutedBy }
  | { kind: 'manifest'; upstream: string; routedBy: RoutedBy; repository: string; reference: string; digest?: Digest }
  | { kind: 'blob'; upstream: string; routedBy: RoutedBy; repository: string; digest: Digest }
  | { kind: 'tags'; upstream: string; routedBy: RoutedBy; repository: string }
  | { kind: 'referrers'; upstream: string; routedBy: RoutedBy; repository: string; digest: Digest }
  | { kind: 'upload'; upstream: string; routedBy: RoutedBy; repository: string }
  | { kind: 'catalog' };

/** What the router needs to know of one upstream. */
export interface RouteTarget {
  /** The registry name clients use, e.g. docker.io. */
  name: string;
  /** Other names that mean this upstream (Host headers, registry host aliases). */
  hosts: readonly string[];
  /** Docker Hub's rule: a single-component name lives under `library/`. */
  dockerHubNames: boolean;
  /** The repositories it may be pulled for (`upstreams.<name>.repositories`); all when absent. */
  repositories?: RepositoryFilter | undefined;
}

/** A request for a repository its upstream's filter refuses; it carries the route, for the access log. */
export class RepositoryDenied extends RegistryError {
  constructor(readonly route: Extract<RoutedRequest, { repository: string }>) {
    super('DENIED', `repository "${route.repository}" of ${route.upstream} is not allowed on this mirror`, { registry: route.upstream, repository: route.repository });
  }
}

const API_PATH = /^(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS_PATH = /^(.+)\/tags\/list$/;
const UPLOAD_PATH = /^(.+)\/blobs\/uploads(?:\/.*)?$/;

/** Maps requests to upstreams; built from the configuration, and again by each reload. */
export class Router {
  private byName = new Map<string, RouteTarget>();
  private defaultUpstream: string | undefined;

  constructor(targets: readonly RouteTarget[], defaultUpstream?: string) {
    this.reconfigure(targets, defaultUpstream);
  }

  /** Routes by these upstreams from now on; a request already routed keeps its route. */
  reconfigure(targets: readonly RouteTarget[], defaultUpstream?: string): void {
    const byName = new Map<string, RouteTarget>();
    for (const target of targets) {
      byName.set(target.name.toLowerCase(), target);
      for (const host of target.hosts) byName.set(host.toLowerCase(), target);
    }
    this.byName = byName;
    this.defaultUpstream = defaultUpstream;
  }

  /** Looks an upstream up by its name or one of its host aliases. */
  lookup(name: string): RouteTarget | undefined {
    return this.byName.get(name.toLowerCase());
  }

  /** Parses and routes a request; throws a RegistryError for a path or name that cannot be served. */
  route(req: IncomingRequest): RoutedRequest {
    let rest = this.stripApiRoot(req.path);
    if (rest === undefined) throw new RegistryError('NAME_UNKNOWN', 'not a registry API path', { path: req.path.slice(0, 256) });
    let prefixTarget: RouteTarget | undefined;
    if (rest.prefix !== undefined) prefixTarget = this.requireUpstream(rest.prefix, 'path');
    const api = rest.api;
    if (api === '' ) {
      const target = req.ns !== undefined ? this.requireUpstream(req.ns, 'ns') : prefixTarget;
      return target ? { kind: 'base', upstream: target.name, routedBy: req.ns !== undefined ? 'ns' : 'path' } : { kind: 'base' };
    }
    if (api === '_catalog') return { kind: 'catalog' };

    const upload = UPLOAD_PATH.exec(api);
    const tags = upload ? null : TAGS_PATH.exec(api);
    const call = upload || tags ? null : API_PATH.exec(api);
    const name = upload?.[1] ?? tags?.[1] ?? call?.[1];
    if (name === undefined) throw new RegistryError('NAME_UNKNOWN', 'not a registry API path', { path: req.path.slice(0, 256) });

    const { target, routedBy, repository } = this.resolveName(name, req, prefixTarget);
    const routed = repositoryRequest({ upstream: target.name, routedBy, repository }, upload !== null, tags !== null, call);
    // Refused here, before any cache or upstream sees the request: cached content is refused too.
    if (target.repositories !== undefined && !target.repositories.admits(repository)) throw new RepositoryDenied(routed);
    return routed;
  }

  /**
   * Splits the API root off a path. Accepted forms: `/v2/...`; `/<registry>/v2/...` (containerd and
   * buildkit hosts with a path); `/<registry>/...` without `/v2` (k3s uses such an endpoint verbatim).
   */
  private stripApiRoot(path: string): { prefix?: string; api: string } | undefined {
    if (path === '/v2' || path === '/v2/') return { api: '' };
    if (path.startsWith('/v2/')) return { api: path.slice(4).replace(/\/$/, '') };
    const slash = path.indexOf('/', 1);
    const first = slash === -1 ? path.slice(1) : path.slice(1, slash);
    if (!looksLikeRegistryHost(first)) return undefined;
    const remainder = slash === -1 ? '' : path.slice(slash);
    if (remainder === '' || remainder === '/' || remainder === '/v2' || remainder === '/v2/') return { prefix: first, api: '' };
    if (remainder.startsWith('/v2/')) return { prefix: first, api: remainder.slice(4).replace(/\/$/, '') };
    return { prefix: first, api: remainder.slice(1) };
  }

  private resolveName(name: string, req: IncomingRequest, prefixTarget: RouteTarget | undefined): { target: RouteTarget; routedBy: RoutedBy; repository: string } {
    const slash = name.indexOf('/');
    const first = slash === -1 ? '' : name.slice(0, slash);
    // With ?ns= a host-like first component is only stripped when it names that same upstream;
    // without it, a host-like first component routes when it is a configured upstream, and is part
    // of the repository when the listener or Host pins one (a dotted project, as Harbor allows);
    // failing both, it names an upstream not mirrored here.
    const hostLike = !prefixTarget && first !== '' && looksLikeRegistryHost(first);
    const firstTarget = hostLike ? this.lookup(first) : undefined;
    let target: RouteTarget;
    let routedBy: RoutedBy;
    let repository = name;
    if (req.ns !== undefined) {
      target = this.requireUpstream(req.ns, 'ns');
      routedBy = 'ns';
      if (firstTarget === target) repository = name.slice(slash + 1);
    } else if (prefixTarget) {
      target = prefixTarget;
      routedBy = 'path';
    } else if (firstTarget) {
      target = firstTarget;
      routedBy = 'path';
      repository = name.slice(slash + 1);
    } else {
      // Only requests that name no upstream themselves pay for the fallback's look-ups.
      const pinned = this.fallback(req);
      if (hostLike && (pinned === undefined || pinned.routedBy === 'default')) throw notMirrored(first, 'path');
      if (!pinned) throw new RegistryError('NAME_UNKNOWN', 'the request names no registry: use ?ns=<registry> or a /v2/<registry>/<name> path', { name });
      ({ target, routedBy } = pinned);
    }
    if (target.dockerHubNames && !repository.includes('/')) repository = `library/${repository}`;
    if (!isValidRepositoryName(repository)) throw new RegistryError('NAME_INVALID', 'invalid repository name', { name: repository.slice(0, 256) });
    return { target, routedBy, repository };
  }

  /** The upstream a request names by the listener it came to, its Host, or the default; in that order. */
  private fallback(req: IncomingRequest): { target: RouteTarget; routedBy: RoutedBy } | undefined {
    const byListener = req.listenerUpstream !== undefined ? this.lookup(req.listenerUpstream) : undefined;
    if (byListener) return { target: byListener, routedBy: 'listener' };
    const byHost = req.host !== undefined ? this.hostTarget(req.host) : undefined;
    if (byHost) return { target: byHost, routedBy: 'host' };
    const byDefault = this.defaultUpstream !== undefined ? this.lookup(this.defaultUpstream) : undefined;
    return byDefault ? { target: byDefault, routedBy: 'default' } : undefined;
  }

  private hostTarget(hostHeader: string): RouteTarget | undefined {
    const host = hostHeader.toLowerCase();
    return this.byName.get(host) ?? this.byName.get(host.replace(/:\d+$/, ''));
  }

  private requireUpstream(name: string, how: RoutedBy): RouteTarget {
    const target = this.lookup(name);
    if (!target) throw notMirrored(name, how);
    return target;
  }
}

function notMirrored(registry: string, how: RoutedBy): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `registry "${registry.slice(0, 255)}" is not mirrored here`, { registry: registry.slice(0, 255), routedBy: how });
}

/** The request for one repository that an API path names (its tag or digest checked). */
function repositoryRequest(base: { upstream: string; routedBy: RoutedBy; repository: string }, upload: boolean, tags: boolean, call: RegExpExecArray | null): Extract<RoutedRequest, { repository: string }> {
  if (upload) return { kind: 'upload', ...base };
  if (tags) return { kind: 'tags', ...base };
  const [, , what, reference] = call as unknown as [string, string, string, string];
  if (what === 'manifests') {
    if (reference.includes(':')) return { kind: 'manifest', ...base, reference, digest: requireDigest(reference) };
    if (!isValidTag(reference)) throw new RegistryError('TAG_INVALID', 'invalid tag', { tag: reference.slice(0, 256) });
    return { kind: 'manifest', ...base, reference };
  }
  return { kind: what === 'blobs' ? 'blob' : 'referrers', ...base, digest: requireDigest(reference) };
}

function requireDigest(value: string): Digest {
  const digest = parseDigest(value);
  if (!digest) throw new RegistryError('DIGEST_INVALID', 'invalid or unsupported digest', { digest: value.slice(0, 256) });
  return digest;
}
