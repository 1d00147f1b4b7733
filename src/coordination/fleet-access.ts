/**
 * The fleet-wide access record in Redis, under `<prefix>fleet:`:
 * - `access`: sorted set, digest → last access (ms) by any replica (`ZADD GT`: only ever later);
 * - `size`: hash, digest → size; `totals`: hash of bytes and objects, changed only by scripts that
 *   add a size with HSETNX or remove one with HDEL, so concurrent replicas never count twice;
 * - `parked`: hash, digest → "size since" (Redis ms), content the evictor forgot (no longer in
 *   `access`, `size` or the totals) but has not claimed yet: a replica's sync that brings an access
 *   of it, or stores it again, counts it again (a rescue), so what a replica used meanwhile stays;
 * - `claimed`: hash, digest → "size since", parked content the evictor took for deletion, after
 *   every replica had its chance to rescue it; cleared once deleted. What an evictor that died left
 *   in either (and in `deleting`, the set older versions kept) is counted again if still in storage;
 * - `evicted`: sorted set, digest → when its eviction last changed (Redis time, µs): parked,
 *   rescued, deleted or counted again; kept for an hour, so that every replica learns what is being
 *   deleted (it signs no URL to it) and what is gone (it drops its index rows);
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
import type { EvictionChanges, FleetRecord, FleetState } from '../lifecycle/fleet.js';
import type { Lease, LeaseLocks } from './lease.js';
import { redisScript, type RedisScript } from './scripts.js';

/** The keys every script but PAGE is given, in this order. */
const KEY_NAMES = ['access', 'size', 'totals', 'evicted', 'parked', 'claimed', 'deleting', 'complete'] as const;

/** Opens every script but PAGE: its keys by name, Redis time, and what the scripts share. */
const PRELUDE = `
local access, size, totals, log, parked, claimed, legacy, complete = unpack(KEYS)
local t = redis.call('TIME')
-- Microseconds as a string (Lua's tostring would round a number this large); milliseconds as a number.
local now = t[1] .. string.sub('00000' .. t[2], -6)
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Counts content once (a size already there is not added again) and moves its last access later.
local function count(d, bytes, at)
  if redis.call('HSETNX', size, d, bytes) == 1 then
    redis.call('HINCRBY', totals, 'bytes', bytes)
    redis.call('HINCRBY', totals, 'objects', 1)
  end
  redis.call('ZADD', access, 'GT', at, d)
end
-- The size of parked or claimed content ("size since"), or nil.
local function pendingSize(key, d)
  local v = redis.call('HGET', key, d)
  return v and string.match(v, '^%d+')
end
local function logChange(d) redis.call('ZADD', log, now, d) end`;

// ARGV: count of stored notes, (digest, size, at) each, then (digest, at) accesses, then the
// evicted-log cursor ('' for all content being evicted now instead of what changed since).
const SYNC = `${PRELUDE}
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  count(ARGV[i], ARGV[i + 1], ARGV[i + 2])
  if redis.call('HDEL', parked, ARGV[i]) == 1 then logChange(ARGV[i]) end
  i = i + 3
end
while i < #ARGV do
  local d, at = ARGV[i], ARGV[i + 1]
  -- Not moved: not in the record, or accessed later already. Parked content used is rescued.
  if redis.call('ZADD', access, 'XX', 'GT', 'CH', at, d) == 0 then
    local bytes = pendingSize(parked, d)
    if bytes then
      redis.call('HDEL', parked, d)
      count(d, bytes, at)
      logChange(d)
    end
  end
  i = i + 2
end
local cursor = ARGV[#ARGV]
local changes = {}
if cursor == '' then
  for _, key in ipairs({parked, claimed}) do
    for _, d in ipairs(redis.call('HKEYS', key)) do
      changes[#changes + 1] = d
      changes[#changes + 1] = 'evicting'
    end
  end
else
  for _, d in ipairs(redis.call('ZRANGE', log, cursor, now, 'BYSCORE')) do
    local state = 'evicted'
    if redis.call('ZSCORE', access, d) then state = 'kept'
    elseif redis.call('HEXISTS', parked, d) == 1 or redis.call('HEXISTS', claimed, d) == 1 then state = 'evicting' end
    changes[#changes + 1] = d
    changes[#changes + 1] = state
  end
end
local pending = redis.call('HLEN', parked) + redis.call('HLEN', claimed) + redis.call('SCARD', legacy)
local counted = redis.call('HMGET', totals, 'bytes', 'objects')
return {redis.call('GET', complete) or '', now, counted[1] or '0', counted[2] or '0', changes, pending}`;

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

