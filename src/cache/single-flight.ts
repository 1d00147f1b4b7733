/** Coalesces concurrent calls with the same key into one; later callers share the first's result. */
export class SingleFlight<T> {
  private readonly calls = new Map<string, Promise<T>>();

  /** Runs `fn` unless a call with `key` is under way; `joined` tells the caller which it got. */
  async do(key: string, fn: () => Promise<T>): Promise<{ value: T; joined: boolean }> {
    const existing = this.calls.get(key);
    if (existing) return { value: await existing, joined: true };
    const call = fn().finally(() => this.calls.delete(key));
    this.calls.set(key, call);
    return { value: await call, joined: false };
  }
}
