// Every client's generated files, for three mirrors (plain http with a pinned listener and the
// wildcard form; https with a CA; https beside plain pinned listeners): compared with the golden files in golden/, parsed with real
// parsers, checked against each tool's documented schema, and — by replaying how each client turns
// its configuration into request URLs — routed by regmirror's real router to the right upstream.
// UPDATE_GOLDEN=1 rewrites the golden files.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import {
  CLIENT_NAMES, ClientConfigError, describeMirror, describeProxy, generateClientConfig, type ClientConfig, type ClientFile, type ClientName, type GenerateOptions, type MirrorDescription, type MirrorLayout,
  type ProxyLayout,
} from '../../src/clients/index.js';
import { HostPatterns, parseAuthority } from '../../src/proxy/hosts.js';
import { decide } from '../../src/proxy/policy.js';
import { Router } from '../../src/routing/router.js';
import {
  buildkitdToml, containerdConfigToml, containerdHostsToml, containersAuthJson, containersConf, crioAuthDropIn, dockerDaemonJson, k3sRegistriesYaml, registriesConf,
  systemdEnvironmentDropIn,
} from './schemas.js';

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), 'golden');

const layout: MirrorLayout = {
  listeners: [{ address: '0.0.0.0:5000' }, { address: '0.0.0.0:5001', upstream: 'registry.example.com:8443' }],
  upstreams: { 'docker.io': { dockerHubNames: true }, 'ghcr.io': {}, 'quay.io': {}, 'registry.example.com:8443': {} },
  routing: { defaultUpstream: 'docker.io' },
};

/** The same listeners, every one with tls. */
const httpsLayout: MirrorLayout = { ...layout, listeners: layout.listeners.map((l) => ({ ...l, tls: {} })) };

/** An https listener with a CA, and plain listeners pinned to Docker Hub and to a registry named with a port. */
const mixedLayout: MirrorLayout = {
  ...layout,
  listeners: [{ address: '0.0.0.0:5000', tls: { ca: '/etc/regmirror/tls/ca.crt' } }, { address: '0.0.0.0:5001', upstream: 'docker.io' }, { address: '0.0.0.0:5002', upstream: 'registry.example.com:8443' }],
  routing: {},
};

const VARIANTS: Record<string, { mirror: MirrorDescription; options: GenerateOptions }> = {
  http: { mirror: describeMirror(layout, { hostname: 'mirror.internal' }), options: { wildcard: true } },
  'https-ca': { mirror: describeMirror(httpsLayout, { url: 'https://cache.example.com', caFile: '/etc/regmirror/ca.pem', hostname: 'unused' }), options: {} },
  mixed: { mirror: describeMirror(mixedLayout, { hostname: 'mirror.internal' }), options: {} },
};

/** The generated files as golden files: each text file, plus guidance.txt for copies, reload and notes. */
function render(generated: ClientConfig): Map<string, string> {
  const files = new Map<string, string>();
  const guidance = [`configDir: ${generated.configDir}`];
  for (const file of generated.files) {
    if (file.kind === 'text') files.set(file.path, file.content);
    else guidance.push(`copy: ${file.path} <- ${file.from}`);
  }
  guidance.push(...generated.reload.map((r) => `reload: ${r}`), ...generated.notes.map((n) => `note: ${n}`));
  files.set('guidance.txt', `${guidance.join('\n')}\n`);
  return files;
}

/** Compares the generated files with the golden files in `dir` (UPDATE_GOLDEN=1 rewrites them). */
function expectGolden(dir: string, generated: ClientConfig): void {
  const files = render(generated);
  if (process.env.UPDATE_GOLDEN) {
    rmSync(dir, { recursive: true, force: true });
    for (const [path, content] of files) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
  }
  expect(listFiles(dir).map((path) => relative(dir, path)).sort()).toEqual([...files.keys()].sort());
  for (const [path, content] of files) expect(content, path).toBe(readFileSync(join(dir, path), 'utf8'));
}

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

function parsed<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new Error(`schema: ${JSON.stringify(result.error.issues, null, 1)}`);
  return result.data;
}

const text = (generated: ClientConfig, path: string): string => {
  const file = generated.files.find((f) => f.path === path);
  if (file?.kind !== 'text') throw new Error(`no text file ${path}`);
  return file.content;
};

