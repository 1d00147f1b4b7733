/**
 * The fleet-wide access record in Redis, under `<prefix>fleet:`:
 * - `access`: sorted set, digest → last access (ms) by any replica (`ZADD GT`: only ever later);
 * - `size`: hash, digest → size; `totals`: hash of bytes and objects, changed only by scripts that
 *   add a size with HSETNX or remove one with HDEL, so concurrent replicas never count twice;
 * - `evicted`: sorted set, digest → when it was evicted (Redis time, µs), kept for an hour, from
 *   which every replica drops the rows of its local index;
 * - `deleting`: set of digests forgotten by the evictor and not yet deleted from storage: counted
 *   again by the next evictor if the last one died in between;
 * - `complete`: a generation id and the Redis time (ms) it was set, once the record holds everything
 *   in storage (seeded by the evictor: a serving replica, or `regmirror gc` holding the evictor
 *   lease). While it is missing (new fleet, Redis restarted empty) nobody evicts; for one grace
 *   period after it is set, neither (the other replicas' accesses are still arriving).
 * Accesses of content the record does not hold are dropped (`ZADD XX`): a stored note carries the
 * time its client asked, so content never enters the record without a size.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Digest } from '../oci/digest.js';
import type { FlushedNotes } from '../lifecycle/access-index.js';
import type { RankedRow } from '../lifecycle/eviction.js';
import type { FleetRecord, FleetState } from '../lifecycle/fleet.js';
import type { Lease, LeaseLocks } from './lease.js';
import { redisScript, type RedisScript } from './scripts.js';

/** Redis time as microseconds, a string (Lua's tostring would round a number this large). */
const NOW_US = `local t = redis.call('TIME')
local now = t[1] .. string.sub('00000' .. t[2], -6)`;

// KEYS: access, size, totals, evicted, complete. ARGV: count of stored notes, (digest, size, at) each,
// then (digest, at) accesses, then the evicted-log cursor ('' on the first sync).
const SYNC = `
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('HINCRBY', KEYS[3], 'bytes', ARGV[i + 1])
    redis.call('HINCRBY', KEYS[3], 'objects', 1)
  end
  redis.call('ZADD', KEYS[1], 'GT', ARGV[i + 2], ARGV[i])
  i = i + 3
end
while i < #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', 'GT', ARGV[i + 1], ARGV[i])
  i = i + 2
end
${NOW_US}
local cursor = ARGV[#ARGV]
local evicted = {}
if cursor ~= '' then evicted = redis.call('ZRANGE', KEYS[4], cursor, now, 'BYSCORE') end
local totals = redis.call('HMGET', KEYS[3], 'bytes', 'objects')
return {redis.call('GET', KEYS[5]) or '', now, totals[1] or '0', totals[2] or '0', evicted}`;

// KEYS: access, size. ARGV: lowest access, count. Returns (digest, access, size) triples, oldest first.
const PAGE = `
local rows = redis.call('ZRANGE', KEYS[1], ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, ARGV[2], 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], rows[i]) or '0'
end
return out`;

// KEYS: access, size, totals, evicted, deleting. ARGV: seconds the evicted log keeps, then (digest, access) pairs.
// Removes each digest only if its last access is still the one eviction chose it by.
const REMOVE = `
${NOW_US}
local removed = {}
for i = 2, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    local size = redis.call('HGET', KEYS[2], ARGV[i])
    if size then
      redis.call('HDEL', KEYS[2], ARGV[i])
      redis.call('HINCRBY', KEYS[3], 'bytes', -tonumber(size))
      redis.call('HINCRBY', KEYS[3], 'objects', -1)
    end
    redis.call('ZADD', KEYS[4], now, ARGV[i])
    redis.call('SADD', KEYS[5], ARGV[i])
    removed[#removed + 1] = ARGV[i]
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (tonumber(t[1]) - tonumber(ARGV[1])) .. '000000')
return removed`;

/** How long evictions stay in the log; a replica that did not sync for longer reconciles instead. */
const EVICTED_LOG_SECONDS = 3_600;
/** Notes kept for Redis while it is unreachable, per kind; the oldest go first beyond this. */
const QUEUE_MAX = 50_000;

type StoredNote = { size: number; accessedAt: number };

/** The record in Redis, and this replica's queue of notes for it. */
export class FleetAccess implements FleetRecord {
  private stored = new Map<string, StoredNote>();
  private accessed = new Map<string, number>();
  /** Redis time of the last sync: evictions logged from then on are this replica's to read. */
  private cursor: string | undefined;
  private generation: string | undefined;
  private lease: Lease | undefined;
  private readonly keys;
  private readonly scripts: { sync: RedisScript; page: RedisScript; remove: RedisScript };

  constructor(
    private readonly redis: Redis,
    private readonly locks: LeaseLocks,
    keyPrefix: string,
  ) {
    const key = (name: string): string => `${keyPrefix}fleet:${name}`;
    this.keys = { access: key('access'), size: key('size'), totals: key('totals'), evicted: key('evicted'), deleting: key('deleting'), complete: key('complete') };
    this.scripts = {
      sync: redisScript(redis, 'regmirrorFleetSync', 5, SYNC),
      page: redisScript(redis, 'regmirrorFleetPage', 2, PAGE),
      remove: redisScript(redis, 'regmirrorFleetRemove', 5, REMOVE),
    };
  }

