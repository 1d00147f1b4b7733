/**
 * regmirror's CONNECT proxy as clients see it (`regmirror config <client> --proxy`): the URL for
 * HTTPS_PROXY, the registry hosts it intercepts (where clients must trust its CA), and what the
 * generators for dockerd, containerd, podman and CRI-O share: the systemd drop-in and CA copies.
 */
import { HostPatterns, parseAuthority } from '../proxy/hosts.js';
import { ClientConfigError, type MirrorDescription } from './mirror.js';
import { generatedHeader, type ClientConfig, type ClientFile } from './output.js';

/** The parts of the configuration that decide what clients are told (the validated config fits). */
export interface ProxyLayout {
  proxy?: { listen: string; hosts?: readonly string[] | undefined; caCert: string; otherHosts: 'tunnel' | 'refuse' } | undefined;
  upstreams: Readonly<Record<string, { hosts?: readonly string[] | undefined }>>;
}

/** Everything a generator needs to send a client through the proxy. */
export interface ProxyDescription {
  /** `http://host:port`: the value of HTTPS_PROXY. */
  url: string;
  /** The CA that signs the intercepted hosts' certificates: clients must trust it for them. */
  caFile: string;
  /** Registry hosts the proxy answers from the cache (`host`, or `host:port` off 443), sorted. */
  hosts: string[];
  /** NO_PROXY entries: loopback, and the mirror's own host, which clients reach directly. */
  noProxy: string[];
  otherHosts: 'tunnel' | 'refuse';
}

/** How the description is adjusted for this host. */
export interface DescribeProxyOptions {
  /** `--proxy URL`: the URL clients use for the proxy; default: `proxy.listen`. */
  url?: string | undefined;
  /** `--ca`: default `proxy.caCert`. */
  caFile?: string | undefined;
  /** Used for a proxy bound to every interface (0.0.0.0, ::, or no host). */
  hostname: string;
}

const ANY_ADDRESS = new Set(['', '0.0.0.0', '::', '[::]']);

/** Builds the description; throws ClientConfigError when the configuration has no proxy. */
export function describeProxy(layout: ProxyLayout, mirror: MirrorDescription, options: DescribeProxyOptions): ProxyDescription {
  const { proxy } = layout;
  if (!proxy) throw new ClientConfigError('--proxy: the configuration has no proxy block (see docs/transparent-proxy.md)');
  let url: string;
  if (options.url !== undefined) {
    const parsed = URL.canParse(options.url) ? new URL(options.url) : undefined;
    if (parsed?.protocol !== 'http:' || parsed.port === '' || parsed.pathname !== '/') throw new ClientConfigError(`--proxy "${options.url}": must be http://host:port`);
    url = parsed.origin;
  } else {
    const at = proxy.listen.lastIndexOf(':');
    const host = proxy.listen.slice(0, at);
    url = `http://${ANY_ADDRESS.has(host) ? options.hostname : host}:${proxy.listen.slice(at + 1)}`;
  }
  const patterns = proxy.hosts && new HostPatterns(proxy.hosts);
  const names = Object.entries(layout.upstreams).flatMap(([name, upstream]) => [name, ...(upstream.hosts ?? [])]);
  const hosts = [...new Set(names.map((n) => n.toLowerCase()))].filter((name) => {
    const authority = parseAuthority(name.includes(':') ? name : `${name}:443`);
    return authority !== undefined && (patterns?.matches(authority) ?? true);
  });
  const mirrorHosts = mirror.listeners.map((l) => l.host.slice(0, l.host.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1'));
  return {
    url,
    caFile: options.caFile ?? proxy.caCert,
    hosts: hosts.sort(),
    noProxy: [...new Set(['localhost', '127.0.0.0/8', '::1', ...mirrorHosts])],
    otherHosts: proxy.otherHosts,
  };
}

/** The proxy variables, as `NAME=value` lines. */
export function proxyEnvironment(proxy: ProxyDescription): string[] {
  return [`HTTPS_PROXY=${proxy.url}`, `NO_PROXY=${proxy.noProxy.join(',')}`];
}

/** A systemd drop-in (under `/etc`) giving `service` the proxy variables. */
export function systemdProxyDropIn(service: string, proxy: ProxyDescription): ClientFile {
  return {
    kind: 'text',
    path: `systemd/system/${service}.service.d/regmirror-proxy.conf`,
    merge: 'replace',
    needsReload: true,
    content:
      generatedHeader(`${service} reaches registries through regmirror's proxy.`) +
      `# regmirror answers ${proxy.hosts.join(', ')} from its cache; ${otherHostsText(proxy)}\n` +
      `[Service]\n${proxyEnvironment(proxy).map((line) => `Environment="${line}"`).join('\n')}\n`,
  };
}

/** Copies of the CA as `<dir>/<host>/ca.crt`, one per intercepted host. */
export function caCopies(dir: string, proxy: ProxyDescription): ClientFile[] {
  return proxy.hosts.map((host) => ({ kind: 'copy', path: `${dir}/${host}/ca.crt`, from: proxy.caFile, needsReload: false }));
}

/** A client configuration through the proxy, with the notes every client shares. */
export function proxyClientConfig(configDir: string, files: ClientFile[], reload: string[], proxy: ProxyDescription, notes: string[]): ClientConfig {
  return {
    configDir,
    files,
    reload,
    notes: [
      ...notes,
      `Pulls of ${proxy.hosts.join(', ')} are answered by regmirror with its own upstream credentials; the client's own logins for them are not used (with access.htpasswd, log in to them with regmirror's users).`,
      proxy.otherHosts === 'refuse'
        ? 'Any other HTTPS host the client reaches through the proxy is refused (proxy.otherHosts: refuse): add such hosts to NO_PROXY, or set proxy.otherHosts: tunnel.'
        : 'Other HTTPS hosts are tunnelled untouched by the proxy (proxy.otherHosts: tunnel).',
    ],
  };
}

function otherHostsText(proxy: ProxyDescription): string {
  return proxy.otherHosts === 'refuse' ? 'it refuses other hosts.' : 'it tunnels other hosts untouched.';
}