/** Parses a generated file as its client does and checks it against the client's documented format. */
function expectDocumentedFormat(file: ClientFile): void {
  if (file.kind === 'copy') {
    expect(file.path).toMatch(/^(containers\/)?certs\.d\/[^/]+\/ca\.crt$/);
    return;
  }
  const content = file.content;
  if (file.path.endsWith('hosts.toml')) parsed(containerdHostsToml, parseToml(content));
  else if (file.path === 'config.toml') parsed(containerdConfigToml, parseToml(content));
  else if (file.path.startsWith('crio/crio.conf.d/')) parsed(crioAuthDropIn, parseToml(content));
  else if (file.path.endsWith('registries.conf.d/regmirror.conf')) parsed(registriesConf, parseToml(content));
  else if (file.path.endsWith('regmirror-auth.json')) parsed(containersAuthJson, JSON.parse(content));
  else if (file.path === 'buildkitd.toml') parsed(buildkitdToml, parseToml(content));
  else if (file.path === 'daemon.json') parsed(dockerDaemonJson, JSON.parse(content));
  else if (file.path === 'registries.yaml') parsed(k3sRegistriesYaml, parseYaml(content));
  else throw new Error(`no schema for ${file.path}`);
}

/** A request a client would send for a manifest, as regmirror's listener receives it. */
interface ClientRequest {
  /** host:port the client connects to. */
  host: string;
  path: string;
  ns?: string;
}

/**
 * How each client turns its configuration into the request for `<registry>/<repo>:<tag>`, as
 * documented (and, for containerd and podman, observed in test/clients/*.test.ts).
 */
function requestFor(client: ClientName, generated: ClientConfig, registry: string, repo: string, tag: string): ClientRequest | undefined {
  switch (client) {
    case 'containerd': {
      const hosts = parsed(containerdHostsToml, parseToml(text(generated, `certs.d/${registry}/hosts.toml`)));
      const url = new URL(Object.keys(hosts.host ?? {})[0]!);
      return { host: url.host, path: `${url.pathname.replace(/\/$/, '')}/v2/${repo}/manifests/${tag}`, ns: registry };
    }
    case 'k3s':
    case 'rke2': {
      const yaml = parsed(k3sRegistriesYaml, parseYaml(text(generated, 'registries.yaml')));
      const url = new URL(yaml.mirrors[registry]!.endpoint[0]!);
      // An endpoint path other than /v2 is used verbatim as the API root.
      const root = url.pathname === '/' || url.pathname === '' ? '/v2' : url.pathname;
      return { host: url.host, path: `${root}/${repo}/manifests/${tag}`, ns: registry };
    }
    case 'podman':
    case 'cri-o': {
      const conf = parsed(registriesConf, parseToml(text(generated, 'registries.conf.d/regmirror.conf')));
      const entry = conf.registry?.find((r) => r.prefix === registry);
      if (!entry) return undefined;
      const [host, ...path] = entry.mirror![0]!.location.split('/');
      return { host: host!, path: `/v2/${[...path, repo].join('/')}/manifests/${tag}` };
    }
    case 'buildkit': {
      const conf = parsed(buildkitdToml, parseToml(text(generated, 'buildkitd.toml')));
      const [host, ...path] = conf.registry[registry]!.mirrors![0]!.split('/');
      return { host: host!, path: `/v2/${[...path, repo].join('/')}/manifests/${tag}`, ns: registry };
    }
    case 'docker': {
      if (registry !== 'docker.io') return undefined;
      const daemon = parsed(dockerDaemonJson, JSON.parse(text(generated, 'daemon.json')));
      return { host: new URL(daemon['registry-mirrors'][0]!).host, path: `/v2/${repo}/manifests/${tag}` };
    }
  }
}

describe.each(Object.entries(VARIANTS))('generated client files (%s mirror)', (variant, { mirror, options }) => {
  it.each(CLIENT_NAMES)('%s: matches the golden files', (client) => {
    expectGolden(join(GOLDEN, variant, client), generateClientConfig(client, mirror, options));
  });

  it.each(CLIENT_NAMES)('%s: parses and fits the documented schema', (client) => {
    generateClientConfig(client, mirror, options).files.forEach(expectDocumentedFormat);
  });

  it.each(CLIENT_NAMES)('%s: what the client would send reaches the right upstream', (client) => {
    const router = new Router(mirror.registries.map((r) => ({ name: r.name, hosts: [], dockerHubNames: r.dockerHub })), mirror.defaultUpstream);
    const ports = new Map(mirror.listeners.map((l) => [l.host, l.upstream]));
    ports.set(mirror.host, mirror.listeners.find((l) => l.upstream === undefined)?.upstream);
    const generated = generateClientConfig(client, mirror, options);
    let served = 0;
    for (const registry of mirror.registries) {
      const repo = registry.dockerHub ? 'library/alpine' : 'team/tool';
      const request = requestFor(client, generated, registry.name, registry.dockerHub ? 'library/alpine' : 'team/tool', '1.0');
      if (!request) continue;
      served++;
      expect(ports.has(request.host), `${request.host} is a listener`).toBe(true);
      const routed = router.route({ path: request.path, ns: request.ns, host: request.host, listenerUpstream: ports.get(request.host) });
      expect(routed).toMatchObject({ kind: 'manifest', upstream: registry.name, repository: repo, reference: '1.0' });
    }
    // dockerd mirrors Docker Hub alone; containers/image cannot put a registry with a port in a path
    // and takes it from the pinned listener.
    expect(served).toBe(client === 'docker' ? 1 : mirror.registries.length);
  });
});

