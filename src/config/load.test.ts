import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveCredentials } from './credentials.js';
import { ConfigError, loadConfig, parseConfig } from './load.js';

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

const minimal = { version: 1, upstreams: { 'ghcr.io': { url: 'https://ghcr.io' } } };

describe('configuration', () => {
  it('embeds a default that mirrors the big public registries on :5000', () => {
    const config = loadConfig(undefined);
    expect(config.listeners).toEqual([{ address: '0.0.0.0:5000' }]);
    expect(Object.keys(config.upstreams)).toEqual(['docker.io', 'ghcr.io', 'quay.io', 'gcr.io', 'registry.k8s.io', 'public.ecr.aws', 'mcr.microsoft.com']);
    expect(config.upstreams['docker.io']!.dockerHubNames).toBe(true);
    expect(config.upstreams['ghcr.io']!.dockerHubNames).toBe(false);
    expect(config.routing.defaultUpstream).toBe('docker.io');
    expect(config.cache.tagTTL).toBe(300_000);
    expect(Object.isFrozen(config.upstreams['docker.io'])).toBe(true);
  });

  it('applies flags over the file: listeners, data folder, upstreams with credentials in the URL', () => {
    const config = loadConfig(undefined, {
      listen: ['127.0.0.1:5000', ':5001=ghcr.io'],
      data: '/tmp/cache',
      upstream: ['docker.io=https://registry-1.docker.io', 'ghcr.io=https://user:p%40ss@ghcr.io'],
    });
    expect(config.listeners).toEqual([{ address: '127.0.0.1:5000' }, { address: ':5001', upstream: 'ghcr.io' }]);
    expect(config.storage.path).toBe('/tmp/cache');
    expect(Object.keys(config.upstreams)).toEqual(['docker.io', 'ghcr.io']);
    expect(config.upstreams['ghcr.io']).toMatchObject({ url: 'https://ghcr.io/', credentials: { username: 'user', password: 'p@ss' } });
    expect(loadConfig(undefined, { upstream: ['ghcr.io=https://ghcr.io'] }).routing.defaultUpstream).toBe('ghcr.io');
  });

  it('names the key in a one-line error for each problem', () => {
    expect(errorOf(() => parseConfig({ ...minimal, version: 2 }))).toBe('config error at version: must be 1');
    expect(errorOf(() => parseConfig({ ...minimal, cache: { tagTTL: 'soon' } }))).toBe('config error at cache.tagTTL: "soon" is not a duration (use e.g. 500ms, 30s, 5m, 1h)');
    expect(errorOf(() => parseConfig({ ...minimal, upstreams: { 'ghcr.io': { url: 'ftp://x' } } }))).toBe('config error at upstreams["ghcr.io"].url: must be an http(s) URL');
    expect(errorOf(() => parseConfig({ ...minimal, listners: [] }))).toBe('config error at (top level): unknown key "listners"');
    expect(errorOf(() => parseConfig({ ...minimal, listeners: [] }))).toBe('config error at listeners: at least one listener is needed');
    expect(errorOf(() => parseConfig({ ...minimal, listeners: [{ address: '5000' }] }))).toBe('config error at listeners[0].address: must be host:port, e.g. 0.0.0.0:5000 or :5000');
    expect(errorOf(() => parseConfig({ ...minimal, admin: { allow: ['10.0.0.0/8'] } }))).toBe('config error at admin.allow: applies to the admin listener only: set admin.address, or use listeners[].allow');
    expect(errorOf(() => parseConfig({ ...minimal, admin: { address: '127.0.0.1:99999' } }))).toBe('config error at admin.address: port 99999 is out of range: 1 to 65535 (0: any free port)');
    expect(parseConfig({ ...minimal, listeners: [{ address: '127.0.0.1:0' }, { address: '[::1]:65535' }] }).listeners).toHaveLength(2);
    expect(errorOf(() => parseConfig({ ...minimal, listeners: [{ address: ':5000', upstream: 'quay.io' }] }))).toBe('config error at listeners[0].upstream: no upstream named "quay.io"');
    expect(errorOf(() => parseConfig({ ...minimal, upstreams: { ghcr: { url: 'https://ghcr.io' } } }))).toBe('config error at upstreams.ghcr: an upstream is named by its registry host, e.g. ghcr.io');
    expect(errorOf(() => loadConfig(undefined, { upstream: ['ghcr.io'] }))).toBe('--upstream "ghcr.io": expected name=url');
  });

  it('checks the keys that refer to others even when other keys have problems', () => {
    expect(errorOf(() => parseConfig({
      ...minimal,
      listeners: [{ address: ':5000', upstream: 'quay.io' }, { address: '5001' }],
      routing: { defaultUpstream: 'docker.io' },
      cache: { tagTTL: 'soon' },
      upstreams: { 'ghcr.io': { url: 'https://ghcr.io', tagTTL: 'later' }, ghcr: { url: 'https://ghcr.io' } },
      storage: { driver: 's3', maxSize: '50 gigs' },
    })).split('\n')).toEqual([
      'config error at listeners[1].address: must be host:port, e.g. 0.0.0.0:5000 or :5000',
      'config error at storage.maxSize: "50 gigs" is not a size (use e.g. 500MiB, 50GiB, 2TB, or a number of bytes)',
      'config error at storage.bucket: the s3 driver needs a bucket',
      'config error at cache.tagTTL: "soon" is not a duration (use e.g. 500ms, 30s, 5m, 1h)',
      'config error at upstreams["ghcr.io"].tagTTL: "later" is not a duration (use e.g. 500ms, 30s, 5m, 1h)',
      'config error at upstreams.ghcr: an upstream is named by its registry host, e.g. ghcr.io',
      'config error at listeners[0].upstream: no upstream named "quay.io"',
      'config error at routing.defaultUpstream: no upstream named "docker.io"',
    ]);
    // A key that did not parse is not checked against others: no second error about it.
    expect(errorOf(() => parseConfig({ ...minimal, routing: { defaultUpstream: 5 } }))).toBe('config error at routing.defaultUpstream: Invalid input: expected string, received number');
  });

  it('checks repository patterns, naming the key of each bad one', () => {
    const withRules = (name: string, repositories: unknown, extra: object = {}): unknown => ({ version: 1, upstreams: { [name]: { url: 'https://registry.example', ...extra, repositories } } });
    const ok = parseConfig(withRules('docker.io', { allow: ['library/*', 'bitnami/**', '**/base-*'], deny: ['library/evil'] }));
    expect(ok.upstreams['docker.io']!.repositories).toEqual({ allow: ['library/*', 'bitnami/**', '**/base-*'], deny: ['library/evil'] });
    expect(parseConfig(withRules('ghcr.io', { deny: [] })).upstreams['ghcr.io']!.repositories).toEqual({ deny: [] });
    expect(errorOf(() => parseConfig(withRules('ghcr.io', { allow: ['Org/*', 'org//app', '/org', 'org/a**', 'org/app:v1'], deny: ['ok/*', 'x?'] }))).split('\n')).toEqual([
      'config error at upstreams["ghcr.io"].repositories.allow[0]: "Org/*" may hold only lower-case letters, digits, ".", "_", "-", "/" and the wildcards * and ** (repository names are lower-case)',
      'config error at upstreams["ghcr.io"].repositories.allow[1]: "org//app" has an empty path segment (a leading, trailing or double "/")',
      'config error at upstreams["ghcr.io"].repositories.allow[2]: "/org" has an empty path segment (a leading, trailing or double "/")',
      'config error at upstreams["ghcr.io"].repositories.allow[3]: "org/a**" has ** inside a segment: ** stands for whole segments (org/**, **/app); * matches within one',
      'config error at upstreams["ghcr.io"].repositories.allow[4]: "org/app:v1" may hold only lower-case letters, digits, ".", "_", "-", "/" and the wildcards * and ** (repository names are lower-case)',
      'config error at upstreams["ghcr.io"].repositories.deny[1]: "x?" may hold only lower-case letters, digits, ".", "_", "-", "/" and the wildcards * and ** (repository names are lower-case)',
    ]);
    expect(errorOf(() => parseConfig(withRules('ghcr.io', { allow: [] })))).toBe('config error at upstreams["ghcr.io"].repositories.allow: an empty allow list would refuse every repository: leave allow out to allow all (or remove the upstream)');
    expect(errorOf(() => parseConfig(withRules('ghcr.io', { allowed: ['org/*'] })))).toBe('config error at upstreams["ghcr.io"].repositories: unknown key "allowed"');
    expect(errorOf(() => parseConfig(withRules('ghcr.io', { allow: 'org/*' })))).toBe('config error at upstreams["ghcr.io"].repositories.allow: Invalid input: expected array, received string');
  });

  it('refuses patterns that can never match: with the registry in front, or one segment on Docker Hub', () => {
    expect(errorOf(() => parseConfig({
      version: 1,
      upstreams: {
        'docker.io': { url: 'https://registry-1.docker.io', hosts: ['index.docker.io'], repositories: { allow: ['alpine', '**', 'index.docker.io/library/*'], deny: ['*'] } },
        'ghcr.io': { url: 'https://ghcr.io', repositories: { allow: ['tool', 'ghcr.io/org/*', 'ghcr.io.mirror/app'] } },
        'hub.example': { url: 'https://hub.example', dockerHubNames: true, repositories: { allow: ['Bad', 'nginx'] } },
      },
    })).split('\n')).toEqual([
      'config error at upstreams["hub.example"].repositories.allow[0]: "Bad" may hold only lower-case letters, digits, ".", "_", "-", "/" and the wildcards * and ** (repository names are lower-case)',
      'config error at upstreams["docker.io"].repositories.allow[0]: "alpine" never matches: Docker Hub names have a namespace: library/alpine for alpine',
      'config error at upstreams["docker.io"].repositories.allow[2]: "index.docker.io/library/*" never matches: patterns name the repository without its registry (library/*)',
      'config error at upstreams["docker.io"].repositories.deny[0]: "*" never matches: Docker Hub names have a namespace: library/* for official images, ** for every repository',
      'config error at upstreams["ghcr.io"].repositories.allow[1]: "ghcr.io/org/*" never matches: patterns name the repository without its registry (org/*)',
      'config error at upstreams["hub.example"].repositories.allow[1]: "nginx" never matches: Docker Hub names have a namespace: library/nginx for nginx',
    ]);
  });

  it('reports unreadable files and bad YAML in one line', () => {
    expect(errorOf(() => loadConfig('/nonexistent/regmirror.yaml'))).toMatch(/^cannot read config file \/nonexistent\/regmirror.yaml: /);
    const dir = mkdtempSync(join(tmpdir(), 'regmirror-config-'));
    writeFileSync(join(dir, 'bad.yaml'), 'version: 1\nupstreams: [\n');
    expect(errorOf(() => loadConfig(join(dir, 'bad.yaml')))).toMatch(/^config file .*bad.yaml is not valid YAML: /);
  });

  it('reads upstream credentials from the environment or a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'regmirror-creds-'));
    writeFileSync(join(dir, 'token'), 's3cret\n');
    expect(resolveCredentials('ghcr.io', { usernameEnv: 'GHCR_USER', passwordFile: join(dir, 'token') }, { GHCR_USER: 'bot' })).toEqual({ username: 'bot', password: 's3cret' });
    expect(resolveCredentials('ghcr.io', { username: 'bot', passwordEnv: 'GHCR_TOKEN' }, { GHCR_TOKEN: 't' })).toEqual({ username: 'bot', password: 't' });
    expect(resolveCredentials('ghcr.io', undefined)).toBeUndefined();
    expect(errorOf(() => resolveCredentials('ghcr.io', { username: 'bot', passwordEnv: 'MISSING' }, {}))).toBe('config error at upstreams["ghcr.io"].credentials: environment variable MISSING is not set');
    expect(errorOf(() => resolveCredentials('ghcr.io', { username: 'bot' }, {}))).toBe('config error at upstreams["ghcr.io"].credentials: both a username and a password are needed');
  });
});
