/**
 * containerd: a certs.d tree with one hosts.toml per upstream, and the config.toml line that points
 * the CRI plugin at it. containerd sends `?ns=<registry>` to a mirror, so one port serves them all.
 */
import { basicToken, registryServer, type ClientCredentials, type MirrorDescription } from './mirror.js';
import { generatedHeader, tomlString, tomlStrings, type ClientConfig, type ClientFile } from './output.js';
import { proxyClientConfig, systemdProxyDropIn, type ProxyDescription } from './proxy.js';

/** Options of the containerd generator. */
export interface ContainerdOptions {
  /** containerd's configuration folder; default /etc/containerd. */
  configDir?: string;
  /** Also write `_default/hosts.toml`: every other registry tries the mirror first. */
  wildcard?: boolean;
  /** Go through regmirror's proxy instead of a mirror (configDir is then /etc). */
  proxy?: ProxyDescription;
  /** Sent to the mirror host only, as a static `Authorization` header. */
  credentials?: ClientCredentials;
}

/** The `[plugins."<cri>".registry]` table that holds config_path, by config.toml version. */
export const CONTAINERD_REGISTRY_TABLE: Readonly<Record<1 | 2 | 3, readonly string[]>> = {
  1: ['plugins', 'cri', 'registry'],
  2: ['plugins', 'io.containerd.grpc.v1.cri', 'registry'],
  3: ['plugins', 'io.containerd.cri.v1.images', 'registry'],
};

/**
 * The `[host."<mirror>"]` table: pull and resolve only, never push. Credentials go in its `header`
 * table, which containerd sends with every request to that host and to no other.
 */
function mirrorHostTable(mirror: MirrorDescription, credentials: ClientCredentials | undefined): string {
  return [
    `[host.${tomlString(mirror.url)}]`,
    `  capabilities = ${tomlStrings(['pull', 'resolve'])}`,
    ...(mirror.caFile !== undefined ? [`  ca = ${tomlString(mirror.caFile)}`] : []),
    ...(credentials
      ? [`  [host.${tomlString(mirror.url)}.header]`, `    Authorization = ${tomlStrings([`Basic ${basicToken(credentials)}`])} # ${credentials.username}`]
      : []),
  ].join('\n');
}

/** The config.toml table that names the certs.d folder, in config version 2 (containerd 1.x). */
export function containerdConfigPathToml(certsDir: string): string {
  const [, plugin, table] = CONTAINERD_REGISTRY_TABLE[2];
  return `version = 2\n\n[plugins.${tomlString(plugin!)}.${table}]\n  config_path = ${tomlString(certsDir)}\n`;
}

/** config.toml with the config_path line (setup sets only that line in an existing file). */
function configPathFile(path: string, certsDir: string): ClientFile {
  return {
    kind: 'text',
    path,
    merge: 'containerd-config-toml',
    needsReload: true,
    content:
      generatedHeader('points the CRI plugin (kubelet, crictl) at the hosts.toml files.') +
      '# `regmirror setup containerd` sets only this line in an existing config.toml; config version 3\n' +
      `# (containerd 2.x) keeps it in [plugins."io.containerd.cri.v1.images".registry].\n` +
      containerdConfigPathToml(certsDir),
  };
}

/** Generates the certs.d tree and the config.toml snippet. */
export function containerdConfig(mirror: MirrorDescription, options: ContainerdOptions = {}): ClientConfig {
  if (options.proxy) return containerdProxyConfig(mirror, options.proxy, options.configDir ?? '/etc');
  const configDir = options.configDir ?? '/etc/containerd';
  const certsDir = `${configDir}/certs.d`;
  const { credentials } = options;
  const secret = credentials ? { secret: true } : {};
  const files: ClientFile[] = mirror.registries.map((registry) => ({
    kind: 'text',
    path: `certs.d/${registry.name}/hosts.toml`,
    merge: 'replace',
    needsReload: false,
    ...secret,
    content:
      generatedHeader(`containerd pulls ${registry.name} images through regmirror.`) +
      `# Requests carry ?ns=${registry.name}; if the mirror fails, containerd goes to the server itself.\n` +
      `server = ${tomlString(registryServer(registry))}\n\n${mirrorHostTable(mirror, credentials)}\n`,
  }));
  if (options.wildcard) {
    files.push({
      kind: 'text',
      path: 'certs.d/_default/hosts.toml',
      merge: 'replace',
      needsReload: false,
      ...secret,
      content:
        generatedHeader('every registry without its own folder here tries regmirror first.') +
        '# regmirror answers 404 for a registry it does not mirror; containerd then goes to the registry itself.\n\n' +
        `${mirrorHostTable(mirror, credentials)}\n`,
    });
  }
  files.push(configPathFile('config.toml', certsDir));
  return {
    configDir,
    files,
    reload: ['systemctl restart containerd'],
    notes: [
      `containerd reads hosts.toml at every pull: only the config_path change in config.toml needs a restart.`,
      `ctr does not read config_path: pull with \`ctr images pull --hosts-dir ${certsDir} docker.io/library/alpine:latest\`.`,
      `config.toml must not also set the deprecated registry.mirrors: containerd refuses both.`,
      ...(credentials ? [`The hosts.toml files hold ${credentials.username}'s password (setup writes them 0600); containerd sends it to ${mirror.host} only, never to a registry it falls back to.`] : []),
    ],
  };
}

/**
 * containerd through the proxy: HTTPS_PROXY in a systemd drop-in, and a hosts.toml per registry
 * whose server the proxy intercepts, trusting regmirror's CA for that server only.
 */
function containerdProxyConfig(mirror: MirrorDescription, proxy: ProxyDescription, configDir: string): ClientConfig {
  const certsDir = `${configDir}/containerd/certs.d`;
  const files: ClientFile[] = [systemdProxyDropIn('containerd', proxy)];
  for (const registry of mirror.registries) {
    const server = registryServer(registry);
    if (!proxy.hosts.includes(new URL(server).host)) continue;
    files.push({
      kind: 'text',
      path: `containerd/certs.d/${registry.name}/hosts.toml`,
      merge: 'replace',
      needsReload: false,
      content:
        generatedHeader(`containerd trusts regmirror's CA for ${registry.name}, which it reaches through regmirror's proxy.`) +
        `server = ${tomlString(server)}\nca = ${tomlString(proxy.caFile)}\n`,
    });
  }
  files.push(configPathFile('containerd/config.toml', certsDir));
  return proxyClientConfig(configDir, files, ['systemctl daemon-reload', 'systemctl restart containerd'], proxy, [
    'containerd reads HTTPS_PROXY only at start; hosts.toml files are read at every pull.',
    `ctr does not read config_path: pull with \`ctr images pull --hosts-dir ${certsDir} docker.io/library/alpine:latest\` (ctr also needs HTTPS_PROXY in its own environment).`,
  ]);
}
