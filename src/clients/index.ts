/** Every client regmirror configures, by the name `regmirror config <client>` takes. */
import { buildkitConfig } from './buildkit.js';
import { containerdConfig } from './containerd.js';
import { dockerConfig } from './docker.js';
import { k3sConfig } from './k3s.js';
import type { MirrorDescription } from './mirror.js';
import type { ClientConfig } from './output.js';
import { podmanConfig } from './podman.js';

export { ClientConfigError, describeMirror, type MirrorDescription, type MirrorLayout } from './mirror.js';
export { mergeFile } from './merge.js';
export type { ClientConfig, ClientFile, MergeRule } from './output.js';

/** Options every generator understands (each uses what applies to it). */
export interface GenerateOptions {
  /** The client's configuration folder, when not the usual one under /etc. */
  configDir?: string;
  /** containerd `_default`, k3s/rke2 `"*"`: every other registry tries the mirror first. */
  wildcard?: boolean;
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

/** A client `regmirror config` knows. */
export type ClientName = keyof typeof GENERATORS;

/** The client names, in the order help lists them. */
export const CLIENT_NAMES = Object.keys(GENERATORS) as ClientName[];

/** Generates the configuration of one client for the mirror; throws ClientConfigError. */
export function generateClientConfig(client: ClientName, mirror: MirrorDescription, options: GenerateOptions = {}): ClientConfig {
  return GENERATORS[client](mirror, options);
}
