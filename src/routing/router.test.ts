import { describe, expect, it } from 'vitest';
import { RegistryError } from '../oci/errors.js';
import { RepositoryFilter } from './repository-filter.js';
import { RepositoryDenied, Router } from './router.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const router = new Router(
  [
    { name: 'docker.io', hosts: ['registry-1.docker.io', 'hub-mirror.local'], dockerHubNames: true },
    { name: 'ghcr.io', hosts: [], dockerHubNames: false },
    { name: 'myregistry.io:5000', hosts: [], dockerHubNames: false },
  ],
  'docker.io',
);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as RegistryError).code;
  }
  return 'no error';
}

describe('Router', () => {
  it('routes by ?ns= first, and applies Docker Hub naming', () => {
    expect(router.route({ path: '/v2/alpine/manifests/3.17', ns: 'docker.io' })).toEqual({
      kind: 'manifest', upstream: 'docker.io', routedBy: 'ns', repository: 'library/alpine', reference: '3.17',
    });
    expect(router.route({ path: `/v2/org/img/blobs/${DIGEST}`, ns: 'ghcr.io', listenerUpstream: 'docker.io' })).toMatchObject({
      kind: 'blob', upstream: 'ghcr.io', routedBy: 'ns', repository: 'org/img', digest: DIGEST,
    });
  });

  it('accepts a port in ns and an alias host name', () => {
    expect(router.route({ path: '/v2/team/app/tags/list', ns: 'myregistry.io:5000' })).toMatchObject({ upstream: 'myregistry.io:5000', repository: 'team/app' });
    expect(router.route({ path: '/v2/alpine/manifests/latest', ns: 'registry-1.docker.io' })).toMatchObject({ upstream: 'docker.io' });
  });

  it('strips a host prefix that names the same upstream as ns, keeps one that does not', () => {
    expect(router.route({ path: '/v2/ghcr.io/org/img/manifests/v1', ns: 'ghcr.io' })).toMatchObject({ repository: 'org/img' });
    expect(router.route({ path: '/v2/foo.bar/img/manifests/v1', ns: 'ghcr.io' })).toMatchObject({ upstream: 'ghcr.io', repository: 'foo.bar/img' });
  });

  it('routes by a registry-host path prefix in each client form', () => {
    const inV2 = router.route({ path: '/v2/ghcr.io/org/img/manifests/v1' });
    expect(inV2).toMatchObject({ upstream: 'ghcr.io', routedBy: 'path', repository: 'org/img' });
    expect(router.route({ path: '/ghcr.io/v2/org/img/manifests/v1' })).toEqual(inV2); // containerd host with a path
    expect(router.route({ path: '/ghcr.io/org/img/manifests/v1' })).toEqual(inV2); // k3s endpoint path used verbatim
    expect(router.route({ path: '/v2/docker.io/alpine/manifests/3' })).toMatchObject({ upstream: 'docker.io', repository: 'library/alpine' });
    expect(router.route({ path: '/ghcr.io/v2/' })).toEqual({ kind: 'base', upstream: 'ghcr.io', routedBy: 'path' });
  });

  it('falls back to the listener, then the Host header, then the default', () => {
    expect(router.route({ path: '/v2/org/img/manifests/v1', listenerUpstream: 'ghcr.io', host: 'hub-mirror.local' })).toMatchObject({ upstream: 'ghcr.io', routedBy: 'listener' });
    expect(router.route({ path: '/v2/org/img/manifests/v1', host: 'hub-mirror.local:5000' })).toMatchObject({ upstream: 'docker.io', routedBy: 'host' });
    expect(router.route({ path: '/v2/org/img/manifests/v1', host: 'other:5000' })).toMatchObject({ upstream: 'docker.io', routedBy: 'default' });
  });

  it('keeps a dotted first component in the name on a listener or Host pinned to an upstream (Harbor projects may have dots)', () => {
    expect(router.route({ path: '/v2/my.team/app/manifests/v1', listenerUpstream: 'myregistry.io:5000' })).toMatchObject({ upstream: 'myregistry.io:5000', routedBy: 'listener', repository: 'my.team/app' });
    expect(router.route({ path: '/v2/my.team/app/manifests/v1', host: 'hub-mirror.local' })).toMatchObject({ upstream: 'docker.io', routedBy: 'host', repository: 'my.team/app' });
    expect(router.route({ path: '/v2/ghcr.io/org/img/manifests/v1', listenerUpstream: 'myregistry.io:5000' })).toMatchObject({ upstream: 'ghcr.io', routedBy: 'path' }); // a configured upstream still routes
  });

  it('never routes to a registry that is not configured', () => {
    expect(codeOf(() => router.route({ path: '/v2/alpine/manifests/1', ns: 'evil.example.com' }))).toBe('NAME_UNKNOWN');
    expect(codeOf(() => router.route({ path: '/v2/quay.io/org/img/manifests/1' }))).toBe('NAME_UNKNOWN');
    expect(codeOf(() => router.route({ path: '/evil.example.com/v2/x/manifests/1' }))).toBe('NAME_UNKNOWN');
    const noDefault = new Router([{ name: 'ghcr.io', hosts: [], dockerHubNames: false }]);
    expect(codeOf(() => noDefault.route({ path: '/v2/org/img/manifests/1' }))).toBe('NAME_UNKNOWN');
  });

  it('parses every API path kind', () => {
    expect(router.route({ path: '/v2/' })).toEqual({ kind: 'base' });
    expect(router.route({ path: '/v2' })).toEqual({ kind: 'base' });
    expect(router.route({ path: '/v2/_catalog' })).toEqual({ kind: 'catalog' });
    expect(router.route({ path: `/v2/org/img/manifests/${DIGEST}`, ns: 'ghcr.io' })).toMatchObject({ kind: 'manifest', digest: DIGEST, reference: DIGEST });
    expect(router.route({ path: `/v2/org/img/referrers/${DIGEST}`, ns: 'ghcr.io' })).toMatchObject({ kind: 'referrers', digest: DIGEST });
    expect(router.route({ path: '/v2/org/img/blobs/uploads/', ns: 'ghcr.io' })).toMatchObject({ kind: 'upload' });
    expect(router.route({ path: '/v2/org/img/blobs/uploads/abc-123', ns: 'ghcr.io' })).toMatchObject({ kind: 'upload' });
  });

  it('rejects bad names, tags and digests with the OCI codes', () => {
    expect(codeOf(() => router.route({ path: '/v2/Org/img/manifests/1', ns: 'ghcr.io' }))).toBe('NAME_INVALID');
    expect(codeOf(() => router.route({ path: '/v2/org/../img/manifests/1', ns: 'ghcr.io' }))).toBe('NAME_INVALID');
    expect(codeOf(() => router.route({ path: '/v2/org/%2e%2e/img/manifests/1', ns: 'ghcr.io' }))).toBe('NAME_INVALID');
    expect(codeOf(() => router.route({ path: '/v2/org//img/manifests/1', ns: 'ghcr.io' }))).toBe('NAME_INVALID');
    expect(codeOf(() => router.route({ path: `/v2/${'a'.repeat(300)}/manifests/1`, ns: 'ghcr.io' }))).toBe('NAME_INVALID');
    expect(codeOf(() => router.route({ path: '/v2/org/img/manifests/-bad', ns: 'ghcr.io' }))).toBe('TAG_INVALID');
    expect(codeOf(() => router.route({ path: '/v2/org/img/blobs/sha256:abc', ns: 'ghcr.io' }))).toBe('DIGEST_INVALID');
    expect(codeOf(() => router.route({ path: `/v2/org/img/blobs/md5:${'a'.repeat(32)}`, ns: 'ghcr.io' }))).toBe('DIGEST_INVALID');
    expect(codeOf(() => router.route({ path: '/v2/org/img/blobs/latest', ns: 'ghcr.io' }))).toBe('DIGEST_INVALID');
    expect(codeOf(() => router.route({ path: '/etc/passwd' }))).toBe('NAME_UNKNOWN');
  });

  it('refuses a repository its upstream\'s filter refuses, however the request was routed, with the route it had', () => {
    const filtered = new Router(
      [
        { name: 'docker.io', hosts: ['hub-mirror.local'], dockerHubNames: true, repositories: RepositoryFilter.compile({ allow: ['library/*'], deny: ['library/evil'] }) },
        { name: 'ghcr.io', hosts: [], dockerHubNames: false, repositories: RepositoryFilter.compile({ allow: ['org/**'] }) },
      ],
      'docker.io',
    );
    const denied = (req: Parameters<Router['route']>[0]): unknown => {
      try {
        return filtered.route(req);
      } catch (err) {
        expect(err).toBeInstanceOf(RepositoryDenied);
        expect([(err as RegistryError).code, (err as RegistryError).status]).toEqual(['DENIED', 403]);
        return { denied: (err as RepositoryDenied).route };
      }
    };
    // Docker Hub naming first: `evil` is library/evil, `alpine` library/alpine.
    expect(denied({ path: '/v2/evil/manifests/1', ns: 'docker.io' })).toEqual({ denied: { kind: 'manifest', upstream: 'docker.io', routedBy: 'ns', repository: 'library/evil', reference: '1' } });
    expect(denied({ path: '/v2/alpine/manifests/1', ns: 'docker.io' })).toMatchObject({ kind: 'manifest', repository: 'library/alpine' });
    expect(denied({ path: `/v2/docker.io/library/evil/blobs/${DIGEST}` })).toMatchObject({ denied: { kind: 'blob', routedBy: 'path' } });
    expect(denied({ path: '/docker.io/v2/bitnami/redis/tags/list' })).toMatchObject({ denied: { kind: 'tags', routedBy: 'path', repository: 'bitnami/redis' } });
    expect(denied({ path: `/v2/evil/referrers/${DIGEST}`, host: 'hub-mirror.local' })).toMatchObject({ denied: { kind: 'referrers', routedBy: 'host' } });
    expect(denied({ path: '/v2/evil/blobs/uploads/', listenerUpstream: 'docker.io' })).toMatchObject({ denied: { kind: 'upload', routedBy: 'listener' } });
    expect(denied({ path: '/v2/library/evil/manifests/1' })).toMatchObject({ denied: { routedBy: 'default' } });
    expect(denied({ path: '/v2/ghcr.io/org/team/app/manifests/v1' })).toMatchObject({ kind: 'manifest', repository: 'org/team/app' });
    expect(denied({ path: '/v2/ghcr.io/other/app/manifests/v1' })).toMatchObject({ denied: { upstream: 'ghcr.io', repository: 'other/app' } });
    // Requests that name no repository are not filtered; bad input is still bad input.
    expect(denied({ path: '/v2/', ns: 'ghcr.io' })).toEqual({ kind: 'base', upstream: 'ghcr.io', routedBy: 'ns' });
    expect(codeOf(() => filtered.route({ path: '/v2/evil/manifests/-bad', ns: 'docker.io' }))).toBe('TAG_INVALID');
  });
});
