import { describe, expect, it } from 'vitest';
import { changesAnything, configChanges } from './changes.js';
import { parseConfig } from './load.js';
import type { ConfigInput } from './schema.js';

const base: ConfigInput = {
  version: 1,
  listeners: [{ address: '127.0.0.1:5000' }],
  routing: { defaultUpstream: 'docker.io' },
  upstreams: {
    'docker.io': { url: 'https://registry-1.docker.io' },
    'ghcr.io': { url: 'https://ghcr.io', credentials: { username: 'bot', passwordFile: '/run/secrets/ghcr' } },
  },
};
const none = new Map();

/** The changes from `base` to `base` with `edit` applied to a copy of it. */
function changesTo(edit: (doc: ConfigInput) => void, credentials: { before?: Map<string, unknown>; after?: Map<string, unknown> } = {}): ReturnType<typeof configChanges> {
  const next = structuredClone(base);
  edit(next);
  return configChanges(parseConfig(base), (credentials.before ?? none) as never, parseConfig(next), (credentials.after ?? none) as never);
}

describe('configChanges', () => {
  it('finds nothing between a configuration and itself, whatever the order of its upstreams', () => {
    const changes = changesTo((doc) => {
      doc.upstreams = { 'ghcr.io': doc.upstreams['ghcr.io']!, 'docker.io': doc.upstreams['docker.io']! };
    });
    expect(changesAnything(changes)).toBe(false);
  });

  it('names upstreams added, removed and changed, and the other settings a reload applies', () => {
    const changes = changesTo((doc) => {
      delete doc.upstreams['ghcr.io'];
      doc.upstreams['quay.io'] = { url: 'https://quay.io' };
      doc.upstreams['docker.io'] = { url: 'https://registry-1.docker.io', repositories: { deny: ['library/evil'] } };
      doc.routing = { defaultUpstream: 'quay.io' };
      doc.cache = { tagTTL: '1m' };
      doc.storage = { maxSize: '10GB', maxAge: '30d' };
      doc.log = { level: 'debug' };
    });
    expect(changes).toEqual({
      added: ['quay.io'],
      removed: ['ghcr.io'],
      changed: ['docker.io'],
      settings: ['routing.defaultUpstream', 'storage.maxSize', 'storage.maxAge', 'cache.tagTTL', 'log.level'],
      needRestart: [],
    });
  });

  it('counts a new password in the same file as a changed upstream', () => {
    const before = new Map([['ghcr.io', { username: 'bot', password: 'old' }]]);
    const after = new Map([['ghcr.io', { username: 'bot', password: 'new' }]]);
    expect(changesTo(() => undefined, { before, after }).changed).toEqual(['ghcr.io']);
    expect(changesAnything(changesTo(() => undefined, { before, after: before }))).toBe(false);
  });

  it('names every key that only a restart applies, down to the key within cache and log', () => {
    const changes = changesTo((doc) => {
      doc.listeners = [{ address: '127.0.0.1:5001' }];
      doc.storage = { path: '/var/cache/other' };
      doc.access = { htpasswd: '/etc/regmirror/htpasswd' };
      doc.cache = { tagTTL: '1m', manifestMemoryBytes: 1024 };
      doc.log = { format: 'pretty', accessLog: false };
    });
    expect(changes.needRestart).toEqual(['listeners', 'access.htpasswd', 'storage.path', 'cache.manifestMemoryBytes', 'log.format', 'log.accessLog']);
    expect(changes.settings).toEqual(['cache.tagTTL']);
  });

  it('applies a new allow-list of a listener, but not a listener moved or added', () => {
    const allowed = changesTo((doc) => {
      doc.listeners = [{ address: '127.0.0.1:5000', allow: ['10.0.0.0/8'] }];
      doc.access = { trustedProxies: ['10.1.2.3'] };
    });
    expect([allowed.settings, allowed.needRestart]).toEqual([['listeners[0].allow', 'access.trustedProxies'], []]);
    const moved = changesTo((doc) => {
      doc.listeners = [{ address: '127.0.0.1:5001', allow: ['10.0.0.0/8'] }];
    });
    expect([moved.settings, moved.needRestart]).toEqual([[], ['listeners']]);
    const added = changesTo((doc) => {
      doc.listeners = [{ address: '127.0.0.1:5000' }, { address: '127.0.0.1:5001', upstream: 'ghcr.io' }];
    });
    expect(added.needRestart).toEqual(['listeners']);
  });

  it('sees a section that appears or goes, as a fleet gaining Redis', () => {
    const changes = changesTo((doc) => {
      doc.redis = { url: 'redis://127.0.0.1:6379' };
    });
    expect(changes.needRestart).toEqual(['redis']);
  });
});
