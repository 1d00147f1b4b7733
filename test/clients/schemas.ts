// The documented formats of each client's configuration file, as strict zod schemas: an unknown key,
// a wrong type or a value the client would reject fails. Sources: containerd docs/hosts.md and
// docs/cri/config.md; containers-registries.conf(5); buildkit docs/buildkitd.toml.md; dockerd(8)
// daemon.json and its validation of registry-mirrors; k3s/rke2 "Private Registry Configuration";
// containers-auth.json(5); crio.conf(5).
import { z } from 'zod';

const url = (schemes: RegExp) => z.string().refine((value) => {
  try {
    return schemes.test(new URL(value).protocol);
  } catch {
    return false;
  }
}, 'must be a URL with an allowed scheme');

/** host[:port] without a scheme (and, where a path is allowed, /path after it). */
const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+)(:\d{1,5})?$/, 'must be host[:port]');
const hostPortPath = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+)(:\d{1,5})?(\/[a-z0-9._/:-]+)?$/, 'must be host[:port][/path]');
/** containers/image parses a location as an image reference prefix: path components have no colon. */
const referencePrefix = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+)(:\d{1,5})?(\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/, 'must be host[:port][/repository/path]');
const stringOrStrings = z.union([z.string(), z.array(z.string())]);

const containerdHost = z
  .object({
    capabilities: z.array(z.enum(['pull', 'resolve', 'push'])).optional(),
    ca: stringOrStrings.optional(),
    client: z.union([z.string(), z.array(z.union([z.string(), z.array(z.string())]))]).optional(),
    skip_verify: z.boolean().optional(),
    header: z.record(z.string(), stringOrStrings).optional(),
    override_path: z.boolean().optional(),
    dial_timeout: z.string().optional(),
  })
  .strict();

/** containerd certs.d/<host>/hosts.toml. */
export const containerdHostsToml = containerdHost
  .extend({
    server: url(/^https?:$/).optional(),
    host: z.record(url(/^https?:$/), containerdHost).optional(),
  })
  .strict();

/** The registry part of containerd's config.toml, version 2. */
export const containerdConfigToml = z
  .object({
    version: z.literal(2),
    plugins: z.object({ 'io.containerd.grpc.v1.cri': z.object({ registry: z.object({ config_path: z.string().startsWith('/') }).strict() }).strict() }).strict(),
  })
  .strict();

/** containers-registries.conf(5), version 2. */
export const registriesConf = z
  .object({
    'unqualified-search-registries': z.array(z.string()).optional(),
    'short-name-mode': z.enum(['enforcing', 'permissive', 'disabled']).optional(),
    'credential-helpers': z.array(z.string()).optional(),
    aliases: z.record(z.string(), z.string()).optional(),
    registry: z
      .array(
        z
          .object({
            prefix: z.string().optional(),
            location: referencePrefix,
            insecure: z.boolean().optional(),
            blocked: z.boolean().optional(),
            'mirror-by-digest-only': z.boolean().optional(),
            'pull-from-mirror': z.enum(['all', 'digest-only', 'tag-only']).optional(),
            mirror: z
              .array(z.object({ location: referencePrefix, insecure: z.boolean().optional(), 'pull-from-mirror': z.enum(['all', 'digest-only', 'tag-only']).optional() }).strict())
              .optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

/** buildkitd.toml: only the registry section is generated; its keys as buildkit's RegistryConfig has them. */
export const buildkitdToml = z
  .object({
    registry: z.record(
      hostPort,
      z
        .object({
          mirrors: z.array(hostPortPath).optional(),
          http: z.boolean().optional(),
          insecure: z.boolean().optional(),
          ca: z.array(z.string().startsWith('/')).optional(),
          keypair: z.array(z.object({ key: z.string(), cert: z.string() }).strict()).optional(),
          tlsconfigdir: z.array(z.string()).optional(),
        })
        .strict(),
    ),
  })
  .strict();

/** dockerd daemon.json, the registry keys: mirrors are http(s) URLs of a root (dockerd rejects a path). */
export const dockerDaemonJson = z
  .object({
    'registry-mirrors': z.array(url(/^https?:$/).refine((value) => ['', '/'].includes(new URL(value).pathname), 'a mirror URL has no path')),
    'insecure-registries': z.array(hostPort).optional(),
  })
  .strict();

/** k3s / rke2 registries.yaml. */
export const k3sRegistriesYaml = z
  .object({
    mirrors: z.record(z.string(), z.object({ endpoint: z.array(url(/^https?:$/)), rewrite: z.record(z.string(), z.string()).optional() }).strict()),
    configs: z
      .record(
        z.string(),
        z
          .object({
            auth: z.object({ username: z.string(), password: z.string(), auth: z.string(), identitytoken: z.string() }).partial().strict().optional(),
            tls: z.object({ cert_file: z.string(), key_file: z.string(), ca_file: z.string(), insecure_skip_verify: z.boolean() }).partial().strict().optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

/** containers-auth.json(5): `auth` is base64 of `user:password`, keyed by host[:port] or a namespace under it. */
export const containersAuthJson = z
  .object({ auths: z.record(hostPortPath, z.object({ auth: z.base64() }).strict()) })
  .strict();

/** A crio.conf(5) drop-in that only names the auth file CRI-O reads for every pull. */
export const crioAuthDropIn = z.object({ crio: z.object({ image: z.object({ global_auth_file: z.string().startsWith('/') }).strict() }).strict() }).strict();

/** A `NAME=value` proxy variable as Go's net/http reads it (HTTPS_PROXY, NO_PROXY). */
const proxyVariable = z.string().regex(/^(HTTPS_PROXY=http:\/\/[^\s/]+:\d+|NO_PROXY=[^\s,]+(,[^\s,]+)*)$/, 'must be HTTPS_PROXY=http://host:port or NO_PROXY=a,b');

/** containers.conf(5), the engine table's env: variables podman and buildah set for themselves. */
export const containersConf = z.object({ engine: z.object({ env: z.array(proxyVariable) }).strict() }).strict();

/** A systemd drop-in (systemd.exec(5)) that only sets environment variables of the service. */
export const systemdEnvironmentDropIn = z
  .string()
  .refine((text) => text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).every((line, i) => (i === 0 ? line === '[Service]' : /^Environment="([^"]+)"$/.test(line) && proxyVariable.safeParse(/^Environment="([^"]+)"$/.exec(line)![1]).success)), 'must be [Service] then Environment="..." lines');
