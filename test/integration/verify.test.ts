// `regmirror verify` checks what `serve` reads at start besides the file — credentials from the
// environment and files, the htpasswd file, certificate files — without binding a port or opening
// storage, and reports each problem like a schema error; `serve` stops on the same line before it
// touches the cache folder.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLocalCa, type LocalCaResult } from '../../src/tls/init.js';
import { tempDir } from '../support/index.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const UNSET = 'REGMIRROR_VERIFY_TEST_UNSET';

let dir: string;
let local: LocalCaResult;
let other: LocalCaResult;
let held: Server;
let heldPort: number;

beforeAll(async () => {
  dir = tempDir('verify');
  local = await initLocalCa({ dir: join(dir, 'local'), names: ['127.0.0.1'] });
  other = await initLocalCa({ dir: join(dir, 'other'), names: ['127.0.0.1'] });
  // A listener on this port would fail to start: verify must not try.
  held = createServer();
  await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
  heldPort = (held.address() as { port: number }).port;
});

afterAll(() => new Promise<void>((resolve) => held.close(() => resolve())));

/** Runs `regmirror verify` on `config` (written as YAML's JSON subset). */
function verify(name: string, config: object, env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, JSON.stringify(config));
  return spawnSync(process.execPath, ['--import', 'tsx', CLI, 'verify', '--config', file], { encoding: 'utf8', env: { ...process.env, ...env } });
}

const missing = (file: string): string => join(dir, 'missing', file);

