/**
 * Single flight across replicas: of all the replicas asked for one uncached blob, the one that takes
 * the blob's lock downloads it; the others wait for its commit and then read storage. Never a
 * deadlock, never a stuck client:
 * - the holder renews its lease while it works; if it dies, the lock expires and a waiter takes over;
 * - a waiter stops waiting and downloads on its own when its wait would pass `waitLimitMs` (judged
 *   from the holder's reported progress, or when the limit is reached);
 * - when Redis is unreachable, every replica downloads on its own (duplicates, never corruption).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { LeaseLocks, Progress } from './lease.js';

/** Permission to download a blob; `release` after its commit (or failure). */
export interface DownloadClaim {
  /** Where the download is, so that waiting replicas can judge how long it will take. */
  report(progress: () => { written: number; size?: number | undefined }): void;
  release(): void;
}

/** Decides whether this replica downloads a blob, or another replica's copy is used. */
export interface DownloadCoordinator {
  /**
   * Resolves 'stored' when another replica committed the blob meanwhile (read storage), else a claim
   * to download it now. `isStored` looks the blob up in storage.
   */
  claim(digest: string, isStored: () => Promise<boolean>): Promise<'stored' | DownloadClaim>;
}

/** A claim without a lock: the download goes on outside the fleet's single flight. */
const ALONE: DownloadClaim = { report: () => undefined, release: () => undefined };

/** Settings of the fleet single flight. */
export interface FleetFlightOptions {
  locks: LeaseLocks;
  /** Longest a request waits for another replica's download before downloading itself. */
  waitLimitMs: number;
  /** How often a waiter looks at the lock. */
  pollMs?: number;
  logger: Logger;
}

/** Fleet-wide single flight over Redis leases. */
export class FleetFlight implements DownloadCoordinator {
  constructor(private readonly options: FleetFlightOptions) {}

  async claim(digest: string, isStored: () => Promise<boolean>): Promise<'stored' | DownloadClaim> {
    const { locks, waitLimitMs, pollMs = 100, logger } = this.options;
    const name = `blob:${digest}`;
    const deadline = Date.now() + waitLimitMs;
    try {
      for (;;) {
        const lease = await locks.tryAcquire(name);
        if (lease) {
          // The last holder may have committed it between our storage look-up and now.
          const stored = await isStored().catch((err: unknown) => {
            lease.release(); // else it would be renewed, and other replicas kept waiting, until exit
            throw err;
          });
          if (!stored) return lease;
          lease.release();
          return 'stored';
        }
        const progress = await locks.progress(name);
        if (Date.now() >= deadline || finishesAfter(progress, deadline)) {
          logger.warn({ digest, progress }, 'not waiting for another replica: downloading too');
          return ALONE;
        }
        await sleep(pollMs);
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message, digest }, 'fleet lock or storage look-up failed: downloading without the lock');
      return ALONE;
    }
  }
}

/** How long a download must have run before its rate is trusted to predict its end. */
const MIN_SAMPLE_MS = 2_000;

/** True when the holder's rate so far (over at least MIN_SAMPLE_MS) says it will not finish before `deadline`. */
export function finishesAfter(progress: Progress | undefined, deadline: number, now = Date.now()): boolean {
  if (!progress || progress.size === undefined || progress.written <= 0 || progress.elapsedMs < MIN_SAMPLE_MS) return false;
  const remainingMs = ((progress.size - progress.written) * progress.elapsedMs) / progress.written;
  return now + remainingMs > deadline;
}
