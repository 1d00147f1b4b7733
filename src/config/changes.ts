/**
 * What differs between the running configuration and a newly loaded one, and whether a reload can
 * apply it. A reload applies a configuration whole or not at all: a change to anything bound or
 * opened at start (listeners' addresses, storage, Redis, TLS, the proxy, the htpasswd file, logging's
 * format) needs a restart, and then nothing is applied, so the mirror never runs half of one file
 * and half of another.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Credentials } from './credentials.js';
import type { Config } from './schema.js';

/**
 * The settings a reload applies: upstreams, routing, tag freshness, the cache's limits, who may
 * connect (and whose X-Forwarded-For counts) and the log level; and each listener's `allow`.
 */
const RELOADABLE = ['upstreams', 'routing.defaultUpstream', 'cache.tagTTL', 'storage.maxSize', 'storage.lowWater', 'storage.maxAge', 'admin.allow', 'access.trustedProxies', 'log.level'] as const;
const LISTENER_ALLOW = /^listeners\[\d+\]\.allow$/;

/** The difference between two configurations. */
export interface ConfigChanges {
  /** Upstreams in the new configuration only. */
  added: string[];
  /** Upstreams in the running configuration only. */
  removed: string[];
  /** Upstreams in both whose settings or resolved credentials differ. */
  changed: string[];
  /** Other reloadable keys that differ (`routing.defaultUpstream`, `listeners[0].allow`, `storage.maxSize`...). */
  settings: string[];
  /** Keys that differ and need a restart, e.g. `listeners` or `storage.path`. */
  needRestart: string[];
}

/** Each upstream's credentials as read from their variables or files, by upstream name. */
export type CredentialsByUpstream = ReadonlyMap<string, Credentials | undefined>;

/** Compares the running configuration (and its upstreams' credentials) with the next. */
export function configChanges(running: Readonly<Config>, runningCredentials: CredentialsByUpstream, next: Readonly<Config>, nextCredentials: CredentialsByUpstream): ConfigChanges {
  const before = Object.keys(running.upstreams);
  const after = Object.keys(next.upstreams);
  const changed = after.filter((name) => before.includes(name) && !(isDeepStrictEqual(running.upstreams[name], next.upstreams[name]) && isDeepStrictEqual(runningCredentials.get(name), nextCredentials.get(name))));
  const settings: string[] = [];
  const needRestart: string[] = [];
  for (const key of differingKeys(running, next)) {
    if (key === 'upstreams') continue;
    (RELOADABLE.some((reloadable) => reloadable === key) || LISTENER_ALLOW.test(key) ? settings : needRestart).push(key);
  }
  return { added: after.filter((name) => !before.includes(name)), removed: before.filter((name) => !after.includes(name)), changed, settings, needRestart };
}

/** Whether a reload would change anything. */
export function changesAnything(changes: ConfigChanges): boolean {
  return changes.added.length + changes.removed.length + changes.changed.length + changes.settings.length + changes.needRestart.length > 0;
}

/** `listeners[i].allow` for each listener whose allow-list alone changed; `listeners` when anything else did. */
function listenerKeys(a: Config['listeners'], b: Config['listeners']): string[] {
  const bound = (listeners: Config['listeners']): unknown[] => listeners.map(({ allow: _allow, ...rest }) => rest);
  if (!isDeepStrictEqual(bound(a), bound(b))) return ['listeners'];
  return a.flatMap((listener, i) => (isDeepStrictEqual(listener.allow, b[i]!.allow) ? [] : [`listeners[${i}].allow`]));
}

/** The top-level keys that differ, as `section.key` for the sections a reload applies in part. */
function differingKeys(a: Readonly<Config>, b: Readonly<Config>): string[] {
  const partly = new Set(RELOADABLE.filter((key) => key.includes('.')).map((key) => key.slice(0, key.indexOf('.'))));
  const keys: string[] = [];
  for (const section of new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof Config>) {
    if (isDeepStrictEqual(a[section], b[section])) continue;
    if (section === 'listeners') {
      keys.push(...listenerKeys(a.listeners, b.listeners));
      continue;
    }
    const left = a[section] as Record<string, unknown> | undefined;
    const right = b[section] as Record<string, unknown> | undefined;
    if (!partly.has(section) || !left || !right) {
      keys.push(section);
      continue;
    }
    for (const key of new Set([...Object.keys(left), ...Object.keys(right)])) {
      if (!isDeepStrictEqual(left[key], right[key])) keys.push(`${section}.${key}`);
    }
  }
  return keys;
}
