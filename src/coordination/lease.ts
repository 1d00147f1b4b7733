/**
 * Locks with a lease in Redis: `SET key token NX PX lease` takes one; the holder renews it every third
 * of the lease (with a script that checks the token) and deletes it with a compare-and-delete script.
 * A holder that dies stops renewing, so its lock expires within one lease and another may take it.
 * A holder that stalls longer than the lease may lose the lock to another: the lock only avoids
 * duplicate work, it never guards correctness.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisScript, type RedisScript } from './scripts.js';

/** What the holder last reported of its work: bytes done, of `size` when known, in `elapsedMs`. */
export interface Progress {
  written: number;
  size?: number | undefined;
  elapsedMs: number;
}

/** A lock this process holds. */
export interface Lease {
  /** Where the work is (from now on): sent to Redis with each renewal, for others deciding whether to wait. */
  report(progress: () => Omit<Progress, 'elapsedMs'>): void;
  /** Gives the lock up (idempotent; a lock lost meanwhile is left alone). */
  release(): void;
  /** False once released, or once a renewal found the lock taken by another (its lease expired). */
  held(): boolean;
}

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2]) end
  return 1
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2]) end
return 0`;

/** Named locks with leases, under a key prefix. */
export class LeaseLocks {
  private readonly renewScript: RedisScript;
  private readonly releaseScript: RedisScript;

  constructor(
    private readonly redis: Redis,
    private readonly options: { keyPrefix: string; leaseMs: number; logger: Logger },
  ) {
    this.renewScript = redisScript(redis, 'regmirrorLeaseRenew', 2, RENEW);
    this.releaseScript = redisScript(redis, 'regmirrorLeaseRelease', 2, RELEASE);
  }

  /** Takes the lock if nobody holds it; undefined when someone does. Rejects when Redis is unreachable. */
  async tryAcquire(name: string): Promise<Lease | undefined> {
    const token = randomUUID();
    const taken = await this.redis.set(this.lockKey(name), token, 'PX', this.options.leaseMs, 'NX');
    return taken === 'OK' ? this.hold(name, token) : undefined;
  }

  /** The holder's last report, or undefined when there is none (no holder, or none reported yet). */
  async progress(name: string): Promise<Progress | undefined> {
    const raw = await this.redis.get(this.progressKey(name));
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw) as Progress;
    } catch {
      return undefined;
    }
  }

  private hold(name: string, token: string): Lease {
    const { options } = this;
    const keys = [this.lockKey(name), this.progressKey(name)] as const;
    let startedAt = Date.now();
    let reporter: (() => Omit<Progress, 'elapsedMs'>) | undefined;
    let held = true;
    const renew = async (): Promise<void> => {
      const progress = reporter ? JSON.stringify({ ...reporter(), elapsedMs: Date.now() - startedAt }) : '';
      try {
        const kept = await this.renewScript(...keys, token, options.leaseMs, progress);
        if (kept === 0 && held) {
          held = false;
          clearInterval(timer);
          options.logger.warn({ lock: name }, 'lock lost (lease expired): another replica may do the same work');
        }
      } catch {
        // Redis unreachable: the work goes on; the lease may expire and be taken, which only duplicates work.
      }
    };
    const timer = setInterval(() => void renew(), Math.max(50, Math.floor(options.leaseMs / 3)));
    timer.unref();
    return {
      report: (progress) => {
        reporter = progress;
        startedAt = Date.now(); // the work's own clock: waiting for upstream's answer is not progress
      },
      release: () => {
        if (!held) return;
        held = false;
        clearInterval(timer);
        this.releaseScript(...keys, token).catch(() => undefined); // else it expires within a lease
      },
      held: () => held,
    };
  }

  private lockKey(name: string): string {
    return `${this.options.keyPrefix}lock:${name}`;
  }

  private progressKey(name: string): string {
    return `${this.options.keyPrefix}progress:${name}`;
  }
}
