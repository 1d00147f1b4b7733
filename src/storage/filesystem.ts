/**
 * The local filesystem driver: objects are files below a root folder, written by rename.
 *
 * Durability: a blob (`putFile`) is durable when the call resolves. Its data was synced by the caller
 * (or, for a copy from another filesystem, here), and a rename reaches the disk only with its folder:
 * without syncing that folder, a power cut can undo the rename and the blob vanishes though its
 * bytes were synced. Small records (`put`) are not synced: one that is lost is a miss, fetched or confirmed again.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { ReadHandle, StorageDriver } from './driver.js';

/** Read buffer for blob streams: large chunks keep syscalls and event-loop turns per byte low. */
const READ_CHUNK_BYTES = 1024 * 1024;
/** Where half-written objects live; emptied at start, so a crash leaves nothing visible. */
const STAGING = '_staging';

/** Stores objects as files under `root`. */
export class FilesystemDriver implements StorageDriver {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  async init(): Promise<void> {
    await rm(join(this.root, STAGING), { recursive: true, force: true });
    await mkdir(join(this.root, STAGING), { recursive: true });
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const s = await stat(this.path(key));
      return s.isFile() ? { size: s.size } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async open(key: string): Promise<ReadHandle | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(this.path(key), 'r');
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    let size: number;
    try {
      ({ size } = await fh.stat());
    } catch (err) {
      await fh.close();
      throw err;
    }
    return {
      size,
      stream: (start = 0, end = size - 1): ReadStream =>
        createReadStream('', { fd: fh, start, end, highWaterMark: READ_CHUNK_BYTES, autoClose: true }),
      close: () => fh.close(),
      read: async (buffer, position) => (await fh.read(buffer, 0, buffer.length, position)).bytesRead,
    };
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async put(key: string, data: Buffer): Promise<void> {
    const staged = this.stagingPath();
    await writeFile(staged, data);
    await this.moveIntoPlace(staged, this.path(key));
  }

  async putFile(key: string, localPath: string): Promise<void> {
    const target = this.path(key);
    let changed: string[];
    try {
      changed = await this.moveIntoPlace(localPath, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      // Another filesystem: copy into staging first so the final rename stays atomic.
      const staged = this.stagingPath();
      await copyFile(localPath, staged);
      await syncPath(staged); // the caller synced the original, not this copy
      changed = await this.moveIntoPlace(staged, target);
      await unlink(localPath);
    }
    for (const folder of changed) await syncPath(folder);
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async *list(prefix: string): AsyncIterable<string> {
    const start = this.path(prefix.replace(/\/$/, ''));
    yield* this.walk(start, prefix.replace(/\/?$/, '/'));
  }

  private async *walk(dir: string, keyPrefix: string): AsyncIterable<string> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.isDirectory()) yield* this.walk(join(dir, entry.name), `${keyPrefix}${entry.name}/`);
      else if (entry.isFile()) yield `${keyPrefix}${entry.name}`;
    }
  }

  /**
   * Renames `from` to `to`, creating `to`'s folder when missing; returns the folders whose entries
   * changed, to sync for durability: `to`'s, or after a mkdir every folder from `to`'s up to the root
   * (another commit may have created some of them and not synced their parents yet).
   */
  private async moveIntoPlace(from: string, to: string): Promise<string[]> {
    const folder = dirname(to);
    try {
      await rename(from, to);
      return [folder];
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    await mkdir(folder, { recursive: true });
    await rename(from, to);
    const changed = [folder];
    while (changed.at(-1) !== this.root) changed.push(dirname(changed.at(-1)!));
    return changed;
  }

  private stagingPath(): string {
    return join(this.root, STAGING, randomUUID());
  }

  /** Maps a key to a path, refusing anything that would leave the root. */
  private path(key: string): string {
    const full = resolve(this.root, key);
    if (key.startsWith('/') || key.split('/').includes('..') || !full.startsWith(this.root + sep)) {
      throw new Error(`invalid storage key: ${key}`);
    }
    return full;
  }
}

/** fsync of a file or folder (a folder's entries: names renamed or created in it). */
async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}
