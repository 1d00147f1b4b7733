/** Every client regmirror configures, by the name `regmirror config <client>` takes. */
import { buildkitConfig } from './buildkit.js';
import { containerdConfig } from './containerd.js';
import { dockerConfig } from './docker.js';
import { k3sConfig } from './k3s.js';
import { ClientConfigError, type ClientCredentials, type MirrorDescription } from './mirror.js';
import type { ClientConfig } from './output.js';
import { podmanConfig } from './podman.js';
import type { ProxyDescription } from './proxy.js';

export { basicToken, ClientConfigError, describeMirror, type ClientCredentials, type MirrorDescription, type MirrorLayout } from './mirror.js';
export { mergeFile } from './merge.js';
export { describeProxy, type ProxyDescription, type ProxyLayout } from './proxy.js';
export type { ClientConfig, ClientFile, MergeRule } from './output.js';

/** Options every generator understands (each uses what applies to it). */
export interface GenerateOptions {
  /** The client's configuration folder, when not the usual one under /etc. */
  configDir?: string;
  /** containerd `_default`, k3s/rke2 `"*"`: every other registry tries the mirror first. */
  wildcard?: boolean;
  /** Reach registries through regmirror's CONNECT proxy instead of a mirror (`--proxy`). */
  proxy?: ProxyDescription;
  /** The user clients log in to the mirror as (`--username`, `--password-file`). */
  credentials?: ClientCredentials;
}

type Generator = (mirror: MirrorDescription, options: GenerateOptions) => ClientConfig;

const GENERATORS = {
  containerd: (mirror, options) => containerdConfig(mirror, options),
  podman: (mirror, options) => podmanConfig(mirror, options),
  'cri-o': (mirror, options) => podmanConfig(mirror, { ...options, crio: true }),
  buildkit: (mirror, options) => buildkitConfig(mirror, options),
  docker: (mirror, options) => dockerConfig(mirror, options),
  k3s: (mirror, options) => k3sConfig(mirror, { ...options, flavour: 'k3s' }),
  rke2: (mirror, options) => k3sConfig(mirror, { ...options, flavour: 'rke2' }),
} satisfies Record<string, Generator>;

/** Clients with a `--proxy` variant. */
const PROXY_CLIENTS = new Set<string>(['docker', 'containerd', 'podman', 'cri-o']);

/** Clients given the pinned listeners (one port per registry) besides the mirror's URL. */
const PINNED_LISTENER_CLIENTS = new Set<string>(['docker', 'podman', 'cri-o']);

/** True when the client is given the mirror's URL alone, not its pinned listeners. */
export function takesUrlOnly(client: ClientName): boolean {
  return !PINNED_LISTENER_CLIENTS.has(client);
}

/** Clients whose generated files carry the mirror's credentials. */
const CREDENTIAL_CLIENTS = new Set<string>(['containerd', 'podman', 'cri-o', 'k3s', 'rke2']);

/** A client `regmirror config` knows. */
export type ClientName = keyof typeof GENERATORS;

/** The client names, in the order help lists them. */
export const CLIENT_NAMES = Object.keys(GENERATORS) as ClientName[];

/** Generates the configuration of one client for the mirror; throws ClientConfigError. */
export function generateClientConfig(client: ClientName, mirror: MirrorDescription, options: GenerateOptions = {}): ClientConfig {
  if (options.proxy && !PROXY_CLIENTS.has(client)) {
    throw new ClientConfigError(`--proxy: not for ${client}, which mirrors every registry itself: use regmirror config ${client} without --proxy`);
  }
  if (options.proxy && options.credentials) {
    throw new ClientConfigError('--username: not with --proxy: clients log in to each registry the proxy intercepts with their own tools (docker login, podman login)');
  }
  if (!options.proxy && mirror.loginRequired && !options.credentials && CREDENTIAL_CLIENTS.has(client)) {
    throw new ClientConfigError(
      `this mirror requires a login (access.htpasswd) and ${client}'s files carry it: pass --username USER with --password-file FILE (- for stdin), or set REGMIRROR_USERNAME and REGMIRROR_PASSWORD`,
    );
  }
  return GENERATORS[client](mirror, options);
}
