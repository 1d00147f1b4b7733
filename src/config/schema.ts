/**
 * The configuration schema: the single source of truth for the config file's keys, types and
 * defaults. docs/configuration.md describes the same keys; docs.test.ts keeps the two in step.
 */
import { z } from 'zod';
import { looksLikeRegistryHost } from '../oci/reference.js';
import { isCidr, parseDuration, parseSize } from './units.js';

const duration = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration (use e.g. 500ms, 30s, 5m, 1h)` });
      return z.NEVER;
    }
    return ms;
  });

const size = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined || bytes === 0) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a size (use e.g. 500MiB, 50GiB, 2TB, or a number of bytes)` });
      return z.NEVER;
    }
    return bytes;
  });

const share = z.string().transform((value, ctx) => {
  const m = /^(\d+(?:\.\d+)?)\s*%$/.exec(value.trim());
  const fraction = m ? Number(m[1]) / 100 : Number.NaN;
  if (!(fraction >= 0.01 && fraction <= 0.99)) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a share from 1% to 99% (e.g. 90%)` });
    return z.NEVER;
  }
  return fraction;
});

/** `host:port`; port 0 is any free port (tests listen on it). */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:/]*):(\d{1,5})$/;

const hostPort = z
  .string()
  .regex(HOST_PORT, 'must be host:port, e.g. 0.0.0.0:5000 or :5000')
  .refine((address) => Number(HOST_PORT.exec(address)?.[2] ?? 0) <= 65535, { error: (issue) => `port ${portOf(issue.input as string)} is out of range: 1 to 65535 (0: any free port)` });

const credentials = z
  .object({
    username: z.string().optional(),
    usernameEnv: z.string().optional(),
    password: z.string().optional(),
    passwordEnv: z.string().optional(),
    passwordFile: z.string().optional(),
  })
  .strict();

/**
 * A repository pattern (`upstreams.<name>.repositories`): a repository name whose segments may hold
 * `*` (within the segment) or be `**` (any number of segments); routing/repository-filter.ts matches them.
 */
const repositoryPattern = z.string().superRefine((pattern, ctx) => {
  const problem = repositoryPatternProblem(pattern);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `"${pattern}" ${problem}` });
});

/** What is wrong with a repository pattern, if anything. */
function repositoryPatternProblem(pattern: string): string | undefined {
  if (/[^a-z0-9._*/-]/.test(pattern)) return 'may hold only lower-case letters, digits, ".", "_", "-", "/" and the wildcards * and ** (repository names are lower-case)';
  const segments = pattern.split('/');
  if (segments.includes('')) return 'has an empty path segment (a leading, trailing or double "/")';
  if (segments.some((segment) => segment.includes('**') && segment !== '**')) return 'has ** inside a segment: ** stands for whole segments (org/**, **/app); * matches within one';
  return undefined;
}

const repositories = z
  .object({
    allow: z.array(repositoryPattern).min(1, 'an empty allow list would refuse every repository: leave allow out to allow all (or remove the upstream)').optional(),
    deny: z.array(repositoryPattern).optional(),
  })
  .strict();

const upstream = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    hosts: z.array(z.string().min(1)).default([]),
    dockerHubNames: z.boolean().optional(),
    credentials: credentials.optional(),
    tagTTL: duration.optional(),
    timeouts: z
      .object({ connect: duration.default(10_000), headers: duration.default(30_000), idle: duration.default(60_000) })
      .strict()
      .prefault({}),
    retries: z.number().int().min(0).max(10).default(2),
    repositories: repositories.optional(),
  })
  .strict();

/** S3 access keys; the `*Env` and `*File` forms keep secrets out of the file. */
const s3Credentials = z
  .object({
    accessKeyId: z.string().optional(),
    accessKeyIdEnv: z.string().optional(),
    secretAccessKey: z.string().optional(),
    secretAccessKeyEnv: z.string().optional(),
    secretAccessKeyFile: z.string().optional(),
  })
  .strict();

/** Where content and records are kept: a local folder, or an S3 bucket shared by replicas. */
const storage = z
  .object({
    driver: z.enum(['filesystem', 's3']).default('filesystem'),
    path: z.string().min(1).default('./data'),
    maxSize: size.optional(),
    maxAge: duration.optional(),
    lowWater: share.default(0.9),
    spoolPath: z.string().min(1).optional(),
    bucket: z.string().min(3).optional(),
    prefix: z.string().default(''),
    endpoint: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
    region: z.string().min(1).default('us-east-1'),
    forcePathStyle: z.boolean().default(false),
    credentials: s3Credentials.optional(),
    redirect: z.boolean().default(false),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.driver === 's3' && s.bucket === undefined) ctx.addIssue({ code: 'custom', path: ['bucket'], message: 'the s3 driver needs a bucket' });
    if (s.driver !== 's3' && s.bucket !== undefined) ctx.addIssue({ code: 'custom', path: ['bucket'], message: 'only the s3 driver uses a bucket (set driver: s3)' });
  }, reading(['driver'], ['bucket']));

/** Coordination of replicas on shared storage: fleet-wide single flight and shared tag records. */
const redis = z
  .object({
    url: z.string().regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL'),
    passwordEnv: z.string().optional(),
    passwordFile: z.string().optional(),
    keyPrefix: z.string().default('regmirror:'),
    lockLease: duration.default(5_000),
    waitLimit: duration.default(30_000),
    evictionGrace: duration.default(30 * 60_000),
  })
  .strict();

const cidr = z.string().refine(isCidr, 'must be an IP address or CIDR, e.g. 10.0.0.0/8 or fd00::/8');

const dnsName = z.string().regex(/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, 'must be a DNS name, e.g. mirror.example.com');

/** ACME (Let's Encrypt) certificates for a listener; see docs/tls.md. */
const acme = z
  .object({
    domains: z.array(dnsName).min(1, 'at least one domain is needed'),
    email: z.email().optional(),
    directory: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).default('https://acme-v02.api.letsencrypt.org/directory'),
    directoryCA: z.string().min(1).optional(),
    path: z.string().min(1).default('./acme'),
    challengeAddress: hostPort.default(':80'),
    renewBefore: duration.default(30 * 86_400_000),
    checkInterval: duration.default(12 * 3_600_000),
    pollInterval: duration.default(5_000),
    selfCheck: z.boolean().default(true),
  })
  .strict();

/** HTTPS for a listener: certificate files (reloaded when they change), or ACME. */
const listenerTls = z
  .object({ cert: z.string().min(1).optional(), key: z.string().min(1).optional(), ca: z.string().min(1).optional(), acme: acme.optional() })
  .strict()
  .superRefine((tls, ctx) => {
    if (tls.acme !== undefined && (tls.cert !== undefined || tls.key !== undefined || tls.ca !== undefined)) {
      ctx.addIssue({ code: 'custom', message: 'either cert and key (and ca) or acme, not both' });
    } else if (tls.acme === undefined && (tls.cert === undefined || tls.key === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'needs both cert and key (or acme)' });
    }
  }, reading(['cert'], ['key'], ['ca'], ['acme']));

/** A host the proxy serves: a DNS name or IPv4 address, `*.` for its subdomains, `:port` when not 443. */
const proxyHost = z
  .string()
  .regex(/^(\*\.)?([a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?(:\d{1,5})?$/i, 'must be a host, optionally *. before it and :port after it, e.g. ghcr.io, *.docker.io, registry.example.com:8443');

/** The HTTPS forward proxy for clients that take a proxy but no mirror; see docs/transparent-proxy.md. */
const proxy = z
  .object({
    listen: hostPort,
    hosts: z.array(proxyHost).optional(),
    caCert: z.string().min(1).default('./tls/ca.crt'),
    caKey: z.string().min(1).default('./tls/ca.key'),
    otherHosts: z.enum(['refuse', 'tunnel']).default('refuse'),
    allow: z.array(cidr).default(['127.0.0.0/8', '::1']),
  })
  .strict();

const listener = z
  .object({
    address: hostPort,
    upstream: z.string().optional(),
    allow: z.array(cidr).optional(),
    tls: listenerTls.optional(),
  })
  .strict();

export const configSchema = z
  .object({
    version: z.literal(1, { error: 'must be 1' }),
    listeners: z.array(listener).min(1, 'at least one listener is needed').default([{ address: '0.0.0.0:5000' }]),
    routing: z.object({ defaultUpstream: z.string().optional() }).strict().prefault({}),
    admin: z
      .object({ address: hostPort.optional(), allow: z.array(cidr).optional() })
      .strict()
      .superRefine((admin, ctx) => {
        // Without a listener of their own, the endpoints are on the registry listeners, behind theirs.
        if (admin.allow !== undefined && admin.address === undefined) {
          ctx.addIssue({ code: 'custom', path: ['allow'], message: 'applies to the admin listener only: set admin.address, or use listeners[].allow' });
        }
      }, reading(['address'], ['allow']))
      .prefault({}),
    access: z
      .object({
        trustedProxies: z.array(cidr).default([]),
        htpasswd: z.string().min(1).optional(),
        realm: z.string().min(1).default('regmirror'),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        headersTimeout: duration.default(30_000),
        keepAliveTimeout: duration.default(65_000),
        maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
      })
      .strict()
      .prefault({}),
    storage: storage.prefault({}),
    redis: redis.optional(),
    proxy: proxy.optional(),
    cache: z
      .object({
        tagTTL: duration.default(300_000),
        serveStaleOnError: z.boolean().default(true),
        manifestMemoryBytes: z.number().int().min(0).default(32 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        format: z.enum(['json', 'pretty']).default('json'),
        accessLog: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    upstreams: z.record(z.string(), upstream).refine((u) => Object.keys(u).length > 0, 'at least one upstream is needed'),
  })
  .strict()
  .superRefine((config, ctx) => {
    for (const name of Object.keys(config.upstreams)) {
      if (!looksLikeRegistryHost(name)) {
        ctx.addIssue({ code: 'custom', path: ['upstreams', name], message: 'an upstream is named by its registry host, e.g. ghcr.io' });
      }
    }
  }, reading(['upstreams']))
  .superRefine((config, ctx) => {
    for (const [name, u] of Object.entries(config.upstreams)) {
      for (const list of ['allow', 'deny'] as const) {
        u.repositories?.[list]?.forEach((pattern, i) => {
          const problem = typeof pattern === 'string' && repositoryPatternProblem(pattern) === undefined ? neverMatches(pattern, name, u) : undefined;
          if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['upstreams', name, 'repositories', list, i], message: `"${pattern}" never matches: ${problem}` });
        });
      }
    }
  }, reading(['upstreams', '*', 'hosts'], ['upstreams', '*', 'dockerHubNames'], ['upstreams', '*', 'repositories', 'allow'], ['upstreams', '*', 'repositories', 'deny']))
  .superRefine((config, ctx) => {
    config.listeners.forEach((l, i) => {
      if (l.upstream !== undefined && !Object.hasOwn(config.upstreams, l.upstream)) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'upstream'], message: `no upstream named "${l.upstream}"` });
      }
    });
  }, reading(['upstreams'], ['listeners', '*', 'upstream']))
  .superRefine((config, ctx) => {
    config.listeners.forEach((l, i) => {
      const challenge = l.tls?.acme?.challengeAddress;
      const clash = challenge === undefined ? -1 : config.listeners.findIndex((other) => portOf(other.address) === portOf(challenge));
      if (clash !== -1) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'tls', 'acme', 'challengeAddress'], message: `port ${portOf(challenge!)} is also listener ${clash}'s: the challenge responder needs a port of its own` });
      }
    });
  }, reading(['listeners', '*', 'address'], ['listeners', '*', 'tls', 'acme', 'challengeAddress']))
  .superRefine((config, ctx) => {
    const fallback = config.routing.defaultUpstream;
    if (fallback !== undefined && !Object.hasOwn(config.upstreams, fallback)) {
      ctx.addIssue({ code: 'custom', path: ['routing', 'defaultUpstream'], message: `no upstream named "${fallback}"` });
    }
  }, reading(['upstreams'], ['routing', 'defaultUpstream']));