// ARGV: seconds the evicted log keeps, then (digest, access) pairs. Parks each digest, only if its
// last access is still the one eviction chose it by.
const REMOVE = `${PRELUDE}
local removed = {}
for i = 2, #ARGV, 2 do
  local d = ARGV[i]
  local score = redis.call('ZSCORE', access, d)
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', access, d)
    local bytes = redis.call('HGET', size, d)
    if bytes then
      redis.call('HDEL', size, d)
      redis.call('HINCRBY', totals, 'bytes', -tonumber(bytes))
      redis.call('HINCRBY', totals, 'objects', -1)
    end
    redis.call('HSET', parked, d, (bytes or '0') .. ' ' .. nowMs)
    logChange(d)
    removed[#removed + 1] = d
  end
end
redis.call('ZREMRANGEBYSCORE', log, '-inf', '(' .. (tonumber(t[1]) - tonumber(ARGV[1])) .. '000000')
return removed`;

// ARGV: digests. Takes those still parked (not rescued) for deletion; a rescue can no longer reach them.
const CLAIM = `${PRELUDE}
local taken = {}
for _, d in ipairs(ARGV) do
  local bytes = pendingSize(parked, d)
  if bytes then
    redis.call('HDEL', parked, d)
    redis.call('HSET', claimed, d, bytes .. ' ' .. nowMs)
    taken[#taken + 1] = d
  end
end
return taken`;

// ARGV: digests whose content is deleted now.
const DELETED = `${PRELUDE}
for _, d in ipairs(ARGV) do
  redis.call('HDEL', claimed, d)
  logChange(d)
end`;

// ARGV: (digest, access) pairs of claimed content that was not deleted after all: counted again.
const RESTORE = `${PRELUDE}
for i = 1, #ARGV, 2 do
  local bytes = pendingSize(claimed, ARGV[i])
  if bytes then
    redis.call('HDEL', claimed, ARGV[i])
    count(ARGV[i], bytes, ARGV[i + 1])
    logChange(ARGV[i])
  end
end`;

// ARGV: milliseconds. Content parked or claimed at least that long ago (its evictor died or stalled), and older versions' set.
const STALE = `${PRELUDE}
local before = nowMs - tonumber(ARGV[1])
local stale = redis.call('SMEMBERS', legacy)
for _, key in ipairs({parked, claimed}) do
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    if tonumber(string.match(entries[i + 1], ' (%d+)$')) <= before then stale[#stale + 1] = entries[i] end
  end
end
return stale`;

// ARGV: milliseconds (as STALE), then (digest, size in storage or '') pairs. Forgets each that is
// still stale, counting it again (as accessed now) when it is still in storage; returns how many.
const RECOVER = `${PRELUDE}
local before = nowMs - tonumber(ARGV[1])
local function stale(key, d)
  local v = redis.call('HGET', key, d)
  return v and tonumber(string.match(v, ' (%d+)$')) <= before
end
local counted = 0
for i = 2, #ARGV, 2 do
  local d, bytes = ARGV[i], ARGV[i + 1]
  if stale(parked, d) or stale(claimed, d) or redis.call('SISMEMBER', legacy, d) == 1 then
    redis.call('HDEL', parked, d)
    redis.call('HDEL', claimed, d)
    redis.call('SREM', legacy, d)
    if bytes ~= '' then
      count(d, bytes, nowMs)
      counted = counted + 1
    end
    logChange(d)
  end
end
return counted`;

/** How long evictions stay in the log; a replica that did not sync for longer reconciles instead. */
const EVICTED_LOG_SECONDS = 3_600;
/** Notes kept for Redis while it is unreachable, per kind; the oldest go first beyond this. */
const QUEUE_MAX = 50_000;

type StoredNote = { size: number; accessedAt: number };

/** The record in Redis, and this replica's queue of notes for it. */
export class FleetAccess implements FleetRecord {
  private stored = new Map<string, StoredNote>();
  private accessed = new Map<string, number>();
  /** Redis time of the last sync: evictions logged from then on are this replica's to read (none yet, or after a resync: read all content being evicted). */
  private cursor: string | undefined;
  private generation: string | undefined;
  private lease: Lease | undefined;
  private readonly keys;
  private readonly fleetKeys: string[];
  private readonly scripts;

