/** Reads, overrides, validates and freezes the configuration: the only place config text is parsed. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './error.js';
import { configSchema, usesDockerHubNames, type Config } from './schema.js';

/** Defined apart, so that credentials.ts can throw it without loading this module's parser and schema. */
export { ConfigError };

/** Where the commented default configuration lives, both in the source tree and in the package. */
export const DEFAULT_CONFIG_URL = new URL('../../config/default.yaml', import.meta.url);

/** Settings given as command-line flags; each replaces the file's value when present. */
export interface ConfigOverrides {
  /** `address` or `address=upstream`, repeatable; replaces `listeners`. */
  listen?: string[];
  /** Replaces `storage.path`. */
  data?: string;
  /** `name=url`, repeatable; replaces `upstreams`. User-info in the URL becomes credentials. */
  upstream?: string[];
  /** Replaces `log.level`. */
  logLevel?: string;
  /** Replaces `log.format`. */
  logFormat?: string;
}

/** Loads the file at `path` (or the embedded default), applies `overrides`, validates and freezes it. */
export function loadConfig(path: string | undefined, overrides: ConfigOverrides = {}): Readonly<Config> {
  const source = path ?? DEFAULT_CONFIG_URL;
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${String(source)}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${String(source)} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseConfig(applyOverrides(raw ?? {}, overrides));
}

/** Validates a parsed document and returns the frozen configuration. */
export function parseConfig(raw: unknown): Readonly<Config> {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues));
  const config = result.data;
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    upstream.dockerHubNames = usesDockerHubNames(name, upstream);
    moveUserInfoToCredentials(upstream);
  }
  return deepFreeze(config);
}

function applyOverrides(raw: unknown, overrides: ConfigOverrides): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const doc = structuredClone(raw) as Record<string, unknown>;
  if (overrides.data !== undefined) {
    doc.storage = { ...(doc.storage as object | undefined), path: overrides.data };
  }
  if (overrides.upstream?.length) {
    const upstreams: Record<string, unknown> = {};
    for (const spec of overrides.upstream) {
      const [name, url] = splitPair(spec, '--upstream', 'name=url');
      upstreams[name] = { url };
    }
    doc.upstreams = upstreams;
    const routing = (doc.routing ?? {}) as { defaultUpstream?: string };
    const names = Object.keys(upstreams);
    // The file's default upstream may be gone from the replaced list; a lone upstream is the default.
    const defaultUpstream = routing.defaultUpstream && names.includes(routing.defaultUpstream) ? routing.defaultUpstream : names.length === 1 ? names[0] : undefined;
    doc.routing = { ...routing, defaultUpstream };
  }
  if (overrides.logLevel !== undefined || overrides.logFormat !== undefined) {
    const log = (doc.log ?? {}) as Record<string, unknown>;
    doc.log = { ...log, level: overrides.logLevel ?? log.level, format: overrides.logFormat ?? log.format };
  }
  if (overrides.listen?.length) {
    doc.listeners = overrides.listen.map((spec) => {
      if (!spec.includes('=')) return { address: spec };
      const [address, upstream] = splitPair(spec, '--listen', 'address=upstream');
      return { address, upstream };
    });
  }
  return doc;
}

function splitPair(spec: string, flag: string, form: string): [string, string] {
  const at = spec.indexOf('=');
  if (at <= 0 || at === spec.length - 1) throw new ConfigError(`${flag} "${spec}": expected ${form}`);
  return [spec.slice(0, at), spec.slice(at + 1)];
}

function moveUserInfoToCredentials(upstream: Config['upstreams'][string]): void {
  const url = new URL(upstream.url);
  if (!url.username && !url.password) return;
  upstream.credentials = {
    ...upstream.credentials,
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  };
  url.username = '';
  url.password = '';
  upstream.url = url.toString();
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const key = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : /^[\w-]+$/.test(String(p)) ? `.${String(p)}` : `["${String(p)}"]`)).join('').replace(/^\./, '');
      const message = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
      return `config error at ${key || '(top level)'}: ${message}`;
    })
    .join('\n');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
