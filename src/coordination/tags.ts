/**
 * Tag records in Redis, shared by replicas: a tag one replica revalidated is fresh for all of them.
 * Storage keeps its own copy (the durable one), so a Redis that loses its data loses nothing.
 */
import type { Redis } from 'ioredis';
import type { SharedTagRecords, TagRecord } from '../metadata/records.js';

/** How long an unused tag record stays in Redis (every revalidation renews it). */
const RECORD_TTL_MS = 7 * 86_400_000;

/** Tag records under a key prefix in Redis. */
export class RedisTagRecords implements SharedTagRecords {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

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
}
