/**
 * buildkit (buildkitd, `docker buildx`): a buildkitd.toml with `[registry."<upstream>"] mirrors`.
 * buildkit puts a mirror's path after `/v2` (`mirror:5000/ghcr.io` → `/v2/ghcr.io/<repo>/...`) and,
 * through containerd's resolver, adds `?ns=` as well; the mirror host's own table says http or CA.
 */
import type { MirrorDescription } from './mirror.js';
import { generatedHeader, tomlString, tomlStrings, type ClientConfig } from './output.js';

/** Options of the buildkit generator. */
export interface BuildkitOptions {
  /** Where buildkitd.toml lives; default /etc/buildkit. */
  configDir?: string;
}

/** The builder `docker buildx create` makes for the mirror. */
export const BUILDX_BUILDER = 'regmirror';

/** True for a host only the machine itself can reach (a builder container has its own loopback). */
export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\./.test(name);
}

/** Generates buildkitd.toml and the buildx commands that use it. */
export function buildkitConfig(mirror: MirrorDescription, options: BuildkitOptions = {}): ClientConfig {
  const configDir = options.configDir ?? '/etc/buildkit';
  const tables = mirror.registries.map((registry) => `[registry.${tomlString(registry.name)}]\n  mirrors = ${tomlStrings([`${mirror.host}/${registry.name}`])}`);
  const hostSettings = mirror.scheme === 'http' ? ['  http = true'] : mirror.caFile !== undefined ? [`  ca = ${tomlStrings([mirror.caFile])}`] : [];
  if (hostSettings.length > 0) tables.push([`# How to reach regmirror itself.`, `[registry.${tomlString(mirror.host)}]`, ...hostSettings].join('\n'));
  const hostNetwork = isLoopbackHost(mirror.host);
  return {
    configDir,
    files: [
      {
        kind: 'text',
        path: 'buildkitd.toml',
        merge: 'buildkitd-toml',
        needsReload: true,
        content:
          generatedHeader('buildkit pulls base images and cache through regmirror.') +
          `# docker buildx create --name ${BUILDX_BUILDER} --driver docker-container --config <this file> --use\n\n` +
          `${tables.join('\n\n')}\n`,
      },
    ],
    reload: [
      `docker buildx rm ${BUILDX_BUILDER} || true`,
      `docker buildx create --name ${BUILDX_BUILDER} --driver docker-container${hostNetwork ? ' --driver-opt network=host' : ''} --config ${configDir}/buildkitd.toml --use`,
    ],
    notes: [
      'A buildx builder copies buildkitd.toml when it is created: re-create it after a change (a standalone buildkitd: systemctl restart buildkit).',
      ...(hostNetwork ? [`${mirror.host} is a loopback address: the builder container needs --driver-opt network=host to reach it (or use --url with an address the container can reach).`] : []),
      'buildkit before v0.12 does not understand a path in mirrors: there, use a listener pinned to each upstream.',
      'The classic builder (DOCKER_BUILDKIT=0) and the docker driver use dockerd\'s registry-mirrors, not this file.',
      ...(mirror.loginRequired
        ? [
            `buildkitd.toml has no credentials setting: buildkit asks the client (docker buildx, buildctl) for ${mirror.host}'s credentials, which come from its docker config.json: run \`docker login ${mirror.host}\` where you run the build.`,
          ]
        : []),
    ],
  };
}