  note(notes: FlushedNotes): void {
    for (const [digest, s] of notes.stored) {
      const queued = this.stored.get(digest);
      this.stored.set(digest, { size: s.size, accessedAt: Math.max(s.accessedAt, queued?.accessedAt ?? 0) });
    }
    for (const [digest, at] of notes.accessed) this.accessed.set(digest, Math.max(at, this.accessed.get(digest) ?? 0));
    for (const queue of [this.stored, this.accessed]) {
      for (const digest of queue.keys()) {
        if (queue.size <= QUEUE_MAX) break;
        queue.delete(digest);
      }
    }
  }

  async sync(): Promise<FleetState> {
    const { stored, accessed } = this;
    this.stored = new Map();
    this.accessed = new Map();
    let reply: [string, string, string, string, string[]];
    try {
      reply = (await this.send(stored, accessed, this.cursor ?? '')) as typeof reply;
    } catch (err) {
      this.note({ stored, accessed }); // newer notes merge in; nothing is lost but beyond the queue's bound
      throw err;
    }
    const [generation, now, bytes, objects, evicted] = reply;
    const away = this.cursor !== undefined && Number(now) - Number(this.cursor) > EVICTED_LOG_SECONDS * 1e6;
    const resync = away || (generation !== '' && this.generation !== undefined && generation !== this.generation);
    if (generation !== '') this.generation = generation;
    this.cursor = now;
    // Records filled before the fill time was kept have none: long settled.
    const filledAt = Number(generation.split(' ')[1]);
    const filledMsAgo = Number.isFinite(filledAt) ? Number(now) / 1000 - filledAt : undefined;
    return { usage: generation === '' ? undefined : { bytes: Number(bytes), objects: Number(objects) }, evicted, resync, filledMsAgo };
  }

  async lead(): Promise<boolean> {
    if (this.lease?.held()) return true;
    this.lease = await this.locks.tryAcquire('evictor');
    return this.lease !== undefined;
  }

  release(): void {
    this.lease?.release();
  }

  async seed(pages: AsyncIterable<readonly RankedRow[]>): Promise<void> {
    for await (const rows of pages) {
      // One script call per page (seedFromIndex pages by 1,000 rows).
      await this.send(new Map(rows.map((r) => [r.digest, { size: r.size, accessedAt: r.accessedAt }])), new Map(), '');
    }
    const [seconds, micros] = await this.redis.time();
    await this.redis.set(this.keys.complete, `${randomUUID()} ${Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)}`);
  }

  async usage(): Promise<{ bytes: number }> {
    return { bytes: Number((await this.redis.hget(this.keys.totals, 'bytes')) ?? 0) };
  }

  async oldest(cursor: Pick<RankedRow, 'accessedAt' | 'digest'> | undefined, limit: number): Promise<RankedRow[]> {
    const after = (r: RankedRow): boolean => !cursor || r.accessedAt > cursor.accessedAt || (r.accessedAt === cursor.accessedAt && r.digest > cursor.digest);
    // Equal accesses are ordered by digest: read past those already seen at the cursor's time.
    for (let extra = 16; ; extra *= 4) {
      const asked = limit + extra;
      const flat = (await this.scripts.page(this.keys.access, this.keys.size, cursor?.accessedAt ?? '-inf', asked)) as string[];
      const rows: RankedRow[] = [];
      for (let i = 0; i < flat.length; i += 3) rows.push({ digest: flat[i] as Digest, accessedAt: Number(flat[i + 1]), size: Number(flat[i + 2]) });
      const next = rows.filter(after);
      if (next.length >= limit || rows.length < asked) return next.slice(0, limit);
    }
  }

  async rowsOf(digests: readonly string[]): Promise<RankedRow[]> {
    if (digests.length === 0) return [];
    const [accesses, sizes] = await Promise.all([this.redis.zmscore(this.keys.access, ...digests), this.redis.hmget(this.keys.size, ...digests)]);
    return digests.flatMap((digest, i) => {
      const [at, size] = [accesses[i], sizes[i]];
      return at == null || size == null ? [] : [{ digest: digest as Digest, accessedAt: Number(at), size: Number(size) }];
    });
  }

  async removeUnchanged(rows: readonly RankedRow[]): Promise<RankedRow[]> {
    if (rows.length === 0) return [];
    const { access, size, totals, evicted, deleting } = this.keys;
    const args = rows.flatMap((r) => [r.digest, r.accessedAt]);
    const removed = new Set((await this.scripts.remove(access, size, totals, evicted, deleting, EVICTED_LOG_SECONDS, ...args)) as string[]);
    return rows.filter((r) => removed.has(r.digest));
  }

  async deleted(rows: readonly RankedRow[]): Promise<void> {
    if (rows.length > 0) await this.redis.srem(this.keys.deleting, ...rows.map((r) => r.digest));
  }

  async recover(sizeOf: (digest: string) => Promise<number | undefined>): Promise<number> {
    const pending = await this.redis.smembers(this.keys.deleting);
    if (pending.length === 0) return 0;
    const now = Date.now();
    const present = new Map<string, StoredNote>();
    for (const digest of pending) {
      const size = await sizeOf(digest);
      if (size !== undefined) present.set(digest, { size, accessedAt: now });
    }
    await this.send(present, new Map(), '');
    await this.redis.srem(this.keys.deleting, ...pending);
    return present.size;
  }

  private send(stored: ReadonlyMap<string, StoredNote>, accessed: ReadonlyMap<string, number>, cursor: string): Promise<unknown> {
    const { access, size, totals, evicted, complete } = this.keys;
    const args: (string | number)[] = [stored.size];
    for (const [digest, s] of stored) args.push(digest, s.size, s.accessedAt);
    for (const [digest, at] of accessed) args.push(digest, at);
    return this.scripts.sync(access, size, totals, evicted, complete, ...args, cursor);
  }
}
