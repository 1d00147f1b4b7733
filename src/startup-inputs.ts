/**
 * What the configuration names outside itself — upstream credentials, the htpasswd file, listener
 * certificates, the S3 keys, the Redis password, the proxy's CA — read by one function for both
 * `serve` (startMirror, which stops at the first problem) and `verify` (which lists them all), so
 * that the two never read different lists.
 */
import { pino, type Logger } from 'pino';
import { resolveCredentials, type Credentials } from './config/credentials.js';
import { ConfigError } from './config/error.js';
import type { Config } from './config/schema.js';
import { HtpasswdAuth } from './http/client-auth.js';
import type { HostCertificates } from './proxy/certificates.js';
import { resolveS3Credentials, type S3Keys } from './storage/s3-credentials.js';
import { TlsError, type TlsSource } from './tls/keypair.js';
import { openListenerSource } from './tls/open.js';

/** What was read. In collecting mode an input that could not be read is undefined. */
export interface StartupInputs {
  /** Each upstream's credentials by upstream name; undefined for an anonymous upstream. */
  upstreamCredentials: ReadonlyMap<string, Credentials | undefined>;
  /** The users of `access.htpasswd`, when set. */
  auth: HtpasswdAuth | undefined;
  /** One source per listener, in listener order; undefined for plain HTTP (and for ACME when not started). */
  listenerTls: readonly (TlsSource | undefined)[];
  /** Static S3 keys; undefined when none are set (the AWS SDK's default chain applies then). */
  s3Credentials: S3Keys | undefined;
  redisPassword: string | undefined;
  /** The CA that signs the proxy's host certificates, when `proxy` is set. */
  proxyCa: HostCertificates | undefined;
  /** Stops what was opened: the htpasswd and certificate file watchers, ACME renewals, the proxy CA. */
  close(): Promise<void>;
}

/** How to read. */
export interface ReadOptions {
  /**
   * Collecting mode: each ConfigError's message is passed here and reading goes on. Without it the
   * first ConfigError throws, after what was already opened is closed. Other errors always throw.
   */
  onProblem?: ((message: string) => void) | undefined;
  /** Start the ACME listeners' sources, which may order a certificate from the CA; false leaves them undefined. */
  startAcme: boolean;
}

/**
 * Reads everything the configuration names outside itself; nothing is bound or stored, nor is Redis
 * or the bucket asked. In order: upstream credentials, the htpasswd file, listener certificate files,
 * the S3 keys, the Redis password, the proxy CA, and last the ACME listeners, so that a certificate
 * is ordered only once every local file could be read.
 */
export async function readStartupInputs(config: Readonly<Config>, logger: Logger, options: ReadOptions): Promise<StartupInputs> {
  const opened: { close(): unknown }[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(opened.map((input) => input.close()));
  };
  const read = async <T>(input: () => T | Promise<T>): Promise<T | undefined> => {
    try {
      return await input();
    } catch (err) {
      if (err instanceof ConfigError && options.onProblem) {
        options.onProblem(err.message);
        return undefined;
      }
      await close();
      throw err;
    }
  };
  const open = async <T extends { close(): unknown }>(input: () => T | Promise<T>): Promise<T | undefined> => {
    const value = await read(input);
    if (value !== undefined) opened.push(value);
    return value;
  };

  const upstreamCredentials = new Map<string, Credentials | undefined>();
  for (const [name, upstream] of Object.entries(config.upstreams)) upstreamCredentials.set(name, await read(() => resolveCredentials(name, upstream.credentials)));
  const { htpasswd, realm } = config.access;
  const auth = htpasswd === undefined ? undefined : await open(() => openHtpasswd(htpasswd, realm, logger));
  const listenerTls: (TlsSource | undefined)[] = config.listeners.map(() => undefined);
  const openListener = async (i: number, tls: NonNullable<Config['listeners'][number]['tls']>): Promise<void> => {
    listenerTls[i] = await open(() => openListenerSource(i, tls, logger).catch(tlsConfigError));
  };
  for (const [i, { tls }] of config.listeners.entries()) if (tls !== undefined && tls.acme === undefined) await openListener(i, tls);
  const s3Credentials = await read(() => readS3Credentials(config.storage));
  const { redis, proxy } = config;
  const redisPassword = redis && (await read(() => readRedisPassword(redis)));
  // proxy/ is loaded only when configured: the CA's signing check pulls in an X.509 library (~15 MB of RSS).
  const proxyCa = proxy && (await open(async () => (await import('./proxy/open.js')).openProxyCa(proxy, logger).catch(tlsConfigError)));
  if (options.startAcme) {
    for (const [i, { tls }] of config.listeners.entries()) if (tls?.acme !== undefined) await openListener(i, tls);
  }
  return { upstreamCredentials, auth, listenerTls, s3Credentials, redisPassword, proxyCa, close };
}

/**
 * `verify`'s check of what `serve` reads at start besides the file, done without starting anything
 * (no port bound, no storage opened, neither Redis nor an ACME CA asked). `problems`: one `config
 * error at` line each, as the schema's; `warnings`: what would be logged at start without stopping it
 * (a certificate about to expire, htpasswd entries skipped).
 */
export async function startupProblems(config: Readonly<Config>): Promise<{ problems: string[]; warnings: string[] }> {
  const warnings: string[] = [];
  const logger = pino({ level: 'warn', base: undefined, timestamp: false }, {
    write(line: string) {
      const { msg, level: _level, ...fields } = JSON.parse(line) as Record<string, unknown>;
      warnings.push(Object.keys(fields).length > 0 ? `${String(msg)} (${JSON.stringify(fields)})` : String(msg));
    },
  });
  const problems: string[] = [];
  const inputs = await readStartupInputs(config, logger, { onProblem: (message) => problems.push(message), startAcme: false });
  await inputs.close();
  return { problems, warnings };
}

/**
 * The S3 keys of `storage.credentials`: undefined unless the driver is s3 and keys are set. A
 * variable or file that cannot be read is a ConfigError.
 */
export function readS3Credentials(settings: Config['storage']): S3Keys | undefined {
  if (settings.driver !== 's3') return undefined;
  return asConfigError(() => resolveS3Credentials(settings.credentials));
}

/** The Redis password from `redis.passwordEnv` or `redis.passwordFile`; one that cannot be read is a ConfigError. */
export async function readRedisPassword(settings: NonNullable<Config['redis']>): Promise<string | undefined> {
  // Loaded only for a fleet that configures Redis (ioredis, ~25 MB of RSS).
  const { resolveRedisPassword } = await import('./coordination/redis.js');
  return asConfigError(() => resolveRedisPassword(settings));
}

/** The users of the htpasswd file; a file that cannot be read is a ConfigError naming the key. */
function openHtpasswd(path: string, realm: string, logger: Logger): HtpasswdAuth {
  try {
    return new HtpasswdAuth(path, realm, logger);
  } catch (err) {
    throw new ConfigError(`config error at access.htpasswd: ${(err as Error).message}`);
  }
}

/** A certificate or key that cannot be used is a configuration error naming the key and the file. */
function tlsConfigError(err: unknown): never {
  throw err instanceof TlsError ? new ConfigError(`config error at ${err.message}`) : err;
}

/** Runs `resolve`, turning its error into a ConfigError (a setting that cannot be used). */
function asConfigError<T>(resolve: () => T): T {
  try {
    return resolve();
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}
