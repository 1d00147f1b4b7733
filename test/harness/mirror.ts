// Starts regmirror in-process for integration tests, on free loopback ports and a temp data folder.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';
import { startMirror, type Mirror, type ReloadOutcome } from '../../src/main.js';

/** A running test mirror. */
export interface TestMirror {
  /** http(s)://127.0.0.1:PORT of the first listener. */
  url: string;
  /** 127.0.0.1:PORT of the first listener. */
  host: string;
  /** host:port of every listener, in config order. */
  hosts: string[];
  dataDir: string;
  /** 127.0.0.1:PORT of the CONNECT proxy, when one was asked for. */
  proxyHost?: string;
  mirror: Mirror;
  /** Reloads the mirror with its options changed by `changes`, kept for the next reload as edits of a file are (a SIGHUP). */
  reload(changes: Partial<TestMirrorOptions>): ReloadOutcome;
  close(): Promise<void>;
}

/** What a test sets; everything else takes the config defaults. */
export interface TestMirrorOptions {
  upstreams: ConfigInput['upstreams'];
  /** Listener upstream pins, one listener each (`undefined`: not pinned). Default: one unpinned. */
  listeners?: (string | undefined)[];
  defaultUpstream?: string;
  dataDir?: string;
  cache?: ConfigInput['cache'];
  admin?: ConfigInput['admin'];
  http?: ConfigInput['http'];
  access?: ConfigInput['access'];
  /** Allow-list of the (first) listener. */
  allow?: string[];
  /** TLS settings of the (first) listener; its url is then https://. */
  tls?: NonNullable<ConfigInput['listeners']>[number]['tls'];
  /** The `proxy` block; `listen` defaults to a free loopback port. */
  proxy?: Omit<NonNullable<ConfigInput['proxy']>, 'listen'> & { listen?: string };
  /** Receives the log as JSON lines (at debug level) instead of discarding it. */
  logStream?: NodeJS.WritableStream;
}

/** Starts regmirror with the given upstreams; logs are silent unless REGMIRROR_TEST_LOG is set. */
export async function startTestMirror(options: TestMirrorOptions): Promise<TestMirror> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'regmirror-data-'));
  const config = testConfig(options, dataDir);
  const logger = options.logStream ? pino({ level: config.log.level }, options.logStream) : pino({ level: config.log.level });
  const mirror = await startMirror(config, logger);
  const hosts = mirror.listeners.map((l) => `127.0.0.1:${l.address.port}`);
  let current = options;
  const proxyHost = mirror.proxy && `127.0.0.1:${mirror.proxy.address.port}`;
  return {
    url: `${options.tls ? 'https' : 'http'}://${hosts[0]}`,
    host: hosts[0]!,
    hosts,
    dataDir,
    ...(proxyHost ? { proxyHost } : {}),
    mirror,
    reload: (changes) => {
      current = { ...current, ...changes };
      return mirror.reload(() => testConfig(current, dataDir));
    },
    close: () => mirror.close(100),
  };
}

/** The configuration a test mirror runs with. */
function testConfig(options: TestMirrorOptions, dataDir: string): Readonly<Config> {
  return parseConfig({
    version: 1,
    listeners: (options.listeners ?? [undefined]).map((upstream, i) => ({
      address: '127.0.0.1:0',
      ...(upstream ? { upstream } : {}),
      ...(i === 0 && options.allow ? { allow: options.allow } : {}),
      ...(i === 0 && options.tls ? { tls: options.tls } : {}),
    })),
    routing: options.defaultUpstream ? { defaultUpstream: options.defaultUpstream } : {},
    storage: { path: dataDir },
    cache: options.cache ?? {},
    admin: options.admin ?? {},
    http: options.http ?? {},
    access: options.access ?? {},
    log: { level: options.logStream ? 'debug' : (process.env.REGMIRROR_TEST_LOG ?? 'silent') },
    upstreams: options.upstreams,
    ...(options.proxy ? { proxy: { listen: '127.0.0.1:0', ...options.proxy } } : {}),
  });
}
