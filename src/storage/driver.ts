/**
 * The storage driver contract. Everything regmirror keeps goes through these few calls, so a driver
 * for S3 can stand in for the filesystem. Keys are relative, `/`-separated and built only by keys.ts.
 * Writes are atomic: an object is visible whole or not at all, never partially.
 */
import type { Readable } from 'node:stream';

/** An object opened for reading: its size is known before any byte is sent. */
export interface ReadHandle {
  readonly size: number;
  /** A stream of bytes `start` to `end` inclusive (defaults: the whole object). Closes the handle when done. */
  stream(start?: number, end?: number): Readable;
  /** Releases the handle when no stream will be made. */
  close(): Promise<void>;
  /**
   * Reads into `buffer` at `position`; resolves with the bytes read (0 at the end). Only drivers
   * with cheap positional reads (the filesystem) have it: callers then reuse their buffers.
   */
  read?(buffer: Buffer, position: number): Promise<number>;
}

/** A place to keep content-addressed blobs and small records. */
export interface StorageDriver {
  /** Prepares the store (creates folders, removes staging leftovers from a crash). */
  init(): Promise<void>;
  /** The object's size, or undefined when absent. */
  stat(key: string): Promise<{ size: number } | undefined>;
  /** Opens an object for reading, or undefined when absent. */
  open(key: string): Promise<ReadHandle | undefined>;
  /** A whole small object, or undefined when absent. */
  get(key: string): Promise<Buffer | undefined>;
  /** Writes a small object atomically, replacing any previous one. */
  put(key: string, data: Buffer): Promise<void>;
  /**
   * Moves a complete, verified local file into the store under `key` (the caller gives the file up),
   * and resolves once it is durable there. The caller syncs the file's data first; the filesystem
   * driver renames it and syncs the folders the rename changed; remote drivers upload it.
   */
  putFile(key: string, localPath: string): Promise<void>;
  /**
   * Optional, for remote drivers: stores the local file at `path`, of `size` bytes, under `key`
   * while it is still being written, reading it from the disk (no copy of it held in memory).
   * `ready(end)` resolves once the file holds its bytes before `end` (at `end === size`, once they
   * verified) and rejects if they never will. The object becomes visible only after `ready(size)`
   * resolved, so nothing unverified is stored. The caller keeps the file until this settles. The
   * blob cache gives it the spool file, so uploading overlaps the download instead of following it.
   */
  putGrowingFile?(key: string, path: string, size: number, ready: (end: number) => Promise<void>): Promise<void>;
  /** Optional, for remote drivers: a URL that lets anyone GET the object for `expiresInSeconds`. */
  presignGet?(key: string, expiresInSeconds: number): Promise<string>;
  /** Removes an object; absent objects are not an error. */
  delete(key: string): Promise<void>;
  /** Every key under a prefix, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /**
   * Optional, for drivers whose listing carries sizes (S3's ListObjectsV2): `list` with each
   * object's size, so a caller that needs sizes sends no `stat` per key. A size the listing lacks is
   * undefined, never a guess: ask `stat`.
   */
  listWithSizes?(prefix: string): AsyncIterable<{ key: string; size?: number }>;
}
