/**
 * podman, buildah, skopeo and CRI-O (containers/image): a registries.conf (v2) drop-in with a
 * `[[registry]]` per upstream whose mirror carries the registry as a path prefix
 * (`mirror:5000/ghcr.io` → `GET /v2/ghcr.io/<repo>/...`). containers/image sends no `ns`.
 */
import { basicToken, type ClientCredentials, type MirrorDescription, type MirrorEndpoint } from './mirror.js';
import { generatedHeader, tomlString, tomlStrings, type ClientConfig, type ClientFile } from './output.js';
import { caCopies, proxyClientConfig, proxyEnvironment, systemdProxyDropIn, type ProxyDescription } from './proxy.js';

/** Options of the podman / CRI-O generator. */
export interface PodmanOptions {
  /** The containers configuration folder; default /etc/containers (CRI-O with a proxy or credentials: /etc). */
  configDir?: string;
  /** CRI-O must be reloaded to see registries.conf changes; podman reads them at every run. */
  crio?: boolean;
  /** Go through regmirror's proxy instead of a mirror (CRI-O: configDir is then /etc). */
  proxy?: ProxyDescription;
  /** Written to an auth file, keyed by the mirror's host: containers/image looks mirrors up by their own location. */
  credentials?: ClientCredentials;
}

/** Where the drop-in goes, relative to the configuration folder. */
export const PODMAN_DROP_IN = 'registries.conf.d/regmirror.conf';

/** The auth file (containers-auth.json(5)) with the mirror's credentials, relative to the configuration folder. */
export const PODMAN_AUTH_FILE = 'regmirror-auth.json';

/**
 * Where the mirror serves a registry for containers/image: the registry as a path prefix, or, for a
 * registry named with a port (a colon cannot be in a repository path), a listener pinned to it.
 */
function mirrorLocation(mirror: MirrorDescription, registry: string): { location: string; endpoint: MirrorEndpoint } | undefined {
  if (!registry.includes(':')) return { location: `${mirror.host}/${registry}`, endpoint: mirror };
  const pinned = mirror.listeners.find((l) => l.upstream === registry);
  return pinned && { location: pinned.host, endpoint: pinned };
}

/** Generates the registries.conf drop-in (and a CA copy for each https mirror host with a CA, and the auth file). */
export function podmanConfig(mirror: MirrorDescription, options: PodmanOptions = {}): ClientConfig {
  if (options.proxy) return options.crio ? crioProxyConfig(options.proxy, options.configDir ?? '/etc') : podmanProxyConfig(options.proxy, options.configDir ?? '/etc/containers');
  const { credentials } = options;
  // CRI-O's auth file setting lives in /etc/crio, so with credentials its files are laid out under /etc.
  const crioLogin = options.crio === true && credentials !== undefined;
  const configDir = options.configDir ?? (crioLogin ? '/etc' : '/etc/containers');
  const dir = crioLogin ? 'containers/' : '';
  const tables: string[] = [];
  const unreachable: string[] = [];
  // Each host is plain http or https (with its CA) as the listener that serves it is.
  const endpoints = new Map<string, MirrorEndpoint>();
  for (const registry of mirror.registries) {
    const mirrored = mirrorLocation(mirror, registry.name);
    if (mirrored === undefined) {
      unreachable.push(registry.name);
      continue;
    }
    const { location, endpoint } = mirrored;
    endpoints.set(endpoint.host, endpoint);
    tables.push(
      [
        '[[registry]]',
        `prefix = ${tomlString(registry.name)}`,
        `location = ${tomlString(registry.name)}`,
        '',
        '[[registry.mirror]]',
        `location = ${tomlString(location)}`,
        ...(endpoint.scheme === 'http' ? ['insecure = true # plain http'] : []),
      ].join('\n'),
    );
  }
  const files: ClientFile[] = [
    {
      kind: 'text',
      path: `${dir}${PODMAN_DROP_IN}`,
      merge: 'replace',
      needsReload: options.crio === true,
      content:
        generatedHeader('podman, buildah, skopeo and CRI-O pull through regmirror.') +
        '# A drop-in for /etc/containers/registries.conf.d/, or a whole registries.conf (v2). The registry\n' +
        '# arrives as the first path component; if the mirror fails, the registry itself is used.\n\n' +
        `${tables.join('\n\n')}\n`,
    },
  ];
  for (const { host, caFile } of endpoints.values()) {
    if (caFile !== undefined) files.push({ kind: 'copy', path: `${dir}certs.d/${host}/ca.crt`, from: caFile, needsReload: false });
  }
  const login = credentials ? loginFiles(credentials, [...endpoints.keys()], configDir, crioLogin) : undefined;
  return {
    configDir,
    files: [...files, ...(login?.files ?? [])],
    reload: options.crio ? [crioLogin ? 'systemctl restart crio' : 'systemctl reload crio'] : [],
    notes: [
      options.crio
        ? `CRI-O re-reads registries.conf on reload (SIGHUP)${crioLogin ? '' : '; no restart needed'}.`
        : 'podman, buildah and skopeo read registries.conf at every run: nothing to reload.',
      'Short names (`alpine`) still follow unqualified-search-registries of registries.conf: pull docker.io/library/alpine, or list docker.io there.',
      ...unreachable.map((name) => `${name} is left out: a name with a port cannot be a path prefix here; pin a listener to it (listeners[].upstream).`),
      ...([...endpoints.values()].some((e) => e.scheme === 'http') ? ['With `insecure = true` the client tries https first, then plain http: a TLS hello in regmirror\'s log is expected.'] : []),
      ...(login?.notes ?? []),
    ],
  };
}

/**
 * The auth file with the credentials for each mirror host and, for CRI-O (whose configDir is then
 * /etc), the crio.conf drop-in that names it (`global_auth_file`).
 */
function loginFiles(credentials: ClientCredentials, hosts: readonly string[], configDir: string, crio: boolean): { files: ClientFile[]; notes: string[] } {
  const auths = Object.fromEntries(hosts.map((host) => [host, { auth: basicToken(credentials) }]));
  const path = `${crio ? 'containers/' : ''}${PODMAN_AUTH_FILE}`;
  const authPath = `${configDir}/${path}`;
  const files: ClientFile[] = [
    { kind: 'text', path, merge: 'replace', needsReload: false, secret: true, content: `${JSON.stringify({ auths }, null, 2)}\n` },
  ];
  const notes = [
    `${PODMAN_AUTH_FILE} holds ${credentials.username}'s password for ${hosts.join(', ')} (setup writes it 0600); containers/image looks a mirror's credentials up by the mirror's own host, and never sends --creds to a mirror.`,
  ];
  if (crio) {
    files.push({
      kind: 'text',
      path: 'crio/crio.conf.d/regmirror.conf',
      merge: 'replace',
      needsReload: true,
      content:
        generatedHeader("CRI-O reads regmirror's credentials from the auth file.") +
        '# This replaces a global_auth_file set in crio.conf: copy that file\'s entries into this one.\n' +
        `[crio.image]\nglobal_auth_file = ${tomlString(authPath)}\n`,
    });
    notes.push('CRI-O reads global_auth_file only at start: restart it once; the auth file itself is read at every pull.');
  } else {
    notes.push(
      `podman, buildah and skopeo read no system-wide auth file: run them as root with REGISTRY_AUTH_FILE=${authPath} (or --authfile), which then is their only auth file (podman login writes there too); the file is readable by its owner only, so other users (rootless podman) run \`podman login\` for the mirror's host once each instead.`,
    );
  }
  return { files, notes };
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
