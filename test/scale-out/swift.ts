// OpenStack Swift with its S3 API (s3api + tempauth) on loopback, for the S3 driver and replica tests.
// Debian's packages: swift, swift-proxy, swift-object, swift-container, swift-account, memcached.
// One ring device in a plain folder (mount_check off), one replica, single-process servers.
import { openSync, closeSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { exited, freePort, run, spawnTracked, tempDir } from '../support/index.js';

/** A running Swift with the S3 API; credentials are tempauth's `test:tester`. */
export interface SwiftServer {
  /** http://127.0.0.1:PORT of the proxy (S3 API, path style). */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The servers' combined output, for diagnosing a failed start. */
  logPath: string;
  /**
   * The names of the objects in a container, through Swift's own API: also those S3 does not show,
   * such as the parts of multipart uploads (in the container `<bucket>+segments`).
   */
  swiftObjects(container: string, prefix?: string): Promise<string[]>;
  stop(): Promise<void>;
}

const ACCESS_KEY = 'test:tester';
const SECRET_KEY = 'testing';
const REGION = 'us-east-1';
const SERVERS = ['account', 'container', 'object'] as const;

function serverConf(kind: (typeof SERVERS)[number], dir: string, port: number): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
swift_dir = ${dir}
devices = ${join(dir, 'devices')}
mount_check = false
log_level = WARNING

[pipeline:main]
pipeline = ${kind}-server

[app:${kind}-server]
use = egg:swift#${kind}
`;
}

/** The proxy's middleware, in order: `cache` must come before s3api; copy and slo serve CopyObject and multipart uploads. */
const MIDDLEWARE = ['catch_errors', 'gatekeeper', 'healthcheck', 'proxy-logging', 'cache', 'listing_formats', 's3api', 'tempauth', 'copy', 'slo', 'dlo'];

/** The middleware's config sections. */
function filters(memcachePort: number): string {
  const extra: Record<string, string> = {
    cache: `memcache_servers = 127.0.0.1:${memcachePort}`,
    s3api: `location = ${REGION}`,
    tempauth: `user_test_tester = ${SECRET_KEY} .admin`,
  };
  const egg = (name: string): string => (name === 'cache' ? 'memcache' : name.replace('-', '_'));
  return MIDDLEWARE.map((name) => `[filter:${name}]\nuse = egg:swift#${egg(name)}\n${extra[name] ? `${extra[name]}\n` : ''}`).join('');
}

function proxyConf(dir: string, port: number, memcachePort: number): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
swift_dir = ${dir}
log_level = WARNING

[pipeline:main]
pipeline = ${MIDDLEWARE.join(' ')} proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
# One node per ring: never stop asking it after errors (the default shuns it for 60 s after 10).
error_suppression_interval = 1
error_suppression_limit = 1000

${filters(memcachePort)}`;
}

/** Writes the account, container and object rings (one device each) in one Python process. */
async function buildRings(dir: string, ports: Record<(typeof SERVERS)[number], number>): Promise<void> {
  const script = `
import sys
from swift.common.ring import RingBuilder
for kind, port in zip(sys.argv[2::2], sys.argv[3::2]):
    builder = RingBuilder(6, 1, 1)
    builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'weight': 100})
    builder.rebalance()
    builder.get_ring().save(sys.argv[1] + '/' + kind + '.ring.gz')
`;
  await run('/usr/bin/python3', ['-c', script, dir, ...SERVERS.flatMap((kind) => [kind, String(ports[kind])])]);
}

/** Starts memcached and the four Swift servers in a temp folder; resolves once the S3 API answers. */
export async function startSwift(): Promise<SwiftServer> {
  const dir = tempDir('swift');
  await mkdir(join(dir, 'devices', 'd1'), { recursive: true });
  const [proxy, memcache, account, container, object] = await distinctPorts(5);
  const ports = { account: account!, container: container!, object: object! };
  await writeFile(join(dir, 'swift.conf'), '[swift-hash]\nswift_hash_path_suffix = regmirror-test\nswift_hash_path_prefix = regmirror\n\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n');
  await buildRings(dir, ports);
  for (const kind of SERVERS) await writeFile(join(dir, `${kind}-server.conf`), serverConf(kind, dir, ports[kind]));
  await writeFile(join(dir, 'proxy-server.conf'), proxyConf(dir, proxy!, memcache!));

  const logPath = join(dir, 'swift.log');
  const logFd = openSync(logPath, 'a');
  const children: ChildProcess[] = [
    spawnTracked('memcached', ['-l', '127.0.0.1', '-p', String(memcache), '-U', '0', '-u', 'root', '-m', '32'], { stdio: ['ignore', logFd, logFd] }),
    ...[...SERVERS, 'proxy' as const].map((kind) =>
      spawnTracked(`/usr/bin/swift-${kind}-server`, [join(dir, `${kind}-server.conf`)], { stdio: ['ignore', logFd, logFd], cwd: dir })),
  ];
  closeSync(logFd);
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited(child);
    }));
  };

  const endpoint = `http://127.0.0.1:${proxy}`;
  try {
    await waitForS3(endpoint, children, logPath);
  } catch (err) {
    await stop();
    throw err;
  }
  const swiftObjects = async (container: string, prefix = ''): Promise<string[]> => {
    const session = await login(endpoint);
    if (!session) throw new Error('swift: tempauth login failed');
    const res = await fetch(`${session.url}/${encodeURIComponent(container)}?format=json&prefix=${encodeURIComponent(prefix)}`, { headers: { 'x-auth-token': session.token } });
    if (res.status === 404) return [];
    if (res.status !== 200) throw new Error(`swift: listing ${container} answered ${res.status}`);
    return ((await res.json()) as { name: string }[]).map((object) => object.name);
  };
  return { endpoint, region: REGION, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, logPath, swiftObjects, stop };
}

/** Free ports, all different (a server that reuses a port would share it with another). */
async function distinctPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Waits until the proxy answers and the account, container and object servers take requests. */
async function waitForS3(endpoint: string, children: ChildProcess[], logPath: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const dead = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead || Date.now() > deadline) {
      const log = await readFile(logPath, 'utf8').catch(() => '');
      throw new Error(`swift did not start${dead ? ` (${dead.spawnargs.join(' ')} exited)` : ''}:\n${log.slice(-3000)}`);
    }
    const res = await fetch(`${endpoint}/healthcheck`).catch(() => undefined);
    await res?.body?.cancel();
    if (res?.status === 200 && (await backendsUp(endpoint))) return;
    await sleep(50);
  }
}

/** A tempauth login: the account's URL and a token for Swift's own API; undefined when it fails. */
async function login(endpoint: string): Promise<{ url: string; token: string } | undefined> {
  const auth = await fetch(`${endpoint}/auth/v1.0`, { headers: { 'x-auth-user': ACCESS_KEY, 'x-auth-key': SECRET_KEY } }).catch(() => undefined);
  await auth?.body?.cancel();
  const token = auth?.headers.get('x-auth-token');
  const url = auth?.headers.get('x-storage-url');
  return token && url ? { url, token } : undefined;
}

/** True when a tempauth login works and the account server answers through the proxy. */
async function backendsUp(endpoint: string): Promise<boolean> {
  const session = await login(endpoint);
  if (!session) return false;
  const { url, token } = session;
  for (const path of ['/regmirror-probe', '/regmirror-probe/object']) {
    const probe = await fetch(`${url}${path}`, { method: 'PUT', headers: { 'x-auth-token': token }, body: 'x' }).catch(() => undefined);
    await probe?.body?.cancel();
    if (!probe || probe.status >= 300) return false;
  }
  return true;
}
