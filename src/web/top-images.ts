/**
 * The most-pulled images in bounded memory: the Space-Saving algorithm (Metwally et al., 2005)
 * over a "stream summary", so each pull is O(1) whatever the number of distinct images.
 *
 * At most `capacity` images are counted. A new image, when the table is full, takes the place of
 * one with the smallest count `m` and starts at `m + 1` with `error = m`: its count may be too high
 * by at most `error`, never too low. Every image pulled more than total/capacity times is kept.
 */

/** One counted image. */
export interface ImageCount {
  upstream: string;
  repository: string;
  /** Pulls counted; over-counted by at most `error`. */
  pulls: number;
  error: number;
}

interface Entry extends ImageCount {
  key: string;
}

/** A bounded top-K counter of image pulls. */
export class TopImages {
  private readonly entries = new Map<string, Entry>();
  /** Entries by count: incrementing moves an entry to the next set, eviction takes from the smallest. */
  private readonly byCount = new Map<number, Set<Entry>>();
  private min = 0;

  constructor(readonly capacity = 1000) {
    if (capacity < 1) throw new RangeError('capacity must be at least 1');
  }

  /** Counts one pull of `repository` on `upstream`. */
  add(upstream: string, repository: string): void {
    const key = `${upstream} ${repository}`;
    const known = this.entries.get(key);
    if (known) {
      this.move(known, known.pulls + 1);
    } else if (this.entries.size < this.capacity) {
      const entry: Entry = { key, upstream, repository, pulls: 0, error: 0 };
      this.entries.set(key, entry);
      this.move(entry, 1);
    } else {
      // Reuse the evicted entry's object: no allocation once the table is full.
      const victim = this.byCount.get(this.min)!.values().next().value!;
      this.entries.delete(victim.key);
      victim.key = key;
      victim.upstream = upstream;
      victim.repository = repository;
      victim.error = victim.pulls;
      this.entries.set(key, victim);
      this.move(victim, victim.pulls + 1);
    }
  }

  /** The `n` most-pulled images, most first (ties by name). */
  top(n: number): ImageCount[] {
    return [...this.entries.values()]
      .sort((a, b) => b.pulls - a.pulls || a.upstream.localeCompare(b.upstream) || a.repository.localeCompare(b.repository))
      .slice(0, n)
      .map(({ upstream, repository, pulls, error }) => ({ upstream, repository, pulls, error }));
  }

  /** Images counted now (at most `capacity`). */
  get size(): number {
    return this.entries.size;
  }

  /** Moves an entry from its count's set to `to`'s, keeping `min` the smallest count held. */
  private move(entry: Entry, to: number): void {
    const from = entry.pulls;
    entry.pulls = to;
    const source = this.byCount.get(from);
    const target = this.byCount.get(to);
    if (source?.size === 1 && !target) {
      // Alone at its count (the usual case for the most-pulled image): its set moves with it.
      this.byCount.delete(from);
      this.byCount.set(to, source);
    } else {
      if (source) {
        source.delete(entry);
        if (source.size === 0) this.byCount.delete(from);
      }
      if (target) target.add(entry);
      else this.byCount.set(to, new Set([entry]));
    }
    if (to === 1) this.min = 1;
    else if (from === this.min && !this.byCount.has(from)) this.min = to;
  }
}
