/** Everything replicas share through Redis, opened together: the fleet single flight, tag records and the access record. */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { FleetAccess } from './fleet-access.js';
import { FleetFlight } from './fleet-flight.js';
import { LeaseLocks } from './lease.js';
import { connectRedis, type RedisSettings } from './redis.js';
import { RedisTagRecords } from './tags.js';

/** The `redis` settings. */
export interface CoordinationSettings extends RedisSettings {
  keyPrefix: string;
  /** Lease of a download lock; the holder renews it every third of it. */
  lockLease: number;
  /** Longest a request waits for another replica's download. */
  waitLimit: number;
}

/** Coordination of replicas over one Redis connection. */
export class Coordination {
  private constructor(
    private readonly redis: Redis,
    readonly fleet: FleetFlight,
    readonly tags: RedisTagRecords,
    /** Fleet-wide last access and sizes, for eviction on shared storage. */
    readonly access: FleetAccess,
  ) {}

  /** Connects (start-up goes on, uncoordinated, when Redis is not there yet). */
  static async open(settings: CoordinationSettings, password: string | undefined, logger: Logger): Promise<Coordination> {
    const redis = await connectRedis(settings, password, logger);
    const locks = new LeaseLocks(redis, { keyPrefix: settings.keyPrefix, leaseMs: settings.lockLease, logger });
    const fleet = new FleetFlight({ locks, waitLimitMs: settings.waitLimit, logger });
    return new Coordination(redis, fleet, new RedisTagRecords(redis, `${settings.keyPrefix}tag:`), new FleetAccess(redis, locks, settings.keyPrefix));
  }

  /** Closes the connection (locks still held expire within a lease). */
  close(): void {
    this.redis.disconnect();
  }
}
