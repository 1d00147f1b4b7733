// CONNECT targets, host patterns, and what the proxy does with each kind of host.
import { describe, expect, it } from 'vitest';
import { authorityName, HostPatterns, parseAuthority } from './hosts.js';
import { decide, type ProxyPolicy } from './policy.js';

describe('parseAuthority', () => {
  it('takes host:port and [v6]:port, lowercased, without a trailing dot', () => {
    expect(parseAuthority('GHCR.io:443')).toEqual({ host: 'ghcr.io', port: 443 });
    expect(parseAuthority('registry-1.docker.io.:443')).toEqual({ host: 'registry-1.docker.io', port: 443 });
    expect(parseAuthority('10.0.0.5:5000')).toEqual({ host: '10.0.0.5', port: 5000 });
    expect(parseAuthority('[::1]:8443')).toEqual({ host: '::1', port: 8443 });
  });

  it('refuses anything else', () => {
    for (const target of ['ghcr.io', 'ghcr.io:', 'ghcr.io:0', 'ghcr.io:70000', 'http://ghcr.io:443', 'user@ghcr.io:443', 'a b:443', '[ghcr.io]:443', '::1:443', '-bad.io:443', '/etc/passwd:1']) {
      expect(parseAuthority(target), target).toBeUndefined();
    }
  });

  it('names an authority as registries do: no port for 443', () => {
    expect(authorityName({ host: 'ghcr.io', port: 443 })).toBe('ghcr.io');
    expect(authorityName({ host: 'registry.example.com', port: 8443 })).toBe('registry.example.com:8443');
    expect(authorityName({ host: '::1', port: 5000 })).toBe('[::1]:5000');
  });
});

describe('HostPatterns', () => {
  const patterns = new HostPatterns(['ghcr.io', '*.docker.io', 'Registry.Example.com:8443']);
  const matches = (target: string): boolean => patterns.matches(parseAuthority(target)!);

  it('matches exact names on 443, wildcards for subdomains only, explicit ports', () => {
    expect(matches('ghcr.io:443')).toBe(true);
    expect(matches('registry-1.docker.io:443')).toBe(true);
    expect(matches('a.b.docker.io:443')).toBe(true);
    expect(matches('registry.example.com:8443')).toBe(true);
    expect(matches('docker.io:443')).toBe(false); // *. means subdomains
    expect(matches('evildocker.io:443')).toBe(false);
    expect(matches('ghcr.io:8443')).toBe(false);
    expect(matches('registry.example.com:443')).toBe(false);
    expect(matches('ghcr.io.evil.com:443')).toBe(false);
  });
});

describe('decide', () => {
  const upstreams: Record<string, string> = { 'ghcr.io': 'ghcr.io', 'registry-1.docker.io': 'docker.io', 'docker.io': 'docker.io', 'registry.example.com:8443': 'registry.example.com:8443' };
  const policy = (hosts: string[] | undefined, otherHosts: 'tunnel' | 'refuse' = 'refuse'): ProxyPolicy => ({
    hosts: hosts && new HostPatterns(hosts),
    otherHosts,
    upstreamFor: (name) => upstreams[name],
  });
  const at = (target: string, p: ProxyPolicy) => decide(parseAuthority(target)!, p);

  it('intercepts a listed host that names an upstream, pinned to that upstream', () => {
    const listed = policy(['ghcr.io', '*.docker.io', 'registry.example.com:8443', 'production.cloudflare.docker.com']);
    expect(at('ghcr.io:443', listed)).toEqual({ action: 'intercept', upstream: 'ghcr.io' });
    expect(at('registry-1.docker.io:443', listed)).toEqual({ action: 'intercept', upstream: 'docker.io' });
    expect(at('registry.example.com:8443', listed)).toEqual({ action: 'intercept', upstream: 'registry.example.com:8443' });
  });

  it('tunnels a listed host that names no upstream (a blob CDN), whatever otherHosts says', () => {
    expect(at('production.cloudflare.docker.com:443', policy(['production.cloudflare.docker.com']))).toEqual({ action: 'tunnel', listed: true });
    expect(at('auth.docker.io:443', policy(['*.docker.io']))).toEqual({ action: 'tunnel', listed: true });
  });

  it('refuses or tunnels the rest by otherHosts; an upstream that is not listed is not intercepted', () => {
    expect(at('example.com:443', policy(['ghcr.io']))).toEqual({ action: 'refuse', reason: 'example.com is not a registry host this proxy serves' });
    expect(at('registry-1.docker.io:443', policy(['ghcr.io']))).toMatchObject({ action: 'refuse' });
    expect(at('example.com:443', policy(['ghcr.io'], 'tunnel'))).toEqual({ action: 'tunnel', listed: false });
  });

  it('without proxy.hosts, intercepts every upstream name and host alias, and lists nothing else', () => {
    expect(at('ghcr.io:443', policy(undefined))).toEqual({ action: 'intercept', upstream: 'ghcr.io' });
    expect(at('registry-1.docker.io:443', policy(undefined))).toEqual({ action: 'intercept', upstream: 'docker.io' });
    expect(at('ghcr.io:8443', policy(undefined))).toMatchObject({ action: 'refuse' });
    expect(at('production.cloudflare.docker.com:443', policy(undefined, 'tunnel'))).toEqual({ action: 'tunnel', listed: false });
  });
});
