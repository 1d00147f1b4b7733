// Property tests: whatever path, query and host arrive, the router either answers a RegistryError
// or a route whose names are valid and whose upstream is configured: never anything else.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { isValidRepositoryName, isValidTag } from '../oci/reference.js';
import { Router } from './router.js';

const CONFIGURED = ['docker.io', 'ghcr.io', 'registry.local:5000'];
const router = new Router(CONFIGURED.map((name) => ({ name, hosts: [], dockerHubNames: name === 'docker.io' })), 'docker.io');

const segment = fc.oneof(
  fc.constantFrom('v2', 'manifests', 'blobs', 'tags', 'list', 'referrers', 'uploads', '..', '.', '', '%2e%2e', '%2F', 'ghcr.io', 'evil.com', 'library', 'alpine', `sha256:${'a'.repeat(64)}`, 'sha256:xyz', 'latest', '_catalog'),
  fc.string({ maxLength: 20 }),
);
const path = fc.array(segment, { maxLength: 8 }).map((parts) => `/${parts.join('/')}`);
const ns = fc.option(fc.oneof(fc.constantFrom(...CONFIGURED, 'evil.com', '127.0.0.1:22', ''), fc.string({ maxLength: 30 })), { nil: undefined });

describe('router properties', () => {
  it('only ever routes to configured upstreams with valid names, or throws a RegistryError', () => {
    fc.assert(
      fc.property(path, ns, fc.option(fc.string({ maxLength: 30 }), { nil: undefined }), (p, n, host) => {
        let route;
        try {
          route = router.route({ path: p, ns: n, host });
        } catch (err) {
          expect(err).toBeInstanceOf(RegistryError);
          return;
        }
        if ('upstream' in route && route.upstream !== undefined) expect(CONFIGURED).toContain(route.upstream);
        if ('repository' in route) {
          expect(isValidRepositoryName(route.repository)).toBe(true);
          expect(route.repository.split('/')).not.toContain('..');
        }
        if (route.kind === 'blob' || route.kind === 'referrers') expect(parseDigest(route.digest)).toBe(route.digest);
        if (route.kind === 'manifest' && route.digest === undefined) expect(isValidTag(route.reference)).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });

  it('accepts every valid name, tag and digest it is given', () => {
    const component = fc.stringMatching(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, { maxLength: 30 });
    const name = fc.array(component, { minLength: 1, maxLength: 4 }).map((c) => c.join('/')).filter((n) => n.length <= 200 && !n.split('/')[0]!.includes('.'));
    const tag = fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/);
    fc.assert(
      fc.property(name, tag, (n, t) => {
        const route = router.route({ path: `/v2/${n}/manifests/${t}`, ns: 'ghcr.io' });
        expect(route).toMatchObject({ kind: 'manifest', upstream: 'ghcr.io', repository: n, reference: t });
      }),
      { numRuns: 2_000 },
    );
  });
});