  constructor(
    private readonly redis: Redis,
    private readonly locks: LeaseLocks,
    keyPrefix: string,
  ) {
    const key = (name: string): string => `${keyPrefix}fleet:${name}`;
    this.keys = { access: key('access'), size: key('size'), totals: key('totals'), parked: key('parked'), claimed: key('claimed'), complete: key('complete') };
    this.fleetKeys = KEY_NAMES.map(key);
    const script = (name: string, lua: string): RedisScript => redisScript(redis, `regmirrorFleet${name}`, KEY_NAMES.length, lua);
    this.scripts = {
      sync: script('Sync', SYNC),
      page: redisScript(redis, 'regmirrorFleetPage', 2, PAGE),
      remove: script('Remove', REMOVE),
      claim: script('Claim', CLAIM),
      deleted: script('Deleted', DELETED),
      restore: script('Restore', RESTORE),
      stale: script('Stale', STALE),
      recover: script('Recover', RECOVER),
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
    let reply: [string, string, string, string, string[], number];
    try {
      reply = (await this.send(stored, accessed, this.cursor ?? '')) as typeof reply;
    } catch (err) {
      this.note({ stored, accessed }); // newer notes merge in; nothing is lost but beyond the queue's bound
      throw err;
    }
    const [generation, now, bytes, objects, changes, pending] = reply;
    const away = this.cursor !== undefined && Number(now) - Number(this.cursor) > EVICTED_LOG_SECONDS * 1e6;
    const resync = away || (generation !== '' && this.generation !== undefined && generation !== this.generation);
    const evictions: EvictionChanges = { evicting: [], all: this.cursor === undefined, kept: [], evicted: [] };
    for (let i = 0; i < changes.length; i += 2) evictions[changes[i + 1] as 'evicting' | 'kept' | 'evicted'].push(changes[i]!);
    if (generation !== '') this.generation = generation;
    // The log may have missed changes: the next sync reads all content being evicted instead.
    this.cursor = resync ? undefined : now;
    // Records filled before the fill time was kept have none: long settled.
    const filledAt = Number(generation.split(' ')[1]);
    const filledMsAgo = Number.isFinite(filledAt) ? Number(now) / 1000 - filledAt : undefined;
    return { usage: generation === '' ? undefined : { bytes: Number(bytes), objects: Number(objects) }, evictions, pending, resync, filledMsAgo };
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

  async rowsOf(digests: readonly string[]): Promise<{ rows: RankedRow[]; evicting: Set<string> }> {
    if (digests.length === 0) return { rows: [], evicting: new Set() };
    const { access, size, parked, claimed } = this.keys;
    const [accesses, sizes, parkedSizes, claimedSizes] = await Promise.all([
      this.redis.zmscore(access, ...digests),
      this.redis.hmget(size, ...digests),
      this.redis.hmget(parked, ...digests),
      this.redis.hmget(claimed, ...digests),
    ]);
    const rows = digests.flatMap((digest, i) => {
      const [at, size] = [accesses[i], sizes[i]];
      return at == null || size == null ? [] : [{ digest: digest as Digest, accessedAt: Number(at), size: Number(size) }];
    });
    return { rows, evicting: new Set(digests.filter((_, i) => parkedSizes[i] != null || claimedSizes[i] != null)) };
  }

  async removeUnchanged(rows: readonly RankedRow[]): Promise<RankedRow[]> {
    if (rows.length === 0) return [];
    const removed = new Set((await this.scripts.remove(...this.fleetKeys, EVICTED_LOG_SECONDS, ...rows.flatMap((r) => [r.digest, r.accessedAt]))) as string[]);
    return rows.filter((r) => removed.has(r.digest));
  }

  async claim(digests: readonly string[]): Promise<string[]> {
    return digests.length === 0 ? [] : ((await this.scripts.claim(...this.fleetKeys, ...digests)) as string[]);
  }

  async deleted(rows: readonly RankedRow[]): Promise<void> {
    if (rows.length > 0) await this.scripts.deleted(...this.fleetKeys, ...rows.map((r) => r.digest));
  }

  async restore(rows: readonly RankedRow[]): Promise<void> {
    if (rows.length > 0) await this.scripts.restore(...this.fleetKeys, ...rows.flatMap((r) => [r.digest, r.accessedAt]));
  }

  async recover(sizeOf: (digest: string) => Promise<number | undefined>, olderThanMs: number): Promise<number> {
    const stale = (await this.scripts.stale(...this.fleetKeys, olderThanMs)) as string[];
    if (stale.length === 0) return 0;
    const sizes: (string | number)[] = [];
    for (const digest of new Set(stale)) sizes.push(digest, (await sizeOf(digest)) ?? '');
    return (await this.scripts.recover(...this.fleetKeys, olderThanMs, ...sizes)) as number;
  }

  private send(stored: ReadonlyMap<string, StoredNote>, accessed: ReadonlyMap<string, number>, cursor: string): Promise<unknown> {
    const args: (string | number)[] = [stored.size];
    for (const [digest, s] of stored) args.push(digest, s.size, s.accessedAt);
    for (const [digest, at] of accessed) args.push(digest, at);
    return this.scripts.sync(...this.fleetKeys, ...args, cursor);
  }
}
