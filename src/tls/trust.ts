/**
 * How each container client is told to trust a local CA: the text `tls init` prints. The same
 * places are described in docs/tls.md.
 */

/** Where each client looks for the CA of a registry at `host` (`name:port`). */
export const TRUST_PATHS = {
  docker: (host: string) => `/etc/docker/certs.d/${host}/ca.crt`,
  containers: (host: string) => `/etc/containers/certs.d/${host}/ca.crt`,
  system: '/usr/local/share/ca-certificates/regmirror-ca.crt',
} as const;

/** The instructions for the CA at `caFile`, for a mirror reached at each of `hosts` (`name:port`). */
export function trustInstructions(caFile: string, hosts: string[]): string {
  const lines = [
    `Copy ${caFile} to each client machine (below it stays at that path), then per client:`,
    '',
    '  containerd (and k3s, rke2, nerdctl): in each certs.d/<registry>/hosts.toml, under the mirror\'s [host."https://..."] table:',
    ...hosts.map((host) => `      [host."https://${host}"]\n        capabilities = ["pull", "resolve"]\n        ca = "${caFile}"`),
    `    (regmirror config containerd --url https://${hosts[0]} --ca ${caFile} writes these files)`,
    '  docker (dockerd):',
    ...hosts.map((host) => `      install -D -m 644 ${caFile} ${TRUST_PATHS.docker(host)}`),
    '  podman, skopeo, buildah, CRI-O:',
    ...hosts.map((host) => `      install -D -m 644 ${caFile} ${TRUST_PATHS.containers(host)}`),
    '  the system store (curl, Go programs; Debian/Ubuntu):',
    `      install -m 644 ${caFile} ${TRUST_PATHS.system} && update-ca-certificates`,
    '    (RHEL/Fedora: copy it to /etc/pki/ca-trust/source/anchors/ and run update-ca-trust)',
  ];
  return lines.join('\n') + '\n';
}
