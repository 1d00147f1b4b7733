/**
 * Optional client authentication from an htpasswd file (bcrypt), answered with the registry's
 * `WWW-Authenticate: Basic` challenge so `docker login`, skopeo `--creds`, containerd and podman
 * credentials work. The file is re-read when it changes; verified passwords are remembered briefly,
 * so bcrypt's cost is paid once per client and password, not once per request.
 */
import { createHash } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { compare } from '@node-rs/bcrypt';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';

/** How long a verified password is remembered. */
const VERIFIED_TTL_MS = 5 * 60_000;
/** How often the htpasswd file is checked for changes. */
const WATCH_INTERVAL_MS = 2_000;

/** Users and bcrypt hashes read from an htpasswd file. */
export class HtpasswdAuth {
  private users = new Map<string, string>();
  private readonly verified = new LRUCache<string, string>({ max: 10_000, ttl: VERIFIED_TTL_MS });
  readonly challenge: string;

  constructor(private readonly path: string, realm: string, private readonly logger: Logger) {
    this.challenge = `Basic realm="${realm.replace(/"/g, '')}"`;
    this.users = parseHtpasswd(readFileSync(path, 'utf8'), logger);
    watchFile(path, { interval: WATCH_INTERVAL_MS, persistent: false }, () => this.reload());
  }

  /** The user an Authorization header proves, or undefined. */
  async authenticate(header: string | undefined): Promise<string | undefined> {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return undefined;
    const user = decoded.slice(0, colon);
    const hash = this.users.get(user);
    if (!hash) return undefined;
    const key = createHash('sha256').update(`${hash}\0${decoded}`).digest('hex');
    if (this.verified.get(key) === user) return user;
    if (!(await compare(decoded.slice(colon + 1), hash))) return undefined;
    this.verified.set(key, user);
    return user;
  }

  /** Stops watching the file. */
  close(): void {
    unwatchFile(this.path);
  }

  private reload(): void {
    try {
      this.users = parseHtpasswd(readFileSync(this.path, 'utf8'), this.logger);
      this.verified.clear();
      this.logger.info({ users: this.users.size }, 'htpasswd file reloaded');
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'htpasswd file not reloaded; keeping the previous users');
    }
  }
}

/** Parses `user:hash` lines; only bcrypt hashes are accepted (htpasswd -B). */
function parseHtpasswd(text: string, logger: Logger): Map<string, string> {
  const users = new Map<string, string>();
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const colon = trimmed.indexOf(':');
    const user = trimmed.slice(0, colon);
    const hash = trimmed.slice(colon + 1);
    if (colon <= 0 || !/^\$2[aby]\$\d\d\$/.test(hash)) {
      logger.warn({ user: colon > 0 ? user : undefined }, 'htpasswd entry skipped: only bcrypt hashes (htpasswd -B) are supported');
      continue;
    }
    users.set(user, hash);
  }
  return users;
}