/**
 * Lets a check across keys run though other keys have problems (zod skips a refinement after any
 * issue that stops a parse), so that one run reports every problem. The check is skipped only when
 * a value it reads, or one holding it, did not parse: `paths` are what it reads, `*` any index or
 * name. An upstream's settings do not hold its name, so a bad one leaves `['upstreams']` readable.
 */
function reading(...paths: readonly string[][]): { when: (payload: z.core.ParsePayload) => boolean } {
  const holds = (at: readonly PropertyKey[], read: readonly string[]): boolean => at.length <= read.length && at.every((key, i) => read[i] === '*' || read[i] === key);
  return { when: ({ issues }) => !issues.some((issue) => issue.continue !== true && paths.some((read) => holds(issue.path ?? [], read))) };
}

/**
 * Why a well-formed pattern can match no repository of upstream `name`: it starts with the
 * registry's name (patterns match the repository on the upstream), or it is one segment on an
 * upstream with Docker Hub names (every name there has two, `alpine` being `library/alpine`).
 */
function neverMatches(pattern: string, name: string, u: { hosts: readonly string[]; dockerHubNames?: boolean | undefined }): string | undefined {
  const slash = pattern.indexOf('/');
  const first = pattern.slice(0, slash);
  if (slash !== -1 && [name, ...u.hosts].some((host) => host.toLowerCase() === first)) return `patterns name the repository without its registry (${pattern.slice(slash + 1)})`;
  if (slash === -1 && pattern !== '**' && usesDockerHubNames(name, u)) return `Docker Hub names have a namespace: library/${pattern}${pattern.includes('*') ? ' for official images, ** for every repository' : ` for ${pattern}`}`;
  return undefined;
}

/** Whether an upstream applies Docker Hub's naming rule: as configured, by default for docker.io only. */
export function usesDockerHubNames(name: string, u: { dockerHubNames?: boolean | undefined }): boolean {
  return u.dockerHubNames ?? name === 'docker.io';
}

function portOf(address: string): string {
  return address.slice(address.lastIndexOf(':') + 1);
}

/** The configuration file as written (before defaults). */
export type ConfigInput = z.input<typeof configSchema>;
/** The validated configuration with every default applied. */
export type Config = z.output<typeof configSchema>;
/** One upstream's validated settings. */
export type UpstreamConfig = Config['upstreams'][string];
/** A listener's validated TLS settings. */
export type ListenerTlsConfig = NonNullable<Config['listeners'][number]['tls']>;
