/**
 * Optional client authentication from an htpasswd file (bcrypt), answered with the registry's
 * `WWW-Authenticate: Basic` challenge so `docker login`, skopeo `--creds`, containerd and podman
 * credentials work. The file is re-read when it changes; verified passwords are remembered briefly,
 * so bcrypt's cost is paid once per client and password, not once per request. Wrong passwords are
 * remembered briefly too, at most COMPARE_CONCURRENCY checks run at once (bcrypt runs on libuv's
 * pool, which file reads and writes share), and an unknown user costs a check like a known one, so
 * timing does not tell which users exist.
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
/** How long a wrong password is remembered (clients retry with the same one). */
const REJECTED_TTL_MS = 10_000;
/** bcrypt checks at once: leaves libuv's pool (4 threads by default) room for file I/O. */
const COMPARE_CONCURRENCY = 2;
/** The decoy of a file with no users: a bcrypt hash (cost 10) of no one's password. */
const EMPTY_FILE_DECOY = '$2b$10$mQ3NTkq1rz1wB4bRhYodYOKya5wWUmkVBj./OJvGP4xDt3bd2.a8y';

/** Users and bcrypt hashes read from an htpasswd file. */
export class HtpasswdAuth {
  private users = new Map<string, string>();
  /**
   * Checked against for unknown users, so they cost what a known user does: one of the file's own
   * hashes (an unknown user is refused whatever the check says), so no hashing at load time.
   */
  private decoy = EMPTY_FILE_DECOY;
  private readonly verified = new LRUCache<string, string>({ max: 10_000, ttl: VERIFIED_TTL_MS });
  private readonly rejected = new LRUCache<string, true>({ max: 10_000, ttl: REJECTED_TTL_MS });
  private readonly comparing = new Limiter(COMPARE_CONCURRENCY);
  readonly challenge: string;

  constructor(private readonly path: string, realm: string, private readonly logger: Logger) {
    this.challenge = `Basic realm="${realm.replace(/"/g, '')}"`;
    this.load(readFileSync(path, 'utf8'));
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
    const known = this.users.get(user);
    const hash = known ?? this.decoy;
    const key = createHash('sha256').update(`${hash}\0${decoded}`).digest('hex');
    if (known && this.verified.get(key) === user) return user;
    if (this.rejected.has(key)) return undefined;
    const matches = await this.comparing.run(() => compare(decoded.slice(colon + 1), hash));
    if (!known || !matches) {
      this.rejected.set(key, true);
      return undefined;
    }
    this.verified.set(key, user);
    return user;
  }

  private load(text: string): void {
    this.users = parseHtpasswd(text, this.logger);
    this.decoy = this.users.values().next().value ?? EMPTY_FILE_DECOY;
  }

  /** Stops watching the file. */
  close(): void {
    unwatchFile(this.path);
  }

  private reload(): void {
    try {
      this.load(readFileSync(this.path, 'utf8'));
      this.verified.clear();
      this.rejected.clear();
      this.logger.info({ users: this.users.size }, 'htpasswd file reloaded');
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'htpasswd file not reloaded; keeping the previous users');
    }
  }
}

/** Runs at most `limit` tasks at once; the others wait in order. */
class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.limit) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // a finishing task hands its slot over
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
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
