/**
 * The servers under test, each a child process on 127.0.0.1 with its own temp folder: regmirror
 * (the built CLI), Distribution in proxy mode (the test fixture), and nginx serving files with
 * sendfile (the machine's limit). Every one is stopped and its folder removed by stop().
 */
import { closeSync, openSync } from 'node:fs';
import { copyFile, link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { exited, freePort, spawnTracked, startRegistry, tempDir } from '../test/support/index.js';
import { pidListeningOn, processName } from './memory.js';

/** The regmirror entry point; BENCH_REGMIRROR points at another build (a scratch copy) to compare. */
export const REGMIRROR_MAIN = process.env.BENCH_REGMIRROR ?? fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

/** A server under test. */
export interface BenchServer {
  url: string;
  /** The serving process itself (for nginx: the master). */
  pid: number;
  /** What the process printed (regmirror only), until `stop` removes it. */
  logPath?: string;
  /** Its cache folder (regmirror only), until `stop` removes it. */
  dataDir?: string;
  /** Rewrites its config file with `config` (as RegmirrorOptions.config) and sends SIGHUP (regmirror started with a `config`). */
  reload?(config: Record<string, unknown>): Promise<void>;
  stop(): Promise<void>;
}

/** Resolves once GET url/v2/ answers with any status, or rejects when `exit` settles first. */
async function waitUntilAnswering(url: string, exit: Promise<unknown>, what: string): Promise<boolean> {
  const deadline = Date.now() + 20_000;
  let gone = false;
  void exit.then(() => (gone = true));
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/v2/`).catch(() => undefined);
    await res?.body?.cancel();
    if (res) return true;
    if (gone) return false;
    await sleep(20);
  }
  throw new Error(`${what} did not answer at ${url} within 20 s`);
}

/** How to run regmirror. */
export interface RegmirrorOptions {
  /** Its CLI entry point (default REGMIRROR_MAIN). */
  main?: string;
  /** More options for node (default: BENCH_NODE_FLAGS, space-separated), e.g. `--cpu-prof --cpu-prof-dir=DIR`. */
  nodeFlags?: string[];
  /**
   * Config sections (e.g. `storage` for an S3 bucket, `cache`), written to a config file; the
   * command line still sets listener and folder, and the upstream unless `upstreams` is given here.
   */
  config?: Record<string, unknown>;
}

/**
 * The node options in the entry point's `#!/usr/bin/env -S node ...` line (its heap limit): the
 * bench runs regmirror the way its executable runs, not with node's defaults.
 */
async function launchFlags(main: string): Promise<string[]> {
  const first = (await readFile(main, 'utf8')).split('\n', 1)[0]!;
  const match = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first);
  return match ? match[1]!.trim().split(/\s+/) : [];
}

/** Starts regmirror with a fresh, empty cache (a fresh folder; `opts.config` as given), mirroring docker.io from `upstreamUrl`. */
export async function startRegmirror(upstreamUrl: string, opts: RegmirrorOptions = {}): Promise<BenchServer> {
  const main = opts.main ?? REGMIRROR_MAIN;
  const nodeFlags = [...(await launchFlags(main)), ...(opts.nodeFlags ?? (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean))];
  const dir = tempDir('bench-regmirror');
  const logPath = join(dir, 'regmirror.log');
  const configFile = join(dir, 'regmirror.json');
  // JSON is YAML; the command line sets listener, folder and upstream on top of it.
  if (opts.config) await writeFile(configFile, JSON.stringify({ version: 1, ...opts.config }));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const log = openSync(logPath, 'a');
    const child = spawnTracked(process.execPath, [
      ...nodeFlags, main, 'serve', ...(opts.config ? ['--config', configFile] : []),
      '--listen', `127.0.0.1:${port}`, '--data', join(dir, 'data'), ...(opts.config?.upstreams ? [] : ['--upstream', `docker.io=${upstreamUrl}`]), '--log-level', 'warn',
    ], { stdio: ['ignore', log, log] });
    closeSync(log);
    const exit = exited(child);
    if (!(await waitUntilAnswering(url, exit, 'regmirror'))) {
      const text = await readFile(logPath, 'utf8');
      if (text.includes('EADDRINUSE')) continue;
      throw new Error(`regmirror exited at start:\n${text.slice(-2000)}`);
    }
    const pid = child.pid!;
    if (processName(pid) === 'setpriv') throw new Error('measuring the wrapper, not regmirror');
    return {
      url,
      pid,
      logPath,
      dataDir: join(dir, 'data'),
      async reload(config) {
        await writeFile(configFile, JSON.stringify({ version: 1, ...config }));
        child.kill('SIGHUP');
      },
      async stop() {
        // SIGINT lets node write a --cpu-prof profile; regmirror exits 0 on it.
        child.kill('SIGINT');
        await exit;
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  throw new Error('no free port for regmirror');
}

/** Starts Distribution as a pull-through cache of `upstreamUrl`, with fresh storage. */
export async function startDistributionProxy(upstreamUrl: string): Promise<BenchServer> {
  const registry = await startRegistry({ proxy: { remoteurl: upstreamUrl } });
  return {
    url: registry.url,
    pid: await pidListeningOn(registry.port),
    async stop() {
      await registry.stop();
      await rm(dirname(registry.dataDir), { recursive: true, force: true });
    },
  };
}

/** A file nginx serves: its URL path and its content type. */
export interface StaticFile {
  urlPath: string;
  file: string;
  contentType: string;
}

/**
 * Starts nginx (two workers, sendfile, no access log) serving `files` (hard links) at their URL paths:
 * the fastest this machine sends those bytes over loopback.
 */
export async function startNginx(files: StaticFile[]): Promise<BenchServer> {
  const dir = tempDir('bench-nginx');
  const root = join(dir, 'root');
  const locations: string[] = [];
  for (const f of files) {
    const target = join(root, f.urlPath);
    await mkdir(dirname(target), { recursive: true });
    await link(f.file, target).catch(() => copyFile(f.file, target));
    locations.push(`    location = ${f.urlPath} { default_type ${f.contentType}; }`);
  }
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, [
    // Workers must read the temp folder (0700, root's) when the bench runs as root.
    process.getuid?.() === 0 ? 'user root;' : '',
    'worker_processes 2;',
    'daemon off;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    '  sendfile on;',
    '  tcp_nopush on;',
    '  keepalive_requests 1000000;',
    '  types {}',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, `${t}-temp`)};`),
    '  server {',
    `    listen 127.0.0.1:${port};`,
    `    root ${root};`,
    ...locations,
    '  }',
    '}',
  ].join('\n'));
  const child = spawnTracked('nginx', ['-e', join(dir, 'error.log'), '-p', dir, '-c', conf], { stdio: ['ignore', 'ignore', 'ignore'] });
  const exit = exited(child);
  const url = `http://127.0.0.1:${port}`;
  if (!(await waitUntilAnswering(url, exit, 'nginx'))) {
    throw new Error(`nginx exited at start:\n${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`);
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exit;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
