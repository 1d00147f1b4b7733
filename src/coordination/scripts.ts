/**
 * Lua scripts run by their SHA: ioredis's `defineCommand` sends EVALSHA and falls back to EVAL
 * when Redis answers NOSCRIPT (first use, or a restarted Redis), so a script's text crosses the
 * network once per connection instead of with every call (the fleet record syncs every second).
 */
import type { Redis } from 'ioredis';

/** Calls one script with its keys, then its arguments. */
export type RedisScript = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

/** Registers `lua` on `redis` under `name` (once per connection) and returns a caller. */
export function redisScript(redis: Redis, name: string, numberOfKeys: number, lua: string): RedisScript {
  const commands = redis as unknown as Record<string, RedisScript | undefined>;
  if (typeof commands[name] !== 'function') redis.defineCommand(name, { numberOfKeys, lua });
  const command = commands[name]!;
  return (...keysThenArgs) => command.apply(redis, keysThenArgs);
}
