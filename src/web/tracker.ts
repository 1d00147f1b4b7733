/**
 * What the status page knows beyond the metrics registry: the last hour in 10-second intervals,
 * the most-pulled images, each upstream's last success and failure, and earlier readings of the
 * proxy's counters for its rates. Fed by every finished request and every upstream answer; totals
 * are not counted here but read from the metrics, so the page and /metrics never disagree (see
 * snapshot.ts).
 */
import { CONNECT_OUTCOMES, type RequestKind } from '../metrics/metrics.js';
import { CounterRates } from './rates.js';
import { RingSeries, type SeriesWindow } from './series.js';
import { TopImages, type ImageCount } from './top-images.js';


/** The fields of a finished request the tracker reads (the server's RequestRecord has them). */
export interface TrackedRequest {
  method: string | undefined;
  status: number;
  kind: RequestKind;
  upstream: string | undefined;
  repository: string | undefined;
  outcome: string | undefined;
  bytes: number;
}

/** Callbacks of an upstream client, as `Metrics.upstreamObserver` makes them. */
export interface UpstreamObserver {
  onResponse: (info: { method: string; status: number; durationMs: number; headers: Record<string, string | string[] | undefined> }) => void;
  onFailure: (failure: string) => void;
}

/** An upstream's health: `down` when its latest answer was a failure, `degraded` after a recent one. */
export type Health = 'ok' | 'degraded' | 'down' | 'unknown';

/** What the tracker knows of one upstream's answers. */
export interface UpstreamEvents {
  health: Health;
  /** Epoch ms of the last usable answer, or null. */
  lastSuccessAt: number | null;
  /** The last failure: a failure kind (`unreachable`, `timeout`, `tls`, `unavailable`, `auth`...), or the status (`503`, `429`…), with its time. */
  lastFailure: { at: number; failure: string } | null;
}

/** Options of a tracker. */
export interface StatusTrackerOptions {
  /** The configured upstream names, in config order. */
  upstreams: string[];
  /** How long a failure keeps an upstream `degraded` after it answers again. Default 5 minutes. */
  degradedForMs?: number;
  /** Distinct images counted for the top list. Default 1000. */
  imageCapacity?: number;
  /** Epoch ms; default: a monotonic clock anchored at the process's start. */
  now?: () => number;
}

interface UpstreamState {
  lastSuccessAt: number;
  lastFailureAt: number;
  lastFailure: string;
}

const monotonicNow = (): number => performance.timeOrigin + performance.now();

/** Tracks requests and upstream answers for the status page. Per-event work is O(1). */
export class StatusTracker {
  readonly startedAt: number;
  private names: readonly string[] = [];
  private readonly series = new RingSeries();
  private readonly images: TopImages;
  private readonly states = new Map<string, UpstreamState>();
  private readonly degradedForMs: number;
  readonly now: () => number;
  /** The CONNECT proxy's rates, from the counts each status document read. */
  readonly proxyRates: CounterRates<(typeof CONNECT_OUTCOMES)[number]>;

  constructor(options: StatusTrackerOptions) {
    this.now = options.now ?? monotonicNow;
    this.startedAt = this.now();
    this.degradedForMs = options.degradedForMs ?? 300_000;
    this.images = new TopImages(options.imageCapacity);
    this.proxyRates = new CounterRates(this.startedAt, CONNECT_OUTCOMES);
    this.setUpstreams(options.upstreams, []);
  }

  /** The configured upstream names, in configuration order. */
  get upstreamNames(): readonly string[] {
    return this.names;
  }

  /** The upstreams after a reload; those in `fresh` (a new URL, say) start again with no answers seen. */
  setUpstreams(names: readonly string[], fresh: readonly string[]): void {
    this.names = [...names];
    for (const name of this.states.keys()) if (!names.includes(name) || fresh.includes(name)) this.states.delete(name);
    for (const name of names) if (!this.states.has(name)) this.states.set(name, { lastSuccessAt: 0, lastFailureAt: 0, lastFailure: '' });
  }

  /** Accounts for one finished request; pulls are manifest GETs answered 2xx, as Docker Hub counts them. */
  record(r: TrackedRequest): void {
    this.series.add(this.now(), r.outcome === 'hit', r.bytes);
    if (r.kind === 'manifest' && r.method === 'GET' && r.status < 300 && r.upstream !== undefined && r.repository !== undefined) {
      this.images.add(r.upstream, r.repository);
    }
  }

  /** Wraps an upstream client's observer so its answers also reach the tracker. */
  upstreamObserver(upstream: string, inner: UpstreamObserver): UpstreamObserver {
    return {
      onResponse: (info) => {
        inner.onResponse(info);
        if (info.status >= 500 || info.status === 429) this.upstreamFailed(upstream, String(info.status));
        else this.upstreamAnswered(upstream);
      },
      onFailure: (failure) => {
        inner.onFailure(failure);
        this.upstreamFailed(upstream, failure);
      },
    };
  }

  /** An upstream gave a usable answer. */
  upstreamAnswered(upstream: string): void {
    const state = this.states.get(upstream);
    if (state) state.lastSuccessAt = this.now();
  }

  /** An upstream gave no usable answer. */
  upstreamFailed(upstream: string, failure: string): void {
    const state = this.states.get(upstream);
    if (!state) return;
    state.lastFailureAt = this.now();
    state.lastFailure = failure;
  }

  /** An upstream's answers so far, and the health they add up to at `now`. */
  upstream(name: string, now = this.now()): UpstreamEvents {
    const s = this.states.get(name);
    if (!s || (s.lastSuccessAt === 0 && s.lastFailureAt === 0)) return { health: 'unknown', lastSuccessAt: null, lastFailure: null };
    let health: Health = 'ok';
    if (s.lastFailureAt > s.lastSuccessAt) health = 'down';
    else if (s.lastFailureAt > 0 && now - s.lastFailureAt < this.degradedForMs) health = 'degraded';
    return {
      health,
      lastSuccessAt: s.lastSuccessAt ? Math.round(s.lastSuccessAt) : null,
      lastFailure: s.lastFailureAt ? { at: Math.round(s.lastFailureAt), failure: s.lastFailure } : null,
    };
  }

  /** Requests and bytes per interval over the last hour. */
  window(now = this.now()): SeriesWindow {
    return this.series.window(now);
  }

  /** The `n` most-pulled images. */
  topImages(n: number): ImageCount[] {
    return this.images.top(n);
  }
}