describe('regmirror verify', () => {
  it('reports every credential and certificate file serve could not use, one line each, and exits 2', () => {
    const data = join(dir, 'data');
    const { status, stdout, stderr } = verify('bad', {
      version: 1,
      listeners: [
        { address: `127.0.0.1:${heldPort}`, tls: { cert: other.files.cert, key: local.files.key } },
        { address: '127.0.0.1:0', tls: { cert: missing('server.crt'), key: local.files.key } },
        { address: '127.0.0.1:0', tls: { acme: { domains: ['mirror.example'], challengeAddress: '127.0.0.1:1' } } },
      ],
      access: { htpasswd: missing('users.htpasswd') },
      storage: { driver: 's3', bucket: 'cache', path: data, credentials: { accessKeyIdEnv: UNSET, secretAccessKey: 'secret' } },
      redis: { url: 'redis://127.0.0.1:1', passwordFile: missing('redis-password') },
      proxy: { listen: '127.0.0.1:0', caCert: missing('ca.crt'), caKey: local.files.caKey },
      upstreams: {
        'ghcr.io': { url: 'https://ghcr.io', credentials: { username: 'bot', passwordEnv: UNSET } },
        'quay.io': { url: 'https://quay.io', credentials: { username: 'bot', passwordFile: missing('quay-token') } },
      },
    });
    const enoent = (file: string): string => `ENOENT: no such file or directory, open '${missing(file)}'`;
    // In the order serve reads them, so the first line is the problem serve would stop on.
    expect(stderr.trimEnd().split('\n')).toEqual([
      `config error at upstreams["ghcr.io"].credentials: environment variable ${UNSET} is not set`,
      `config error at upstreams["quay.io"].credentials.passwordFile: ${enoent('quay-token')}`,
      `config error at access.htpasswd: ${enoent('users.htpasswd')}`,
      `config error at listeners[0].tls: ${local.files.key} is not the key of the certificate in ${other.files.cert}`,
      `config error at listeners[1].tls: cannot read ${missing('server.crt')}: ENOENT`,
      `config error at storage.credentials: environment variable ${UNSET} is not set`,
      `config error at redis.passwordFile: ${enoent('redis-password')}`,
      `config error at proxy: cannot read ${missing('ca.crt')}: ENOENT`,
    ]);
    expect([status, stdout]).toEqual([2, '']);
    expect(existsSync(data)).toBe(false);
  });

  it('passes a configuration whose credentials and certificate files can all be used', () => {
    const htpasswd = join(dir, 'users.htpasswd');
    writeFileSync(htpasswd, '');
    const token = join(dir, 'quay-token');
    writeFileSync(token, 'token\n');
    const file = join(dir, 'good.yaml');
    const { status, stdout, stderr } = verify('good', {
      version: 1,
      listeners: [{ address: `127.0.0.1:${heldPort}`, tls: { cert: local.files.cert, key: local.files.key } }],
      access: { htpasswd },
      proxy: { listen: '127.0.0.1:0', caCert: local.files.caCert, caKey: local.files.caKey },
      upstreams: {
        'ghcr.io': { url: 'https://ghcr.io', credentials: { username: 'bot', passwordEnv: 'REGMIRROR_VERIFY_TEST_SET' } },
        'quay.io': { url: 'https://quay.io', credentials: { username: 'bot', passwordFile: token } },
      },
    }, { REGMIRROR_VERIFY_TEST_SET: 'secret' });
    expect([status, stdout, stderr]).toEqual([0, `${file}: OK\n`, '']);
  });

  it('reports bad repository patterns like the other problems of the file', () => {
    const { status, stdout, stderr } = verify('patterns', {
      version: 1,
      upstreams: { 'docker.io': { url: 'https://registry-1.docker.io', repositories: { allow: ['library/*', 'nginx'], deny: ['Library/evil'] } } },
    });
    expect(stderr.trimEnd().split('\n')).toEqual([
      'config error at upstreams["docker.io"].repositories.deny[0]: "Library/evil" may hold only lower-case letters, digits, ".", "_", "-", "/" and the wildcards * and ** (repository names are lower-case)',
      'config error at upstreams["docker.io"].repositories.allow[1]: "nginx" never matches: Docker Hub names have a namespace: library/nginx for nginx',
    ]);
    expect([status, stdout]).toEqual([2, '']);
  });

  it('shows what serve would warn about at start, without failing', () => {
    const htpasswd = join(dir, 'md5.htpasswd');
    writeFileSync(htpasswd, 'alice:$apr1$salt$hash\n'); // not bcrypt: serve skips it, and alice can never log in
    const file = join(dir, 'warned.yaml');
    const { status, stdout, stderr } = verify('warned', { version: 1, access: { htpasswd }, upstreams: { 'docker.io': { url: 'https://registry-1.docker.io' } } });
    expect([status, stdout]).toEqual([0, `${file}: OK\n`]);
    expect(stderr).toBe('warning: htpasswd entry skipped: only bcrypt hashes (htpasswd -B) are supported ({"user":"alice"})\n');
  });

  // One problem of each kind: serve stops on the line verify prints, before the cache folder exists.
  it.each<[string, (data: string) => object]>([
    ['upstream credentials', () => ({ upstreams: { 'ghcr.io': { url: 'https://ghcr.io', credentials: { username: 'bot', passwordEnv: UNSET } } } })],
    ['the htpasswd file', () => ({ access: { htpasswd: missing('users') } })],
    ['a listener certificate', () => ({ listeners: [{ address: '127.0.0.1:0', tls: { cert: missing('server.crt'), key: local.files.key } }] })],
    ['the S3 credentials', (data) => ({ storage: { driver: 's3', bucket: 'cache', path: data, credentials: { accessKeyIdEnv: UNSET, secretAccessKey: 'secret' } } })],
    ['the Redis password', () => ({ redis: { url: 'redis://127.0.0.1:1', passwordFile: missing('redis-password') } })],
    ['the proxy CA', () => ({ proxy: { listen: '127.0.0.1:0', caCert: missing('ca.crt'), caKey: local.files.caKey } })],
  ])('makes serve stop on %s as verify reports it, before it touches the cache folder', (kind, problem) => {
    const name = `serve-${kind.replaceAll(' ', '-')}`;
    const data = join(dir, `${name}-data`);
    const config = { version: 1, listeners: [{ address: '127.0.0.1:0' }], storage: { path: data }, upstreams: { 'docker.io': { url: 'https://registry-1.docker.io' } }, ...problem(data) };
    const checked = verify(name, config);
    const served = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', join(dir, `${name}.yaml`)], { encoding: 'utf8', timeout: 20_000 });
    expect(checked.stderr).toMatch(/^config error at \S+: .+\n$/);
    expect([served.status, served.stderr]).toEqual([2, checked.stderr]);
    expect([checked.status, existsSync(data)]).toEqual([2, false]);
  });
});
