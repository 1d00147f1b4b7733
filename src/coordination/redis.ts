/**
 * The Redis connection replicas coordinate through. Redis is an optimisation, never a dependency for
 * correctness: commands fail fast while it is unreachable (no offline queue, short timeouts), and
 * every caller then goes on alone — downloads uncoordinated, tag records read from storage.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** How to reach Redis. */
export interface RedisSettings {
  /** redis://[user:password@]host:port[/db] or rediss:// for TLS. */
  url: string;
  passwordEnv?: string | undefined;
  passwordFile?: string | undefined;
}

/** Longest wait for one command before the caller goes on without Redis. */
const COMMAND_TIMEOUT_MS = 1_000;
/** How long start-up waits for the first connection (regmirror starts anyway, uncoordinated). */
const FIRST_CONNECT_MS = 3_000;

/** The password from `passwordEnv` or `passwordFile`, if either is set. */
export function resolveRedisPassword(settings: RedisSettings, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (settings.passwordEnv !== undefined) {
    const value = env[settings.passwordEnv];
    if (value === undefined) throw new Error(`config error at redis.passwordEnv: environment variable ${settings.passwordEnv} is not set`);
    return value;
  }
  if (settings.passwordFile === undefined) return undefined;
  try {
    return readFileSync(settings.passwordFile, 'utf8').trim();
  } catch (err) {
    throw new Error(`config error at redis.passwordFile: ${(err as Error).message}`);
  }
}

/** Connects (reconnecting for ever in the background) and logs when Redis goes away and comes back. */
export async function connectRedis(settings: RedisSettings, password: string | undefined, logger: Logger): Promise<Redis> {
  const redis = new Redis(settings.url, {
    ...(password === undefined ? {} : { password }),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (attempt) => Math.min(attempt * 250, 2_000),
  });
  let down = false;
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    logger.warn({ err: err.message }, 'redis unavailable: downloads are not coordinated across replicas, tag records come from storage');
  });
  redis.on('ready', () => {
    if (down) logger.info('redis available again');
    down = false;
  });
  const ready = await Promise.race([
    new Promise<boolean>((resolve) => redis.once('ready', () => resolve(true))),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), FIRST_CONNECT_MS).unref()),
  ]);
  if (!ready) logger.warn({ url: redactedUrl(settings.url) }, 'redis not reachable at start: serving uncoordinated until it is');
  return redis;
}

/** The URL without its password, for logs. */
function redactedUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
