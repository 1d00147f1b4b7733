import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { basicToken, ClientConfigError, describeMirror, registryServer, type MirrorLayout } from './mirror.js';

const layout = (listeners: MirrorLayout['listeners'], defaultUpstream?: string): MirrorLayout => ({
  listeners,
  upstreams: { 'docker.io': { dockerHubNames: true }, 'ghcr.io': {}, 'registry.example.com:8443': { dockerHubNames: false } },
  routing: { defaultUpstream },
});


describe('describeMirror', () => {
  it('takes the validated configuration as it is', () => {
    const config = parseConfig({ version: 1, listeners: [{ address: '127.0.0.1:5000' }], upstreams: { 'docker.io': { url: 'https://registry-1.docker.io' } } });
    const mirror = describeMirror(config, { hostname: 'unused' });
    expect(mirror).toEqual({
      url: 'http://127.0.0.1:5000',
      host: '127.0.0.1:5000',
      scheme: 'http',
      registries: [{ name: 'docker.io', dockerHub: true }],
      listeners: [{ url: 'http://127.0.0.1:5000', host: '127.0.0.1:5000', scheme: 'http' }],
      loginRequired: false,
    });
  });

  it('says clients must log in when access.htpasswd is set', () => {
    expect(describeMirror({ ...layout([{ address: '0.0.0.0:5000' }]), access: { htpasswd: '/etc/regmirror/users' } }, { hostname: 'h' }).loginRequired).toBe(true);
  });

  it('names listeners on every interface by the host name, and keeps pins and the default', () => {
    const mirror = describeMirror(layout([{ address: '0.0.0.0:5001', upstream: 'ghcr.io' }, { address: ':5000' }, { address: '[::]:5002' }], 'docker.io'), { hostname: 'cache-1' });
    expect(mirror.url).toBe('http://cache-1:5000'); // the first listener that is not pinned
    expect(mirror.listeners.map((l) => [l.host, l.upstream])).toEqual([['cache-1:5001', 'ghcr.io'], ['cache-1:5000', undefined], ['cache-1:5002', undefined]]);
    expect(mirror.defaultUpstream).toBe('docker.io');
    expect(mirror.registries).toEqual([
      { name: 'docker.io', dockerHub: true },
      { name: 'ghcr.io', dockerHub: false },
      { name: 'registry.example.com:8443', dockerHub: false },
    ]);
  });

  it('keeps an IPv6 listener address in brackets', () => {
    expect(describeMirror(layout([{ address: '[::1]:5000' }]), { hostname: 'h' }).url).toBe('http://[::1]:5000');
  });

  it('uses the first listener when every listener is pinned', () => {
    expect(describeMirror(layout([{ address: '10.0.0.5:5001', upstream: 'ghcr.io' }]), { hostname: 'h' }).host).toBe('10.0.0.5:5001');
  });

  it('takes --url for scheme and host; pinned listeners keep their ports on that host, and their own scheme unless the URL changes the first listener\'s', () => {
    const listeners = [{ address: '0.0.0.0:5001', upstream: 'ghcr.io' }, { address: '0.0.0.0:5002', upstream: 'docker.io', tls: {} }];
    // https in the URL for a plain first listener: TLS is terminated in front, for every listener.
    const fronted = describeMirror(layout([{ address: '0.0.0.0:5000' }, ...listeners]), { url: 'https://cache.example.com', caFile: '/etc/regmirror/ca.pem', hostname: 'ignored' });
    expect([fronted.url, fronted.host, fronted.scheme, fronted.caFile]).toEqual(['https://cache.example.com', 'cache.example.com', 'https', '/etc/regmirror/ca.pem']);
    expect(fronted.listeners.slice(1)).toEqual([
      { url: 'https://cache.example.com:5001', host: 'cache.example.com:5001', scheme: 'https', caFile: '/etc/regmirror/ca.pem', upstream: 'ghcr.io' },
      { url: 'https://cache.example.com:5002', host: 'cache.example.com:5002', scheme: 'https', caFile: '/etc/regmirror/ca.pem', upstream: 'docker.io' },
    ]);
    // The URL keeps the first listener's own scheme (it only names the host): each keeps its own.
    const named = describeMirror(layout([{ address: '0.0.0.0:5000', tls: {} }, ...listeners]), { url: 'https://cache.example.com:5000', hostname: 'ignored' });
    expect(named.listeners.map((l) => l.url)).toEqual(['https://cache.example.com:5000', 'http://cache.example.com:5001', 'https://cache.example.com:5002']);
  });

  it('tells clients each listener\'s own scheme and CA: plain pinned listeners beside an https one', () => {
    const mixed = layout([{ address: '0.0.0.0:5000', tls: { ca: '/etc/regmirror/tls/ca.crt' } }, { address: '0.0.0.0:5001', upstream: 'ghcr.io' }, { address: '0.0.0.0:5002', upstream: 'docker.io', tls: { ca: '/etc/regmirror/hub-ca.crt' } }]);
    const mirror = describeMirror(mixed, { hostname: 'm' });
    expect([mirror.url, mirror.caFile]).toEqual(['https://m:5000', '/etc/regmirror/tls/ca.crt']);
    expect(mirror.listeners.map((l) => [l.url, l.caFile])).toEqual([['https://m:5000', '/etc/regmirror/tls/ca.crt'], ['http://m:5001', undefined], ['https://m:5002', '/etc/regmirror/hub-ca.crt']]);
    // --ca stands for every https listener's CA, and is accepted for a pinned https listener behind a plain URL.
    expect(describeMirror(mixed, { hostname: 'm', caFile: '/ca.pem' }).listeners.map((l) => l.caFile)).toEqual(['/ca.pem', undefined, '/ca.pem']);
    const plainFirst = layout([{ address: '0.0.0.0:5000' }, { address: '0.0.0.0:5002', upstream: 'docker.io', tls: {} }]);
    expect(describeMirror(plainFirst, { hostname: 'm', caFile: '/ca.pem' }).listeners.map((l) => l.caFile)).toEqual([undefined, '/ca.pem']);
    // A client given the URL alone (containerd, buildkit, k3s) would put that CA nowhere.
    expect(() => describeMirror(plainFirst, { hostname: 'm', caFile: '/ca.pem', urlOnly: true })).toThrow('--ca needs an https mirror URL (--url https://...)');
  });

  it('tells clients https and the CA of a listener with tls, unless --url says otherwise', () => {
    const tls = layout([{ address: '0.0.0.0:5000', tls: { ca: '/etc/regmirror/tls/ca.crt' } }]);
    expect(describeMirror(tls, { hostname: 'm' })).toMatchObject({ url: 'https://m:5000', scheme: 'https', caFile: '/etc/regmirror/tls/ca.crt' });
    expect(describeMirror(tls, { hostname: 'm', caFile: '/other.pem' }).caFile).toBe('/other.pem');
    expect(describeMirror(tls, { hostname: 'm', url: 'http://m:5000' })).not.toHaveProperty('caFile');
    const acme = layout([{ address: '0.0.0.0:443', tls: {} }]);
    expect(describeMirror(acme, { hostname: 'mirror.example.com' })).toEqual(expect.not.objectContaining({ caFile: expect.anything() }));
    expect(describeMirror(acme, { hostname: 'mirror.example.com' }).url).toBe('https://mirror.example.com:443');
  });

  it('refuses a --url clients cannot use, a CA without https, and a listener on port 0', () => {
    const l = layout([{ address: '0.0.0.0:5000' }]);
    expect(() => describeMirror(l, { url: 'mirror:5000', hostname: 'h' })).toThrow(ClientConfigError);
    expect(() => describeMirror(l, { url: 'mirror:5000', hostname: 'h' })).toThrow(/must be http or https/);
    expect(() => describeMirror(l, { url: 'http://mirror:5000/v2', hostname: 'h' })).toThrow(/only scheme, host and port/);
    expect(() => describeMirror(l, { url: 'not a url', hostname: 'h' })).toThrow(/is not a URL/);
    expect(() => describeMirror(l, { caFile: '/ca.pem', hostname: 'h' })).toThrow(/--ca needs an https/);
    expect(() => describeMirror(layout([{ address: '127.0.0.1:0' }]), { hostname: 'h' })).toThrow(/no fixed port: pass --url/);
  });

  it('encodes credentials as Basic does: base64 of user:password, colons after the first kept', () => {
    expect(Buffer.from(basicToken({ username: 'alice', password: 'a:b é' }), 'base64').toString('utf8')).toBe('alice:a:b é');
  });

  it('names the public server of each registry', () => {
    expect(registryServer({ name: 'docker.io', dockerHub: true })).toBe('https://registry-1.docker.io');
    expect(registryServer({ name: 'registry.example.com:8443', dockerHub: false })).toBe('https://registry.example.com:8443');
  });
});
