import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { containerdConfigPathToml } from './containerd.js';
import { mergeFile, setTomlKey, tomlHeaderPath } from './merge.js';
import { ClientConfigError } from './mirror.js';

const CERTS = '/etc/containerd/certs.d';
const containerdSnippet = containerdConfigPathToml(CERTS);
const mergeContainerd = (current: string): string => mergeFile('containerd-config-toml', current, containerdSnippet, 'config.toml');


describe('TOML line editing', () => {
  it('reads table headers with bare, quoted and literal keys', () => {
    expect(tomlHeaderPath('[plugins."io.containerd.grpc.v1.cri".registry]')).toEqual(['plugins', 'io.containerd.grpc.v1.cri', 'registry']);
    expect(tomlHeaderPath("  [ plugins . 'cri' . registry ]  # comment")).toEqual(['plugins', 'cri', 'registry']);
    expect(tomlHeaderPath('[[registry.mirror]]')).toBeUndefined();
    expect(tomlHeaderPath('config_path = "[x]"')).toBeUndefined();
  });

  it('replaces the key in its table, adds it under the header, or appends the table', () => {
    const table = ['a', 'b.c'];
    expect(setTomlKey('[a."b.c"]\n  k = 1\n  x = 2\n[d]\nk = 3\n', table, 'k', '9')).toBe('[a."b.c"]\n  k = 9\n  x = 2\n[d]\nk = 3\n');
    expect(setTomlKey('[d]\nk = 3\n[a."b.c"]\nx = 2\n', table, 'k', '9')).toBe('[d]\nk = 3\n[a."b.c"]\n  k = 9\nx = 2\n');
    expect(setTomlKey('[d]\nk = 3', table, 'k', '9')).toBe('[d]\nk = 3\n\n[a."b.c"]\n  k = 9\n');
  });
});

describe('containerd config.toml', () => {
  it('writes the snippet when there is no file, and changes nothing when config_path is already set', () => {
    expect(mergeFile('containerd-config-toml', undefined, containerdSnippet, 'config.toml')).toBe(containerdSnippet);
    expect(mergeContainerd(containerdSnippet)).toBe(containerdSnippet);
  });

  it('sets config_path in a version 2 file, keeping everything else and its comments', () => {
    const current = [
      '# my containerd',
      'version = 2',
      '[plugins."io.containerd.grpc.v1.cri"]',
      '  sandbox_image = "registry.k8s.io/pause:3.9"',
      '  [plugins."io.containerd.grpc.v1.cri".registry]',
      '    config_path = ""',
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    snapshotter = "overlayfs"',
      '',
    ].join('\n');
    const merged = mergeContainerd(current);
    expect(merged).toBe(current.replace('config_path = ""', `config_path = "${CERTS}"`));
    expect(mergeContainerd(merged)).toBe(merged);
  });

  it('uses the table of the file version: 1 (no version), 3 (containerd 2)', () => {
    const v1 = parseToml(mergeContainerd('root = "/var/lib/containerd"\n')) as { plugins: { cri: { registry: { config_path: string } } } };
    expect(v1.plugins.cri.registry.config_path).toBe(CERTS);
    const v3 = mergeContainerd('version = 3\n[plugins."io.containerd.cri.v1.images"]\n  snapshotter = "overlayfs"\n');
    expect(v3).toContain(`[plugins."io.containerd.cri.v1.images".registry]\n  config_path = "${CERTS}"`);
    expect(parseToml(v3)).toMatchObject({ plugins: { 'io.containerd.cri.v1.images': { snapshotter: 'overlayfs', registry: { config_path: CERTS } } } });
  });

  it('refuses files it cannot edit safely', () => {
    const mirrors = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n  endpoint = ["https://m"]\n';
    expect(() => mergeContainerd(mirrors)).toThrow(ClientConfigError);
    expect(() => mergeContainerd(mirrors)).toThrow(/refuses beside config_path/);
    const dotted = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  registry.config_path = "/other"\n';
    expect(() => mergeContainerd(dotted)).toThrow(/cannot edit config.toml safely/);
    expect(() => mergeContainerd('version = [\n')).toThrow(/not valid TOML/);
    expect(() => mergeContainerd('version = 9\n')).toThrow(/unknown config version 9/);
  });
});

