/**
 * Per-second rates of counters, from the values seen at each status document: the registry keeps
 * only totals, so a rate needs an earlier reading to subtract.
 */

/** Rates and the span they were measured over. */
export interface Rates<K extends string> {
  perSecond: Record<K, number>;
  /** Seconds between the earlier reading and now. */
  seconds: number;
}

interface Reading<K extends string> {
  at: number;
  values: Record<K, number>;
}

/** Rates over the last `windowMs`, or since `start` while no reading is that old. */
export class CounterRates<K extends string> {
  private readings: Reading<K>[];

  /** `start`: epoch ms when every counter was zero (the process's start). */
  constructor(start: number, keys: readonly K[], private readonly windowMs = 60_000) {
    this.readings = [{ at: start, values: Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number> }];
  }

  /** Records the counters' values at `now` and returns their rates, or null when no time has passed. */
  observe(now: number, values: Record<K, number>): Rates<K> | null {
    // The newest reading at least a window old is the base; older ones are never needed again.
    let base = 0;
    while (base + 1 < this.readings.length && this.readings[base + 1]!.at <= now - this.windowMs) base++;
    this.readings = this.readings.slice(base);
    const from = this.readings[0]!;
    // At most one reading a second, so a client polling hard cannot grow the list.
    if (now - this.readings.at(-1)!.at >= 1_000) this.readings.push({ at: now, values });
    const seconds = (now - from.at) / 1000;
    if (seconds <= 0) return null;
    const perSecond = Object.fromEntries(Object.keys(values).map((k) => [k, (values[k as K] - from.values[k as K]) / seconds])) as Record<K, number>;
    return { perSecond, seconds };
  }
}
