/**
 * podman, buildah, skopeo and CRI-O (containers/image): a registries.conf (v2) drop-in with a
 * `[[registry]]` per upstream whose mirror carries the registry as a path prefix
 * (`mirror:5000/ghcr.io` → `GET /v2/ghcr.io/<repo>/...`). containers/image sends no `ns`.
 */
import type { MirrorDescription } from './mirror.js';
import { generatedHeader, tomlString, tomlStrings, type ClientConfig, type ClientFile } from './output.js';
import { caCopies, proxyClientConfig, proxyEnvironment, systemdProxyDropIn, type ProxyDescription } from './proxy.js';

/** Options of the podman / CRI-O generator. */
export interface PodmanOptions {
  /** The containers configuration folder; default /etc/containers. */
  configDir?: string;
  /** CRI-O must be reloaded to see registries.conf changes; podman reads them at every run. */
  crio?: boolean;
  /** Go through regmirror's proxy instead of a mirror (CRI-O: configDir is then /etc). */
  proxy?: ProxyDescription;
}

/** Where the drop-in goes, relative to the configuration folder. */
export const PODMAN_DROP_IN = 'registries.conf.d/regmirror.conf';

/**
 * Where the mirror serves a registry for containers/image: the registry as a path prefix, or, for a
 * registry named with a port (a colon cannot be in a repository path), a listener pinned to it.
 */
function mirrorLocation(mirror: MirrorDescription, registry: string): string | undefined {
  if (!registry.includes(':')) return `${mirror.host}/${registry}`;
  return mirror.listeners.find((l) => l.upstream === registry)?.host;
}

/** Generates the registries.conf drop-in (and the CA copy for an https mirror with a CA). */
export function podmanConfig(mirror: MirrorDescription, options: PodmanOptions = {}): ClientConfig {
  if (options.proxy) return options.crio ? crioProxyConfig(options.proxy, options.configDir ?? '/etc') : podmanProxyConfig(options.proxy, options.configDir ?? '/etc/containers');
  const configDir = options.configDir ?? '/etc/containers';
  const insecure = mirror.scheme === 'http';
  const tables: string[] = [];
  const unreachable: string[] = [];
  const hosts = new Set<string>();
  for (const registry of mirror.registries) {
    const location = mirrorLocation(mirror, registry.name);
    if (location === undefined) {
      unreachable.push(registry.name);
      continue;
    }
    hosts.add(location.split('/')[0]!);
    tables.push(
      [
        '[[registry]]',
        `prefix = ${tomlString(registry.name)}`,
        `location = ${tomlString(registry.name)}`,
        '',
        '[[registry.mirror]]',
        `location = ${tomlString(location)}`,
        ...(insecure ? ['insecure = true # plain http'] : []),
      ].join('\n'),
    );
  }
  const files: ClientFile[] = [
    {
      kind: 'text',
      path: PODMAN_DROP_IN,
      merge: 'replace',
      needsReload: options.crio === true,
      content:
        generatedHeader('podman, buildah, skopeo and CRI-O pull through regmirror.') +
        '# A drop-in for /etc/containers/registries.conf.d/, or a whole registries.conf (v2). The registry\n' +
        '# arrives as the first path component; if the mirror fails, the registry itself is used.\n\n' +
        `${tables.join('\n\n')}\n`,
    },
  ];
  if (mirror.caFile !== undefined) {
    for (const host of hosts) files.push({ kind: 'copy', path: `certs.d/${host}/ca.crt`, from: mirror.caFile, needsReload: false });
  }
  return {
    configDir,
    files,
    reload: options.crio ? ['systemctl reload crio'] : [],
    notes: [
      options.crio
        ? 'CRI-O re-reads registries.conf on reload (SIGHUP); no restart needed.'
        : 'podman, buildah and skopeo read registries.conf at every run: nothing to reload.',
      'Short names (`alpine`) still follow unqualified-search-registries of registries.conf: pull docker.io/library/alpine, or list docker.io there.',
      ...unreachable.map((name) => `${name} is left out: a name with a port cannot be a path prefix here; pin a listener to it (listeners[].upstream).`),
      ...(insecure ? ['With `insecure = true` the client tries https first, then plain http: a TLS hello in regmirror\'s log is expected.'] : []),
    ],
  };
}

/** Where the proxy drop-in for podman, buildah and skopeo goes, relative to the configuration folder. */
export const PODMAN_PROXY_DROP_IN = 'containers.conf.d/regmirror-proxy.conf';

/** podman, buildah, skopeo through the proxy: containers.conf's engine env, the CA in certs.d per host. */
function podmanProxyConfig(proxy: ProxyDescription, configDir: string): ClientConfig {
  const dropIn: ClientFile = {
    kind: 'text',
    path: PODMAN_PROXY_DROP_IN,
    merge: 'replace',
    needsReload: false,
    content:
      generatedHeader('podman and buildah reach registries through regmirror\'s proxy.') +
      '# A drop-in for /etc/containers/containers.conf.d/ (or a whole containers.conf: CONTAINERS_CONF).\n' +
      `[engine]\nenv = ${tomlStrings(proxyEnvironment(proxy))}\n`,
  };
  return proxyClientConfig(configDir, [dropIn, ...caCopies('certs.d', proxy)], [], proxy, [
    'podman and buildah read containers.conf at every run: nothing to reload. Its env is used only where their own environment sets no HTTPS_PROXY or NO_PROXY.',
    'skopeo does not read containers.conf env: run it with HTTPS_PROXY and NO_PROXY in its environment.',
  ]);
}

/** CRI-O through the proxy: a systemd drop-in, the CA in /etc/containers/certs.d per host. */
function crioProxyConfig(proxy: ProxyDescription, configDir: string): ClientConfig {
  return proxyClientConfig(configDir, [systemdProxyDropIn('crio', proxy), ...caCopies('containers/certs.d', proxy)], ['systemctl daemon-reload', 'systemctl restart crio'], proxy, [
    'CRI-O reads HTTPS_PROXY only at start: restart it once; the certs.d copies are read at every pull.',
  ]);
}
