// A real Distribution 2.8 registry (`docker-registry serve`) on a free loopback port.
import { randomBytes } from 'node:crypto';
import { openSync, closeSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { exited, run, spawnTracked, tempDir } from './process.js';
import type { TokenService } from './token-service.js';

/** How to start a fixture registry. */
export interface RegistryOptions {
  /** Default 'none'. 'basic' needs username/password, 'token' needs tokenService. */
  auth?: 'none' | 'basic' | 'token';
  username?: string;
  password?: string;
  tokenService?: Pick<TokenService, 'realm' | 'service' | 'issuer' | 'certPath'>;
  /** Runs Distribution as a pull-through cache of remoteurl. */
  proxy?: { remoteurl: string; username?: string; password?: string };
  /** Enables DELETE of manifests and blobs. */
  delete?: boolean;
}

/** A running registry; stop() then start() keeps its port and data. */
export interface Registry {
  url: string;
  host: string;
  port: number;
  dataDir: string;
  /** The registry's stdout/stderr, access log included. */
  logPath: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Asks the kernel for a port that is free right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function authConfig(opts: RegistryOptions, dir: string): Promise<object | undefined> {
  switch (opts.auth ?? 'none') {
    case 'none':
      return undefined;
    case 'basic': {
      if (opts.username === undefined || opts.password === undefined) throw new Error('basic auth needs username and password');
      const path = join(dir, 'htpasswd');
      await writeFile(path, await run('htpasswd', ['-Bbn', opts.username, opts.password]));
      return { htpasswd: { realm: 'regmirror-test', path } };
    }
    case 'token': {
      const token = opts.tokenService;
      if (!token) throw new Error('token auth needs tokenService');
      return { token: { realm: token.realm, service: token.service, issuer: token.issuer, rootcertbundle: token.certPath } };
    }
  }
}

/** Starts a registry with its own temp folder; resolves once GET /v2/ answers. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const dir = tempDir('registry');
  const dataDir = join(dir, 'data');
  const logPath = join(dir, 'registry.log');
  const configPath = join(dir, 'config.yml');
  const secret = randomBytes(16).toString('hex');
  const config = {
    version: '0.1',
    log: { level: 'warn', accesslog: { disabled: false } },
    storage: { filesystem: { rootdirectory: dataDir }, delete: { enabled: opts.delete ?? false } },
    // The header tells our registry apart from another that took the port first.
    http: { addr: '', secret, headers: { 'X-Fixture-Registry': [secret] } },
    auth: await authConfig(opts, dir),
    proxy: opts.proxy,
  };
  let child: ChildProcess | undefined;
  let port = 0;

  /** Spawns on `port`; resolves false when the port was taken. */
  const launch = async (): Promise<boolean> => {
    config.http.addr = `127.0.0.1:${port}`;
    await writeFile(configPath, JSON.stringify(config)); // JSON is YAML
    const logStart = (await stat(logPath).catch(() => undefined))?.size ?? 0;
    const logFd = openSync(logPath, 'a');
    const proc = spawnTracked('docker-registry', ['serve', configPath], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    child = proc;
    const exit = exited(proc);
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined);
      await res?.body?.cancel();
      if (res?.headers.get('x-fixture-registry') === secret) return true;
      if (await Promise.race([exit.then(() => true), sleep(15, false)])) {
        child = undefined;
        const log = (await readFile(logPath)).subarray(logStart).toString();
        if (log.includes('address already in use')) return false;
        throw new Error(`docker-registry exited at start:\n${log.slice(-2000)}`);
      }
    }
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    if (await launch()) break;
    if (attempt === 5) throw new Error('no free port for docker-registry');
  }

  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    dataDir,
    logPath,
    async stop() {
      const proc = child;
      child = undefined;
      if (!proc) return;
      proc.kill('SIGTERM');
      await exited(proc);
    },
    async start() {
      if (child) return;
      if (!(await launch())) throw new Error(`port ${port} was taken while the registry was stopped`);
    },
  };
}
