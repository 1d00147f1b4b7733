/**
 * The access index: one SQLite file beside the cache that knows each piece of content in `blobs/`
 * (size, when stored, when last served, how often) and each tag's pulls. LRU eviction, `gc` and
 * `ls` read it; it survives restarts, and is rebuilt from storage when missing or damaged.
 *
 * The request path only notes accesses in memory (`accessed`, `stored`, `pulled`: a Map update);
 * `flush()` writes them in one short transaction — the mirror flushes every second. WAL mode lets
 * `regmirror gc` and `ls` read and write from other processes while the mirror serves.
 *
 * Totals (bytes, objects) live in a one-row table kept by triggers, so any process reads them in O(1).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Digest } from '../oci/digest.js';
import type { ContentUse } from '../cache/blobs.js';
import type { RankedRow } from './eviction.js';

/** How long, and how many, accesses of content not stored yet are remembered (downloads take a while). */
const UNMATCHED_MS = 15 * 60_000;
const UNMATCHED_MAX = 10_000;

/** Bump when the tables change: an index of another version is rebuilt. */
const SCHEMA_VERSION = '1';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS content (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  stored_at INTEGER NOT NULL,
  accessed_at INTEGER NOT NULL,
  hits INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS content_by_access ON content (accessed_at, digest);
CREATE TABLE IF NOT EXISTS pulls (
  upstream TEXT NOT NULL,
  repository TEXT NOT NULL,
  tag TEXT NOT NULL,
  pulled_at INTEGER NOT NULL,
  pulls INTEGER NOT NULL,
  PRIMARY KEY (upstream, repository, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL, objects INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS content_added AFTER INSERT ON content
  BEGIN UPDATE totals SET bytes = bytes + NEW.size, objects = objects + 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS content_removed AFTER DELETE ON content
  BEGIN UPDATE totals SET bytes = bytes - OLD.size, objects = objects - 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS content_resized AFTER UPDATE OF size ON content
  BEGIN UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 0; END;
`;

/** A piece of content as the index knows it. */
export interface ContentRow {
  digest: Digest;
  size: number;
  storedAt: number;
  accessedAt: number;
  hits: number;
}

/** A tag's pull statistics. */
export interface PullRow {
  upstream: string;
  repository: string;
  tag: string;
  pulledAt: number;
  pulls: number;
}

/** How the index was found when opened. */
export type IndexState =
  /** Created now (missing, damaged, of another version, or never opened by a mirror): build it from storage. */
  | 'new'
  /** Closed cleanly by the last mirror. */
  | 'clean'
  /** The last mirror did not close it (killed): recent changes may be missing; reconcile. */
  | 'unclean';

/** Options of `AccessIndex.open`. */
export interface AccessIndexOptions {
  /** May delete and recreate a damaged index (only when no other process uses it). */
  repair: boolean;
  /** Marks the index in use by a mirror until `close()` (the mirror does; the CLI tools do not). */
  owner?: boolean;
  now?: () => number;
}

interface PendingAccess {
  at: number;
  hits: number;
}

/** What one flush wrote: content stored (size, last access) and accesses (last access), by digest. */
export interface FlushedNotes {
  stored: ReadonlyMap<string, { size: number; accessedAt: number }>;
  accessed: ReadonlyMap<string, number>;
}

/** The SQLite access index; see the module comment. */
export class AccessIndex implements ContentUse {
  private readonly now: () => number;
  private pendingAccess = new Map<string, PendingAccess>();
  private pendingStored = new Map<string, { size: number; storedAt: number; accessedAt: number }>();
  private pendingPulls = new Map<string, PullRow>();
  /** Accesses of content not in storage yet (a download under way): the time they happened, for `stored`. */
  private readonly unmatched = new Map<string, number>();
  private readonly statements;
  /** Also told what each flush wrote (the fleet-wide record). */
  private forwardTo: ((notes: FlushedNotes) => void) | undefined;

  private constructor(
    private readonly db: Database.Database,
    readonly state: IndexState,
    private readonly owner: boolean,
    now: () => number,
  ) {
    this.now = now;
    this.statements = {
      store: db.prepare(`INSERT INTO content (digest, size, stored_at, accessed_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (digest) DO UPDATE SET size = excluded.size, accessed_at = max(accessed_at, excluded.accessed_at)`),
      found: db.prepare('INSERT OR IGNORE INTO content (digest, size, stored_at, accessed_at) VALUES (?, ?, ?, ?)'),
      touch: db.prepare('UPDATE content SET accessed_at = max(accessed_at, ?), hits = hits + ? WHERE digest = ?'),
      pull: db.prepare(`INSERT INTO pulls (upstream, repository, tag, pulled_at, pulls) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET pulled_at = max(pulled_at, excluded.pulled_at), pulls = pulls + excluded.pulls`),
      totals: db.prepare('SELECT bytes, objects FROM totals WHERE id = 0'),
      oldest: db.prepare(`SELECT digest, size, stored_at AS storedAt, accessed_at AS accessedAt, hits FROM content
        WHERE (accessed_at, digest) > (?, ?) ORDER BY accessed_at, digest LIMIT ?`),
      remove: db.prepare('DELETE FROM content WHERE digest = ? AND accessed_at = ?'),
      drop: db.prepare('DELETE FROM content WHERE digest = ?'),
      get: db.prepare('SELECT digest, size, stored_at AS storedAt, accessed_at AS accessedAt, hits FROM content WHERE digest = ?'),
      digestsBefore: db.prepare('SELECT digest FROM content WHERE stored_at < ?'),
      pulls: db.prepare('SELECT upstream, repository, tag, pulled_at AS pulledAt, pulls FROM pulls'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    };
  }

  /** Opens (or creates) the index at `path`. */
  static open(path: string, options: AccessIndexOptions): AccessIndex {
    mkdirSync(dirname(path), { recursive: true });
    const now = options.now ?? Date.now;
    let opened: { db: Database.Database; state: IndexState };
    try {
      opened = openDatabase(path);
    } catch (err) {
      if (!options.repair) throw new Error(`the access index ${path} is damaged (${(err as Error).message}); the mirror or \`regmirror gc\` rebuilds it`, { cause: err });
      for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
      opened = openDatabase(path);
      opened.state = 'new';
    }
    const index = new AccessIndex(opened.db, opened.state, options.owner ?? false, now);
    if (index.owner) index.statements.setMeta.run('clean', '0');
    return index;
  }

  /** Notes that content was served (request path: memory only). */
  accessed(digest: Digest): void {
    const entry = this.pendingAccess.get(digest);
    if (entry) {
      entry.at = this.now();
      entry.hits++;
    } else {
      this.pendingAccess.set(digest, { at: this.now(), hits: 1 });
    }
  }

  /**
   * Notes that content was added to storage (memory only). Its last access is when a client asked
   * for it, not when its download finished, so eviction order does not depend on download times.
   */
  stored(digest: Digest, size: number): void {
    const asked = this.pendingAccess.get(digest)?.at ?? this.unmatched.get(digest);
    this.unmatched.delete(digest);
    const now = this.now();
    this.pendingStored.set(digest, { size, storedAt: now, accessedAt: asked ?? now });
  }

  /** Notes a manifest request by tag (memory only). */
  pulled(upstream: string, repository: string, tag: string): void {
    const key = `${upstream} ${repository} ${tag}`;
    const entry = this.pendingPulls.get(key);
    if (entry) {
      entry.pulledAt = this.now();
      entry.pulls++;
    } else {
      this.pendingPulls.set(key, { upstream, repository, tag, pulledAt: this.now(), pulls: 1 });
    }
  }

  /** Notes waiting to be flushed. */
  get pending(): number {
    return this.pendingAccess.size + this.pendingStored.size + this.pendingPulls.size;
  }

  /** Writes what was noted in one transaction. On failure (e.g. the database busy) the notes are kept for the next try. */
  flush(): void {
    if (this.pending === 0) return;
    const [stored, access, pulls] = [this.pendingStored, this.pendingAccess, this.pendingPulls];
    const { store, touch, pull } = this.statements;
    const unmatched: [string, number][] = [];
    this.db.transaction(() => {
      for (const [digest, s] of stored) store.run(digest, s.size, s.storedAt, s.accessedAt);
      for (const [digest, a] of access) if (touch.run(a.at, a.hits, digest).changes === 0) unmatched.push([digest, a.at]);
      for (const p of pulls.values()) pull.run(p.upstream, p.repository, p.tag, p.pulledAt, p.pulls);
    })();
    this.remember(unmatched);
    this.pendingStored = new Map();
    this.pendingAccess = new Map();
    this.pendingPulls = new Map();
    this.forwardTo?.({ stored, accessed: new Map([...access].map(([digest, a]) => [digest, a.at])) });
  }

  /** Hands what every flush writes to `sink` as well (memory only: it sends the notes on its own schedule). */
  forward(sink: (notes: FlushedNotes) => void): void {
    this.forwardTo = sink;
  }

  /** Keeps accesses of content not stored yet, for a while and in bounded memory. */
  private remember(unmatched: [string, number][]): void {
    for (const [digest, at] of unmatched) {
      this.unmatched.delete(digest); // re-inserted last: the map stays in time order
      this.unmatched.set(digest, at);
    }
    const tooOld = this.now() - UNMATCHED_MS;
    for (const [digest, at] of this.unmatched) {
      if (at >= tooOld && this.unmatched.size <= UNMATCHED_MAX) break;
      this.unmatched.delete(digest);
    }
  }

  /** Bytes and count of the content indexed (flushed). */
  usage(): { bytes: number; objects: number } {
    return this.statements.totals.get() as { bytes: number; objects: number };
  }

  /** Content in least-recently-used order, after `cursor` (exclusive). */
  oldest(cursor: Pick<ContentRow, 'accessedAt' | 'digest'> | undefined, limit: number): ContentRow[] {
    return this.statements.oldest.all(cursor?.accessedAt ?? -1, cursor?.digest ?? '', limit) as ContentRow[];
  }

  /** What the index knows of one digest. */
  get(digest: string): ContentRow | undefined {
    return this.statements.get.get(digest) as ContentRow | undefined;
  }

  /**
   * Removes the rows of content about to be deleted, in one transaction, each only if nobody
   * accessed it since it was read (`accessedAt` unchanged). Returns the rows removed.
   */
  removeUnchanged(rows: readonly ContentRow[]): ContentRow[] {
    return this.db.transaction(() => rows.filter((r) => this.statements.remove.run(r.digest, r.accessedAt).changes === 1))();
  }

  /** Counts again rows removed for eviction whose content stayed in storage (its delete failed). */
  restore(rows: readonly RankedRow[]): void {
    this.db.transaction(() => rows.forEach((r) => this.statements.found.run(r.digest, r.size, r.accessedAt, r.accessedAt)))();
  }

  /** Adds content found in storage that the index did not know, as accessed at `at`. Returns how many were new. */
  addFound(found: ReadonlyArray<{ digest: string; size: number }>, at: number): number {
    return this.db.transaction(() => found.reduce((n, f) => n + this.statements.found.run(f.digest, f.size, at, at).changes, 0))();
  }

  /** Removes rows of content no longer in storage (only rows stored before `before`). Returns them. */
  dropMissing(present: ReadonlySet<string>, before: number): string[] {
    const gone = (this.statements.digestsBefore.all(before) as { digest: string }[]).map((r) => r.digest).filter((d) => !present.has(d));
    this.drop(gone);
    return gone;
  }

  /** Removes the rows of content deleted elsewhere (another replica evicted it). */
  drop(digests: readonly string[]): void {
    this.db.transaction(() => digests.forEach((d) => this.statements.drop.run(d)))();
  }

  /** Pull statistics of every tag. */
  pulls(): PullRow[] {
    return this.statements.pulls.all() as PullRow[];
  }

  /** Flushes, marks the index closed cleanly (when this process owns it), and closes it. */
  close(): void {
    if (!this.db.open) return;
    try {
      this.flush();
      if (this.owner) this.statements.setMeta.run('clean', '1');
    } finally {
      this.db.close();
    }
  }
}

/** Opens the database, creating the tables; throws when the file is damaged or unreadable. */
function openDatabase(path: string): { db: Database.Database; state: IndexState } {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // WAL: a commit is durable across a process crash, not always a power loss
    db.pragma('busy_timeout = 2000');
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new Error(`quick_check: ${String(check)}`);
    const version = metaValue(db, 'schema');
    if (version !== undefined && version !== SCHEMA_VERSION) {
      db.exec('DROP TABLE IF EXISTS content; DROP TABLE IF EXISTS pulls; DROP TABLE IF EXISTS totals; DROP TABLE IF EXISTS meta;');
    }
    db.exec(SCHEMA);
    const clean = metaValue(db, 'clean');
    db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(SCHEMA_VERSION);
    // Never owned by a mirror (created by a CLI tool): as good as new.
    const state: IndexState = version !== SCHEMA_VERSION || clean === undefined ? 'new' : clean === '0' ? 'unclean' : 'clean';
    return { db, state };
  } catch (err) {
    db.close();
    throw err;
  }
}

function metaValue(db: Database.Database, key: string): string | undefined {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  if (!hasMeta) return undefined;
  return (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}