describe('clients that cannot use a mirror', () => {
  it('dockerd: refuses a mirror without docker.io or without a route for requests that name no registry', () => {
    const noHub = describeMirror({ ...layout, upstreams: { 'ghcr.io': {} }, routing: {} }, { hostname: 'm' });
    expect(() => generateClientConfig('docker', noHub)).toThrow(ClientConfigError);
    const noRoute = describeMirror({ ...layout, routing: {} }, { hostname: 'm' });
    expect(() => generateClientConfig('docker', noRoute)).toThrow(/routing.defaultUpstream: docker.io, or add a listener with upstream: docker.io/);
    const pinned = describeMirror({ ...layout, listeners: [...layout.listeners, { address: '0.0.0.0:5002', upstream: 'docker.io' }], routing: {} }, { hostname: 'm' });
    expect(JSON.parse(text(generateClientConfig('docker', pinned), 'daemon.json'))['registry-mirrors']).toEqual(['http://m:5002']);
  });

  it('podman: leaves out a registry with a port when no listener is pinned to it, and says so', () => {
    const mirror = describeMirror({ ...layout, listeners: [{ address: '0.0.0.0:5000' }] }, { hostname: 'm' });
    const generated = generateClientConfig('podman', mirror);
    const conf = parsed(registriesConf, parseToml(text(generated, 'registries.conf.d/regmirror.conf')));
    expect(conf.registry?.map((r) => r.prefix)).toEqual(['docker.io', 'ghcr.io', 'quay.io']);
    expect(generated.notes.join('\n')).toMatch(/registry.example.com:8443 is left out/);
  });
});

describe('generated client files (https beside plain pinned listeners)', () => {
  const { mirror } = VARIANTS.mixed!;

  it('podman: insecure only for a location on a plain listener; the CA only for the https host', () => {
    const generated = generateClientConfig('podman', mirror);
    const conf = parsed(registriesConf, parseToml(text(generated, 'registries.conf.d/regmirror.conf')));
    const mirrors = conf.registry!.map((r) => r.mirror![0]!);
    expect(mirrors.filter((m) => m.insecure === true).map((m) => m.location)).toEqual(['mirror.internal:5002']);
    expect(generated.files.filter((f) => f.kind === 'copy').map((f) => f.path)).toEqual(['certs.d/mirror.internal:5000/ca.crt']);
  });

  it('docker: the plain listeners are insecure-registries; the CA only for the https host', () => {
    const generated = generateClientConfig('docker', mirror);
    expect(JSON.parse(text(generated, 'daemon.json'))['insecure-registries']).toEqual(['mirror.internal:5001', 'mirror.internal:5002']);
    expect(generated.files.filter((f) => f.kind === 'copy').map((f) => f.path)).toEqual(['certs.d/mirror.internal:5000/ca.crt']);
  });
});

