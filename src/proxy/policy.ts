/**
 * What the proxy does with a CONNECT: terminate it and serve the registry from the cache, tunnel it
 * untouched, or refuse it. A host is intercepted only when it is listed and names a configured
 * upstream; a listed host that names none (a blob CDN) is tunnelled; any other host follows
 * `proxy.otherHosts`.
 */
import { authorityName, type Authority, type HostPatterns } from './hosts.js';

/** The proxy's answer to one CONNECT. */
export type ConnectDecision =
  /** Terminate TLS with a certificate for the host; the requests inside go to this upstream. */
  | { action: 'intercept'; upstream: string }
  /** Pass the bytes through. `listed`: the operator named the host, so it may be a local address. */
  | { action: 'tunnel'; listed: boolean }
  | { action: 'refuse'; reason: string };

/** What the decision depends on. */
export interface ProxyPolicy {
  /** `proxy.hosts`; undefined: every upstream's name and hosts, and nothing else. */
  hosts: HostPatterns | undefined;
  /** What happens to a host that is not listed. */
  otherHosts: 'tunnel' | 'refuse';
  /** The upstream a registry name or host alias means (the router's lookup), if any. */
  upstreamFor(name: string): string | undefined;
}

/** Decides what to do with a CONNECT to `target`. */
export function decide(target: Authority, policy: ProxyPolicy): ConnectDecision {
  const name = authorityName(target);
  const upstream = policy.upstreamFor(name);
  const listed = policy.hosts ? policy.hosts.matches(target) : upstream !== undefined;
  if (listed && upstream !== undefined) return { action: 'intercept', upstream };
  if (listed) return { action: 'tunnel', listed: true };
  if (policy.otherHosts === 'tunnel') return { action: 'tunnel', listed: false };
  return { action: 'refuse', reason: `${name} is not a registry host this proxy serves` };
}