describe('dockerd daemon.json', () => {
  const ours = JSON.stringify({ 'registry-mirrors': ['http://m:5000'], 'insecure-registries': ['m:5000'] });
  it('replaces registry-mirrors, joins insecure-registries and keeps every other key', () => {
    const current = JSON.stringify({ 'log-driver': 'journald', 'registry-mirrors': ['https://old'], 'insecure-registries': ['10.0.0.0/8'] });
    const merged = mergeFile('docker-daemon-json', current, ours, 'daemon.json');
    expect(JSON.parse(merged)).toEqual({ 'log-driver': 'journald', 'registry-mirrors': ['http://m:5000'], 'insecure-registries': ['10.0.0.0/8', 'm:5000'] });
    expect(mergeFile('docker-daemon-json', merged, ours, 'daemon.json')).toBe(merged);
  });

  it('refuses a file that is not a JSON object', () => {
    expect(() => mergeFile('docker-daemon-json', '{"a":', ours, 'daemon.json')).toThrow(/not valid JSON/);
    expect(() => mergeFile('docker-daemon-json', '[]', ours, 'daemon.json')).toThrow(/does not hold a JSON object/);
  });
});

describe('k3s registries.yaml', () => {
  const ours = 'mirrors:\n  docker.io:\n    endpoint: ["http://m:5000"]\n  "*":\n    endpoint: ["http://m:5000"]\n';
  it('sets our endpoints and keeps other mirrors, configs and comments', () => {
    const current = '# site registries\nmirrors:\n  docker.io:\n    endpoint: ["https://old"]\n    rewrite:\n      "^(.*)$": "cache/$1"\n  quay.io:\n    endpoint: ["https://q"]\nconfigs:\n  q:\n    auth: { username: u }\n';
    const merged = mergeFile('k3s-registries-yaml', current, ours, 'registries.yaml');
    expect(merged).toContain('# site registries');
    expect(parseYaml(merged)).toEqual({
      mirrors: {
        'docker.io': { endpoint: ['http://m:5000'], rewrite: { '^(.*)$': 'cache/$1' } },
        'quay.io': { endpoint: ['https://q'] },
        '*': { endpoint: ['http://m:5000'] },
      },
      configs: { q: { auth: { username: 'u' } } },
    });
    expect(mergeFile('k3s-registries-yaml', merged, ours, 'registries.yaml')).toBe(merged);
  });

  it('refuses a file that is not a YAML mapping', () => {
    expect(() => mergeFile('k3s-registries-yaml', 'mirrors: [\n', ours, 'registries.yaml')).toThrow(/not valid YAML/);
    expect(() => mergeFile('k3s-registries-yaml', '- a\n', ours, 'registries.yaml')).toThrow(/YAML mapping/);
  });
});

describe('buildkitd.toml', () => {
  const ours = '[registry."docker.io"]\n  mirrors = ["m:5000/docker.io"]\n\n[registry."m:5000"]\n  http = true\n';
  it('appends our tables to a file without them, keeping its comments', () => {
    const current = '# builder\ndebug = true\n[registry."quay.io"]\n  mirrors = ["q"]\n';
    const merged = mergeFile('buildkitd-toml', current, ours, 'buildkitd.toml');
    expect(merged).toBe(`${current}\n${ours}`);
    expect(mergeFile('buildkitd-toml', merged, ours, 'buildkitd.toml')).toBe(merged);
  });

  it('merges into tables the file has already, key by key', () => {
    const current = 'debug = true\n[registry."docker.io"]\n  mirrors = ["old"]\n  ca = ["/ca.pem"]\n';
    const merged = mergeFile('buildkitd-toml', current, ours, 'buildkitd.toml');
    expect(parseToml(merged)).toEqual({ debug: true, registry: { 'docker.io': { mirrors: ['m:5000/docker.io'], ca: ['/ca.pem'] }, 'm:5000': { http: true } } });
    expect(mergeFile('buildkitd-toml', merged, ours, 'buildkitd.toml')).toBe(merged);
  });
});
