// Types of format.js, for `regmirror stats`.
import type { ProxyStatus, StatusSnapshot, UpstreamStatus } from '../snapshot.js';

export function formatBytes(bytes: number): string;
export function formatCount(n: number): string;
export function formatPercent(ratio: number | null | undefined): string;
export function formatDuration(seconds: number): string;
export function formatAgo(at: number | null | undefined, now: number): string;
export function formatFailure(lastFailure: UpstreamStatus['lastFailure'], now: number): string;
export function formatCache(cache: StatusSnapshot['cache']): string;
export function formatRateLimit(rateLimit: UpstreamStatus['rateLimit']): string;
export function formatRate(v: number): string;
export function formatPerSecond(v: number | null | undefined): string;
export function formatRateWindow(seconds: number | null): string;
export function formatReasons(list: readonly { reason: string; count: number }[]): string;
export function outcomeLabel(outcome: string): string;
export function formatOpen(open: ProxyStatus['open']): string;
export function formatTunnelBytes(bytes: ProxyStatus['tunnelBytes']): string;
export function proxyHint(proxy: ProxyStatus): string | null;
export const UPSTREAM_COLUMNS: readonly {
  key: string;
  label: string;
  numeric: boolean;
  text: (u: UpstreamStatus, now: number) => string;
}[];
export function rateLimited(snapshot: StatusSnapshot): UpstreamStatus[];
