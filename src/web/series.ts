/**
 * The last hour of traffic in fixed intervals, for the status page's chart: a ring buffer of typed
 * arrays, so recording a request is O(1) and allocates nothing.
 */

/** The series as the status API sends it: one value per interval, oldest first. */
export interface SeriesWindow {
  /** Start of the first interval, in seconds since the epoch. */
  start: number;
  intervalSeconds: number;
  /** Requests answered in each interval. */
  requests: number[];
  /** Of those, requests served from the cache (`outcome="hit"`). */
  hits: number[];
  /** Bytes sent for cache hits. */
  bytesFromCache: number[];
  /** Bytes sent for every other request. */
  bytesOther: number[];
}

/** Counts per interval over a fixed span; intervals older than the span are overwritten. */
export class RingSeries {
  private readonly intervalMs: number;
  private readonly slots: number;
  /** Which interval (ms / intervalMs) each slot holds; -1 for none yet. */
  private readonly interval: Float64Array;
  private readonly requests: Float64Array;
  private readonly hits: Float64Array;
  private readonly bytesFromCache: Float64Array;
  private readonly bytesOther: Float64Array;

  constructor(options: { intervalSeconds?: number; spanSeconds?: number } = {}) {
    const intervalSeconds = options.intervalSeconds ?? 10;
    this.intervalMs = intervalSeconds * 1000;
    this.slots = Math.ceil((options.spanSeconds ?? 3600) / intervalSeconds);
    this.interval = new Float64Array(this.slots).fill(-1);
    this.requests = new Float64Array(this.slots);
    this.hits = new Float64Array(this.slots);
    this.bytesFromCache = new Float64Array(this.slots);
    this.bytesOther = new Float64Array(this.slots);
  }

  /** Counts one finished request at time `nowMs`. */
  add(nowMs: number, hit: boolean, bytes: number): void {
    const slot = this.slotFor(Math.floor(nowMs / this.intervalMs));
    this.requests[slot]!++;
    if (hit) {
      this.hits[slot]!++;
      this.bytesFromCache[slot]! += bytes;
    } else {
      this.bytesOther[slot]! += bytes;
    }
  }

  /** The whole span up to and including the interval of `nowMs`, oldest first, zeros where idle. */
  window(nowMs: number): SeriesWindow {
    const last = Math.floor(nowMs / this.intervalMs);
    const first = last - this.slots + 1;
    const out: SeriesWindow = {
      start: (first * this.intervalMs) / 1000,
      intervalSeconds: this.intervalMs / 1000,
      requests: [],
      hits: [],
      bytesFromCache: [],
      bytesOther: [],
    };
    for (let n = first; n <= last; n++) {
      const slot = ((n % this.slots) + this.slots) % this.slots;
      const live = this.interval[slot] === n;
      out.requests.push(live ? this.requests[slot]! : 0);
      out.hits.push(live ? this.hits[slot]! : 0);
      out.bytesFromCache.push(live ? this.bytesFromCache[slot]! : 0);
      out.bytesOther.push(live ? this.bytesOther[slot]! : 0);
    }
    return out;
  }

  /** The slot of interval `n`, emptied first when it still holds an older interval. */
  private slotFor(n: number): number {
    const slot = n % this.slots;
    if (this.interval[slot] !== n) {
      this.interval[slot] = n;
      this.requests[slot] = 0;
      this.hits[slot] = 0;
      this.bytesFromCache[slot] = 0;
      this.bytesOther[slot] = 0;
    }
    return slot;
  }
}
