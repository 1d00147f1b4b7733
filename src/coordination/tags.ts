/**
 * Tag records in Redis, shared by replicas: a tag one replica revalidated is fresh for all of them.
 * Storage keeps its own copy (the durable one), so a Redis that loses its data loses nothing.
 */
import type { Redis } from 'ioredis';
import type { SharedTagRecords, TagRecord } from '../metadata/records.js';
import { redisScript, type RedisScript } from './scripts.js';

/** How long an unused tag record stays in Redis (every revalidation renews it). */
const RECORD_TTL_MS = 7 * 86_400_000;

/**
 * KEYS[1] the record; ARGV: the confirmed digest, the new record, its TTL. Writes it unless the
 * record there names another digest (a damaged or missing one is replaced); 1 when written.
 */
const CONFIRM = `
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, current = pcall(cjson.decode, raw)
  if ok and type(current) == 'table' and current.digest ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;

/** Tag records under a key prefix in Redis. */
export class RedisTagRecords implements SharedTagRecords {
  private readonly confirmScript: RedisScript;

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {
    this.confirmScript = redisScript(redis, 'regmirrorConfirmTag', 1, CONFIRM);
  }

  async get(key: string): Promise<TagRecord | null> {
    const raw = await this.redis.get(this.keyPrefix + key);
    if (raw === null) return null;
    try {
      return JSON.parse(raw) as TagRecord;
    } catch {
      return null; // damaged: as good as none, storage has the record
    }
  }

  async put(key: string, record: TagRecord): Promise<void> {
    await this.redis.set(this.keyPrefix + key, JSON.stringify(record), 'PX', RECORD_TTL_MS);
  }

  async confirm(key: string, record: TagRecord): Promise<boolean> {
    return (await this.confirmScript(this.keyPrefix + key, record.digest, JSON.stringify(record), RECORD_TTL_MS)) === 1;
  }
}