describe('generated client files (a mirror that requires a login)', () => {
  const access = { htpasswd: '/etc/regmirror/users.htpasswd' };
  const credentials = { username: 'builder', password: 'pull only: s3cret' };
  const basic = `Basic ${Buffer.from('builder:pull only: s3cret').toString('base64')}`;
  const VARIANTS_LOGIN = {
    http: describeMirror({ ...layout, access }, { hostname: 'mirror.internal' }),
    'https-ca': describeMirror({ ...httpsLayout, access }, { url: 'https://cache.example.com', caFile: '/etc/regmirror/ca.pem', hostname: 'unused' }),
  };
  const LOGIN_CLIENTS = ['containerd', 'podman', 'cri-o', 'k3s', 'rke2', 'buildkit'] as const;

  describe.each(Object.entries(VARIANTS_LOGIN))('%s mirror', (variant, mirror) => {
    it.each(LOGIN_CLIENTS)('%s: matches the golden files, fits the documented schema, and marks the files with the password', (client) => {
      const generated = generateClientConfig(client, mirror, { credentials, wildcard: variant === 'http' });
      expectGolden(join(GOLDEN, `login-${variant}`, client), generated);
      generated.files.forEach(expectDocumentedFormat);
      const holdsPassword = (f: ClientFile): boolean => f.kind === 'text' && (f.content.includes(credentials.password) || f.content.includes(basic.slice(6)));
      expect(generated.files.filter(holdsPassword).map((f) => f.path)).toEqual(generated.files.filter((f) => f.secret).map((f) => f.path));
    });

    it.each(['k3s', 'rke2'] as const)('%s: the auth sits under configs, keyed by the endpoint\'s host:port', (client) => {
      const yaml = parsed(k3sRegistriesYaml, parseYaml(text(generateClientConfig(client, mirror, { credentials }), 'registries.yaml')));
      const endpointHost = new URL(yaml.mirrors['ghcr.io']!.endpoint[0]!).host;
      expect(Object.keys(yaml.configs ?? {})).toEqual([endpointHost]);
      expect(yaml.configs![endpointHost]!.auth).toEqual(credentials);
      expect(yaml.configs![endpointHost]!.tls).toEqual(mirror.caFile ? { ca_file: mirror.caFile } : undefined);
    });

    it('containerd: each mirror host table sends the Basic header; nothing goes to the registry server', () => {
      for (const file of generateClientConfig('containerd', mirror, { credentials, wildcard: true }).files.filter((f) => f.path.endsWith('hosts.toml'))) {
        const hosts = parsed(containerdHostsToml, parseToml(text({ configDir: '', files: [file], reload: [], notes: [] }, file.path)));
        expect(hosts.header).toBeUndefined();
        expect(hosts.host?.[mirror.url]?.header).toEqual({ Authorization: [basic] });
      }
    });

    it('podman, cri-o: the auth file names each host a mirror location is at; CRI-O\'s drop-in points at it', () => {
      const podman = generateClientConfig('podman', mirror, { credentials });
      const conf = parsed(registriesConf, parseToml(text(podman, 'registries.conf.d/regmirror.conf')));
      const hosts = new Set(conf.registry!.flatMap((r) => r.mirror!.map((m) => m.location.split('/')[0]!)));
      const auth = parsed(containersAuthJson, JSON.parse(text(podman, 'regmirror-auth.json')));
      expect(Object.keys(auth.auths).sort()).toEqual([...hosts].sort());
      const crio = generateClientConfig('cri-o', mirror, { credentials });
      expect(crio.configDir).toBe('/etc');
      expect(parsed(crioAuthDropIn, parseToml(text(crio, 'crio/crio.conf.d/regmirror.conf'))).crio.image.global_auth_file).toBe('/etc/containers/regmirror-auth.json');
      expect(text(crio, 'containers/regmirror-auth.json')).toBe(text(podman, 'regmirror-auth.json'));
    });
  });

  it('is refused without credentials by each client whose files carry them, and by dockerd, which cannot send them', () => {
    const mirror = VARIANTS_LOGIN.http;
    for (const client of ['containerd', 'podman', 'cri-o', 'k3s', 'rke2'] as const) {
      expect(() => generateClientConfig(client, mirror)).toThrow(`this mirror requires a login (access.htpasswd) and ${client}'s files carry it`);
    }
    expect(generateClientConfig('buildkit', mirror).notes.join('\n')).toContain('run `docker login mirror.internal:5000` where you run the build');
    expect(() => generateClientConfig('docker', mirror, { credentials })).toThrow(/dockerd cannot log in to a registry mirror .*moby\/moby#30880/);
  });
});

describe('the schemas reject what the clients reject', () => {
  it.each([
    ['hosts.toml with an unknown key', containerdHostsToml, { host: { 'http://m:5000': { capabilities: ['pull'], insecure: true } } }],
    ['hosts.toml with a host that is not a URL', containerdHostsToml, { host: { 'm:5000': { capabilities: ['pull'] } } }],
    ['registries.conf location with a scheme', registriesConf, { registry: [{ prefix: 'x.io', location: 'x.io', mirror: [{ location: 'http://m:5000/x.io' }] }] }],
    ['registries.conf location with a port in its path', registriesConf, { registry: [{ location: 'm:5000/x.io:8443' }] }],
    ['buildkitd mirror with a scheme', buildkitdToml, { registry: { 'x.io': { mirrors: ['http://m:5000'] } } }],
    ['daemon.json mirror with a path', dockerDaemonJson, { 'registry-mirrors': ['http://m:5000/docker.io'] }],
    ['daemon.json insecure registry with a scheme', dockerDaemonJson, { 'registry-mirrors': ['http://m:5000'], 'insecure-registries': ['http://m:5000'] }],
    ['registries.yaml endpoint without a scheme', k3sRegistriesYaml, { mirrors: { 'x.io': { endpoint: ['m:5000'] } } }],
    ['auth.json key with a scheme', containersAuthJson, { auths: { 'http://m:5000': { auth: 'YTpi' } } }],
    ['auth.json auth that is not base64', containersAuthJson, { auths: { 'm:5000': { auth: 'a:b' } } }],
  ] as const)('%s', (_what, schema, value) => {
    expect((schema as z.ZodType).safeParse(value).success).toBe(false);
  });
});

describe('generated client files (--proxy)', () => {
  const proxyLayout: MirrorLayout & ProxyLayout = {
    ...layout,
    upstreams: { 'docker.io': { dockerHubNames: true, hosts: ['registry-1.docker.io', 'index.docker.io'] }, 'ghcr.io': {}, 'quay.io': {}, 'registry.example.com:8443': {} },
    proxy: { listen: '0.0.0.0:3128', hosts: ['ghcr.io', '*.docker.io', 'registry.example.com:8443'], caCert: '/etc/regmirror/tls/ca.crt', otherHosts: 'refuse' },
  };
  const mirror = describeMirror(proxyLayout, { hostname: 'mirror.internal' });
  const proxy = describeProxy(proxyLayout, mirror, { hostname: 'mirror.internal' });
  const PROXY_CLIENTS = ['docker', 'containerd', 'podman', 'cri-o'] as const;

  it.each(PROXY_CLIENTS)('%s: matches the golden files', (client) => {
    expectGolden(join(GOLDEN, 'proxy', client), generateClientConfig(client, mirror, { proxy }));
  });

  it.each(PROXY_CLIENTS)('%s: parses and fits the documented schema', (client) => {
    for (const file of generateClientConfig(client, mirror, { proxy }).files) {
      if (file.kind === 'copy') {
        expect(file.path).toMatch(/^((docker|containers)\/)?certs\.d\/[^/]+\/ca\.crt$/);
        expect(file.from).toBe('/etc/regmirror/tls/ca.crt');
      } else if (file.path.startsWith('systemd/system/')) parsed(systemdEnvironmentDropIn, file.content);
      else if (file.path.startsWith('containers.conf.d/')) parsed(containersConf, parseToml(file.content));
      else if (file.path.endsWith('hosts.toml')) expect(parsed(containerdHostsToml, parseToml(file.content)).ca).toBe('/etc/regmirror/tls/ca.crt');
      else if (file.path.endsWith('config.toml')) parsed(containerdConfigToml, parseToml(file.content));
      else throw new Error(`no schema for ${file.path}`);
    }
  });

  it('names the hosts the proxy intercepts, each for its own upstream, and sends the rest of the mirror around it', () => {
    expect(proxy).toEqual({
      url: 'http://mirror.internal:3128',
      caFile: '/etc/regmirror/tls/ca.crt',
      hosts: ['ghcr.io', 'index.docker.io', 'registry-1.docker.io', 'registry.example.com:8443'],
      noProxy: ['localhost', '127.0.0.0/8', '::1', 'mirror.internal'],
      otherHosts: 'refuse',
    });
    const router = new Router(Object.entries(proxyLayout.upstreams).map(([name, u]) => ({ name, hosts: u.hosts ?? [], dockerHubNames: false })));
    const policy = { hosts: new HostPatterns(proxyLayout.proxy!.hosts!), otherHosts: 'refuse' as const, upstreamFor: (name: string) => router.lookup(name)?.name };
    const decisions = proxy.hosts.map((host) => decide(parseAuthority(host.includes(':') ? host : `${host}:443`)!, policy));
    expect(decisions).toEqual(['ghcr.io', 'docker.io', 'docker.io', 'registry.example.com:8443'].map((upstream) => ({ action: 'intercept', upstream })));
  });

  it('is refused for clients that mirror every registry themselves, and without a proxy block', () => {
    for (const client of ['buildkit', 'k3s', 'rke2'] as const) {
      expect(() => generateClientConfig(client, mirror, { proxy })).toThrow(`--proxy: not for ${client}`);
    }
    expect(() => describeProxy({ upstreams: {} }, mirror, { hostname: 'm' })).toThrow(/no proxy block/);
    expect(() => describeProxy(proxyLayout, mirror, { hostname: 'm', url: 'https://m:3128' })).toThrow(/must be http:\/\/host:port/);
    expect(() => generateClientConfig('containerd', mirror, { proxy, credentials: { username: 'u', password: 'p' } })).toThrow(/--username: not with --proxy/);
  });
});
