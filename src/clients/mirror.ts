/**
 * The mirror as clients see it: which registries it serves and at which URL. Built once from the
 * validated configuration (plus `--url` and `--ca`), then handed to every client generator, which
 * are pure functions of it.
 */
import { basicToken, type Credentials } from '../config/credentials.js';

/** The parts of the configuration that decide what clients are told (the validated config fits). */
export interface MirrorLayout {
  /** `tls` present: the listener serves https; `tls.ca` is the CA clients should trust. */
  listeners: readonly { address: string; upstream?: string | undefined; tls?: { ca?: string | undefined } | undefined }[];
  upstreams: Readonly<Record<string, { dockerHubNames?: boolean | undefined }>>;
  routing: { defaultUpstream?: string | undefined };
  /** `htpasswd` present: every client must log in. */
  access?: { htpasswd?: string | undefined } | undefined;
}

/** One place clients connect to. */
export interface MirrorEndpoint {
  /** `scheme://host:port`, no trailing slash. */
  url: string;
  /** `host:port` as it appears in image references and per-host client settings. */
  host: string;
  scheme: 'http' | 'https';
  /** The CA that signed its certificate, when clients should be told (https only). */
  caFile?: string;
}

/** A listener as clients reach it. */
export interface MirrorListener extends MirrorEndpoint {
  /** The upstream it is pinned to: requests naming no registry go there. */
  upstream?: string;
}

/** One upstream registry the mirror serves. */
export interface MirroredRegistry {
  /** The registry name in image references, e.g. `ghcr.io`. */
  name: string;
  /** Docker Hub (single names live under `library/`); dockerd mirrors only this one. */
  dockerHub: boolean;
}

/** Everything a client generator needs to know about the mirror. */
export interface MirrorDescription extends MirrorEndpoint {
  /** In configuration order. */
  registries: MirroredRegistry[];
  /** Where requests that name no registry go on an unpinned listener. */
  defaultUpstream?: string;
  listeners: MirrorListener[];
  /** The mirror asks every client to log in (`access.htpasswd`). */
  loginRequired: boolean;
}

/** A user of the mirror (`access.htpasswd`), as clients send it. */
export type ClientCredentials = Credentials;
export { basicToken };

/** How the description is adjusted for this host. */
export interface DescribeOptions {
  /** The URL clients should use (`--url`); default: the first unpinned listener, https if it has tls. */
  url?: string | undefined;
  /** The CA file for the https URL and https listeners (`--ca`); default: each listener's `tls.ca`. */
  caFile?: string | undefined;
  /** The client is given the URL alone, not the pinned listeners: `--ca` must then be for the URL. */
  urlOnly?: boolean | undefined;
  /** Used for listeners bound to every interface (0.0.0.0, ::, or no host). */
  hostname: string;
}

/** A mirror description that cannot be built, or a client that cannot use this mirror. */
export class ClientConfigError extends Error {
  override name = 'ClientConfigError';
}

const ANY_ADDRESS = new Set(['', '0.0.0.0', '[::]', '[::0]', '[0:0:0:0:0:0:0:0]']);

/** Splits `host:port` (IPv6 in brackets) into its parts. */
function splitAddress(address: string): { host: string; port: string } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: address.slice(at + 1) };
}

/** `host` as it goes into a URL authority: IPv6 in brackets. */
function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** Parses `--url`: an http(s) URL with a host and nothing after it; `port` is '' for the scheme's default. */
function parseClientUrl(raw: string): { scheme: 'http' | 'https'; hostname: string; port: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ClientConfigError(`--url "${raw}" is not a URL (e.g. http://mirror.example:5000)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ClientConfigError(`--url "${raw}": must be http or https`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username || url.password) {
    throw new ClientConfigError(`--url "${raw}": only scheme, host and port (clients add the registry path themselves)`);
  }
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  return { scheme, hostname: url.hostname, port: url.port };
}

/** An endpoint at `authority`; its CA (https only) is `--ca`, else the listener's `tls.ca`. */
function endpointAt(authority: string, scheme: 'http' | 'https', listenerCa: string | undefined, caOption: string | undefined): MirrorEndpoint {
  const caFile = scheme === 'https' ? (caOption ?? listenerCa) : undefined;
  return { url: `${scheme}://${authority}`, host: authority, scheme, ...(caFile !== undefined ? { caFile } : {}) };
}

/** Builds the description of a validated configuration; throws ClientConfigError when it cannot. */
export function describeMirror(layout: MirrorLayout, options: DescribeOptions): MirrorDescription {
  const override = options.url !== undefined ? parseClientUrl(options.url) : undefined;
  const first = layout.listeners.find((l) => l.upstream === undefined) ?? layout.listeners[0];
  if (!first) throw new ClientConfigError('the configuration has no listener');
  // Each listener is reached as its own tls says (pinned listeners may be plain beside an https
  // one), unless --url gives the first listener another scheme than its own: then something in
  // front of the mirror terminates TLS (or adds it) for every listener.
  const own = (listener: MirrorLayout['listeners'][number]): 'http' | 'https' => (listener.tls ? 'https' : 'http');
  const inFront = override && override.scheme !== own(first) ? override.scheme : undefined;
  const listeners = layout.listeners.map((listener): MirrorListener => {
    const { host, port } = splitAddress(listener.address);
    if (!override && port === '0') throw new ClientConfigError(`listener ${listener.address} has no fixed port: pass --url`);
    const hostname = override?.hostname ?? (ANY_ADDRESS.has(host) || host === '::' ? options.hostname : host);
    return { ...endpointAt(`${urlHost(hostname)}:${port}`, inFront ?? own(listener), listener.tls?.ca, options.caFile), ...(listener.upstream !== undefined ? { upstream: listener.upstream } : {}) };
  });
  const main = listeners[layout.listeners.indexOf(first)]!;
  const overridden = override && (override.port ? `${urlHost(override.hostname)}:${override.port}` : urlHost(override.hostname));
  const endpoint = endpointAt(overridden ?? main.host, override?.scheme ?? main.scheme, first.tls?.ca, options.caFile);
  // --ca must be for an endpoint the client is given: the URL, and the pinned listeners if it takes them.
  const given = options.urlOnly ? [endpoint] : [endpoint, ...listeners.filter((l) => l.upstream !== undefined)];
  if (options.caFile !== undefined && !given.some((e) => e.scheme === 'https')) {
    throw new ClientConfigError(options.urlOnly ? '--ca needs an https mirror URL (--url https://...)' : '--ca needs an https mirror URL (--url https://...) or a pinned listener with tls');
  }
  return {
    ...endpoint,
    registries: Object.entries(layout.upstreams).map(([name, u]) => ({ name, dockerHub: u.dockerHubNames ?? name === 'docker.io' })),
    ...(layout.routing.defaultUpstream !== undefined ? { defaultUpstream: layout.routing.defaultUpstream } : {}),
    listeners,
    loginRequired: layout.access?.htpasswd !== undefined,
  };
}

/** The public address of a registry: where a client goes when the mirror fails. */
export function registryServer(registry: MirroredRegistry): string {
  return registry.dockerHub && registry.name === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry.name}`;
}
