/**
 * dockerd: daemon.json `registry-mirrors`. dockerd uses a mirror for Docker Hub only, at the root
 * URL only, and names no registry in its requests (`/v2/library/alpine/...`): the mirror must route
 * such requests to docker.io, through a listener pinned to it or `routing.defaultUpstream`.
 * With `--proxy`, dockerd instead reaches every registry through regmirror's CONNECT proxy.
 */
import { ClientConfigError, type MirrorDescription, type MirrorEndpoint } from './mirror.js';
import type { ClientConfig, ClientFile } from './output.js';
import { caCopies, proxyClientConfig, systemdProxyDropIn, type ProxyDescription } from './proxy.js';

/** Options of the dockerd generator. */
export interface DockerOptions {
  /** dockerd's configuration folder; default /etc/docker (with a proxy: /etc, which holds both it and systemd's). */
  configDir?: string;
  /** Go through regmirror's proxy instead of registry-mirrors. */
  proxy?: ProxyDescription;
}

/** The endpoint on which a request naming no registry reaches Docker Hub, if there is one. */
export function dockerHubEndpoint(mirror: MirrorDescription): MirrorEndpoint | undefined {
  const hub = mirror.registries.find((r) => r.dockerHub);
  if (!hub) return undefined;
  const pinned = mirror.listeners.find((l) => l.upstream === hub.name);
  if (pinned) return pinned;
  return mirror.defaultUpstream === hub.name ? mirror : undefined;
}

/** Generates daemon.json (and a CA copy for each https mirror host with a CA). */
export function dockerConfig(mirror: MirrorDescription, options: DockerOptions = {}): ClientConfig {
  if (options.proxy) return dockerProxyConfig(options.proxy, options.configDir ?? '/etc');
  const configDir = options.configDir ?? '/etc/docker';
  if (!mirror.registries.some((r) => r.dockerHub)) {
    throw new ClientConfigError('dockerd mirrors only Docker Hub, and this mirror does not serve docker.io');
  }
  if (mirror.loginRequired) {
    throw new ClientConfigError(
      `dockerd cannot log in to a registry mirror (it sends a mirror the Docker Hub login, not the mirror's: moby/moby#30880, #42022) and this mirror requires one (access.htpasswd), so dockerd would skip it: \`docker login ${mirror.host}\` and pull by the mirror's name (docker pull ${mirror.host}/docker.io/library/alpine), or use --proxy`,
    );
  }
  const hub = dockerHubEndpoint(mirror);
  if (!hub) {
    throw new ClientConfigError(
      'dockerd names no registry in its requests: set routing.defaultUpstream: docker.io, or add a listener with upstream: docker.io',
    );
  }
  const others = mirror.registries.filter((r) => !r.dockerHub);
  const pinned = mirror.listeners.filter((l) => l.upstream !== undefined && others.some((r) => r.name === l.upstream));
  // Each host as its own listener serves it: plain ones are insecure-registries, https ones get their CA.
  const endpoints = [...new Map([hub, ...(others.length > 0 ? [mirror] : []), ...pinned].map((e) => [e.host, e])).values()];
  const daemon: Record<string, string[]> = { 'registry-mirrors': [hub.url] };
  const plain = endpoints.filter((e) => e.scheme === 'http').map((e) => e.host);
  if (plain.length > 0) daemon['insecure-registries'] = plain;
  const files: ClientFile[] = [
    { kind: 'text', path: 'daemon.json', merge: 'docker-daemon-json', needsReload: true, content: `${JSON.stringify(daemon, null, 2)}\n` },
  ];
  for (const { host, caFile } of endpoints) {
    if (caFile !== undefined) files.push({ kind: 'copy', path: `certs.d/${host}/ca.crt`, from: caFile, needsReload: false });
  }
  const example = others[0];
  return {
    configDir,
    files,
    reload: ['systemctl reload docker'],
    notes: [
      'dockerd uses registry-mirrors for Docker Hub only: `docker pull ghcr.io/...` still goes to ghcr.io itself.',
      ...(example
        ? [
            `Other registries through dockerd: pull by the mirror's name, \`docker pull ${mirror.host}/${example.name}/<repo>:<tag>\`, then \`docker tag\` it back.`,
            ...pinned.map((l) => `${l.host} serves ${l.upstream} without a prefix: \`docker pull ${l.host}/<repo>:<tag>\`.`),
            'Or build with buildkit (`regmirror config buildkit`), which mirrors every registry.',
          ]
        : []),
      'registry-mirrors and insecure-registries are reloaded on SIGHUP (systemctl reload docker); no restart needed.',
    ],
  };
}

/** dockerd through the proxy: HTTPS_PROXY in a systemd drop-in, the CA in certs.d for each intercepted host. */
function dockerProxyConfig(proxy: ProxyDescription, configDir: string): ClientConfig {
  return proxyClientConfig(configDir, [systemdProxyDropIn('docker', proxy), ...caCopies('docker/certs.d', proxy)], ['systemctl daemon-reload', 'systemctl restart docker'], proxy, [
    'dockerd reads HTTPS_PROXY only at start: the restart stops running containers unless live-restore is on.',
    `The CA copies in docker/certs.d make dockerd trust regmirror's CA for those hosts only; dockerd reads them at every pull.`,
    'Docker 23 and later also take the proxy in daemon.json: "proxies": {"https-proxy": ..., "no-proxy": ...}, instead of the drop-in.',
    proxy.hosts.includes('registry-1.docker.io')
      ? 'registry-mirrors is not needed with the proxy: Docker Hub (registry-1.docker.io) goes through it like every other registry.'
      : 'Docker Hub (registry-1.docker.io) is not among the proxied hosts: keep registry-mirrors for it (regmirror config docker).',
  ]);
}
