/**
 * The names a CONNECT proxy deals in: the `host:port` a client asks to reach, and the configured
 * host patterns (`ghcr.io`, `*.docker.io`, `registry.example.com:8443`) it is matched against.
 */
import { isIP } from 'node:net';

/** HTTPS's port: a name without a port means it. */
export const HTTPS_PORT = 443;

/** Where a client wants to go: a lowercase host (no brackets, no trailing dot) and a port. */
export interface Authority {
  host: string;
  port: number;
}

const DNS_NAME = /^([a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$/;

/** Parses a CONNECT request target (`host:port`, `[v6]:port`); undefined when it is not one. */
export function parseAuthority(target: string): Authority | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/[\]@]+)):(\d{1,5})$/.exec(target);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65_535) return undefined;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? { host: m[1].toLowerCase(), port } : undefined;
  const host = m[2]!.toLowerCase().replace(/\.$/, '');
  return host.length <= 253 && (DNS_NAME.test(host) || isIP(host) === 4) ? { host, port } : undefined;
}

/** The authority as registry names spell it: `host` on port 443, `host:port` otherwise. */
export function authorityName({ host, port }: Authority): string {
  const name = host.includes(':') ? `[${host}]` : host;
  return port === HTTPS_PORT ? name : `${name}:${port}`;
}

/** One pattern: an exact host or a `*.` suffix (subdomains only, not the domain itself), on one port. */
interface HostPattern {
  host: string;
  wildcard: boolean;
  port: number;
}

function parsePattern(pattern: string): HostPattern {
  const lower = pattern.toLowerCase();
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(lower)!;
  const wildcard = m[1]!.startsWith('*.');
  return { host: wildcard ? m[1]!.slice(1) : m[1]!, wildcard, port: m[2] === undefined ? HTTPS_PORT : Number(m[2]) };
}

/** A set of host patterns; `matches` says whether an authority is one of them. */
export class HostPatterns {
  private readonly exact = new Set<string>();
  private readonly suffixes: { suffix: string; port: number }[] = [];

  constructor(patterns: readonly string[]) {
    for (const pattern of patterns.map(parsePattern)) {
      if (pattern.wildcard) this.suffixes.push({ suffix: pattern.host, port: pattern.port });
      else this.exact.add(`${pattern.host}:${pattern.port}`);
    }
  }

  /** True when the authority is listed: exactly, or under a `*.` pattern for its port. */
  matches({ host, port }: Authority): boolean {
    if (this.exact.has(`${host}:${port}`)) return true;
    return this.suffixes.some((s) => s.port === port && host.endsWith(s.suffix) && host.length > s.suffix.length);
  }
}
