/**
 * One upstream download of a blob into a local spool file, shared by every client that wants the
 * blob while it arrives (single flight). Invariants:
 * - bytes are hashed as they arrive; the blob is handed to storage only if digest and size verify;
 * - a reader never receives the last byte of its response (the blob's final byte, or a range's
 *   last) before verification, so a client of a corrupt download sees its transfer cut short,
 *   never completed with wrong bytes;
 * - the download does not depend on any client: it finishes (and fills the cache) when clients
 *   leave, and a slow client never slows the others (each reads the spool at its own pace).
 */
import { createHash, type Hash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { digestAlgorithm, type Digest } from '../oci/digest.js';

/** How much a reader asks of the spool file at once. */
const READ_CHUNK_BYTES = 256 * 1024;
/** Bytes received but not yet in the spool file before the download waits for the disk. */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** Why a spooled download failed. */
export class SpoolError extends Error {
  override name = 'SpoolError';
  constructor(
    message: string,
    readonly reason: 'digest-mismatch' | 'size-mismatch' | 'upstream-failed' | 'write-failed',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

type State = 'running' | 'verified' | 'failed';

/** A reserved read of a spool: `read` follows the spool as it grows; `end` defaults to the last byte. */
export interface SpoolLease {
  read(start?: number, end?: number): Readable;
  /**
   * Copies bytes at `position` into `buffer` once they are readable, for a response whose last byte
   * is `last` (that byte only after verification); resolves with their count, 0 at the end. Then `release`.
   */
  readInto(buffer: Buffer, position: number, last: number): Promise<number>;
  release(): void;
}

/** A blob download in progress (or just finished) in a spool file. */
export class SpoolDownload {
  /** Bytes written to the spool so far. */
  written = 0;
  private state: State = 'running';
  private failure: Error | undefined;
  private readonly hash: Hash;
  private readonly events = new EventEmitter();
  private readers = 0;
  private released = false;
  private closed = false;
  /** Settles when the download is verified (resolves) or has failed (rejects). */
  readonly done: Promise<void>;

  private constructor(
    readonly digest: Digest,
    /** The size upstream announced, when it did. */
    readonly expectedSize: number | undefined,
    readonly path: string,
    private readonly fh: FileHandle,
  ) {
    this.hash = createHash(digestAlgorithm(digest));
    this.events.setMaxListeners(0);
    this.done = new Promise((resolve, reject) => {
      this.events.once('settled', () => (this.state === 'verified' ? resolve() : reject(this.failure)));
    });
    this.done.catch(() => undefined); // observed by readers and by the owner
  }

  /** Creates the spool file and starts copying `body` into it. */
  static async start(digest: Digest, expectedSize: number | undefined, path: string, body: AsyncIterable<Buffer>): Promise<SpoolDownload> {
    const fh = await open(path, 'w+');
    const download = new SpoolDownload(digest, expectedSize, path, fh);
    void download.pump(body);
    return download;
  }

  /** True once the blob verified. */
  get verified(): boolean {
    return this.state === 'verified';
  }

  /** The size, once known for certain (announced, or counted at the end). */
  get size(): number | undefined {
    return this.state === 'verified' ? this.written : this.expectedSize;
  }

  /**
   * Reserves a place to read the spool (the file stays open until it is used or released), or
   * returns undefined when the download failed or the spool is closed (stored, or failed).
   */
  retain(): SpoolLease | undefined {
    if (this.closed || this.state === 'failed') return undefined;
    this.readers++;
    let used = false;
    const once = (): void => {
      if (used) throw new Error('spool lease used twice');
      used = true;
    };
    return {
      read: (start = 0, end?: number) => {
        once();
        return new SpoolReader(this, start, end);
      },
      readInto: (buffer, position, last) => this.readInto(buffer, position, last),
      release: () => {
        once();
        this.readerDone();
      },
    };
  }

  /** Reads up to `length` bytes at `position`, waiting until they are readable; null at the end. */
  async readAt(position: number, end: number | undefined): Promise<Buffer | null> {
    for (;;) {
      const last = end ?? (this.state === 'verified' ? this.written - 1 : Number.POSITIVE_INFINITY);
      if (position > last) return null;
      const available = this.readableEnd(end) - 1;
      if (position <= available) {
        const length = Math.min(READ_CHUNK_BYTES, Math.min(last, available) - position + 1);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await this.fh.read(buffer, 0, length, position);
        return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
      }
      if (this.state === 'failed') throw this.failure;
      await new Promise<void>((resolve) => this.events.once('progress', resolve));
    }
  }

  /** See SpoolLease.readInto. */
  async readInto(buffer: Buffer, position: number, last: number): Promise<number> {
    for (;;) {
      if (this.state === 'verified' && position >= this.written) return 0;
      const available = this.readableEnd(last);
      if (position < available) {
        const { bytesRead } = await this.fh.read(buffer, 0, Math.min(buffer.length, available - position), position);
        return bytesRead;
      }
      if (this.state === 'failed') throw this.failure;
      await new Promise<void>((resolve) => this.events.once('progress', resolve));
    }
  }

  /**
   * Resolves once the spool file holds the blob's bytes before `end`, the blob's last byte only once
   * it verified; rejects if the download fails first. For an upload that reads the file itself.
   */
  async holds(end: number): Promise<void> {
    for (;;) {
      if (this.state === 'failed') throw this.failure;
      if (end <= this.readableEnd(undefined)) return;
      if (this.state === 'verified') throw new Error(`the blob has ${this.written} bytes, not ${end}`);
      await new Promise<void>((resolve) => this.events.once('progress', resolve));
    }
  }

  /** Called when a lease's reader ends or is destroyed, or the lease is released. */
  readerDone(): void {
    this.readers--;
    void this.releaseIfIdle();
  }

  /**
   * Flushes the verified spool file to disk before the commit renames it into storage: after a
   * power cut the stored blob is whole or missing (and fetched again), never partial.
   */
  async sync(): Promise<void> {
    await this.fh.datasync();
  }

  /** Hands the spool file over (after verification) and stops tracking readers' needs for it. */
  async closeWhenIdle(): Promise<void> {
    this.released = true;
    await this.releaseIfIdle();
  }

  /**
   * How far (exclusive) a reader whose response ends at byte `last` may read now: everything once
   * verified; before, never `last` itself, nor the blob's final byte (the last one written while
   * the size is unknown).
   */
  private readableEnd(last: number | undefined): number {
    if (this.state === 'verified') return this.written;
    const blobEnd = this.expectedSize !== undefined ? Math.min(this.written, this.expectedSize - 1) : Math.max(0, this.written - 1);
    return last === undefined ? blobEnd : Math.min(blobEnd, last);
  }

  private async pump(body: AsyncIterable<Buffer>): Promise<void> {
    // Write-behind: the download waits for the disk only when MAX_QUEUED_BYTES are queued.
    const writer = new SpoolWriter(this.fh, () => {
      this.written = writer.written;
      this.events.emit('progress');
    });
    let received = 0;
    try {
      for await (const chunk of body) {
        this.hash.update(chunk);
        received += chunk.length;
        if (this.expectedSize !== undefined && received > this.expectedSize) {
          throw new SpoolError('upstream sent more bytes than announced', 'size-mismatch');
        }
        writer.push(chunk);
        if (writer.queued >= MAX_QUEUED_BYTES) await writer.flushed();
      }
      await writer.flushed();
      if (this.expectedSize !== undefined && this.written !== this.expectedSize) {
        throw new SpoolError(`upstream sent ${this.written} of ${this.expectedSize} bytes`, 'size-mismatch');
      }
      const actual = `${digestAlgorithm(this.digest)}:${this.hash.digest('hex')}`;
      if (actual !== this.digest) throw new SpoolError(`upstream sent content with digest ${actual}`, 'digest-mismatch');
      this.settle('verified');
    } catch (err) {
      await writer.flushed().catch(() => undefined);
      this.failure = err instanceof SpoolError ? err : new SpoolError(`download failed: ${(err as Error).message}`, 'upstream-failed', { cause: err });
      this.settle('failed');
      const source = body as { destroy?: (err?: Error) => void };
      source.destroy?.();
      await unlink(this.path).catch(() => undefined);
    }
  }

  private settle(state: State): void {
    this.state = state;
    this.events.emit('progress');
    this.events.emit('settled');
  }

  private async releaseIfIdle(): Promise<void> {
    if ((this.released || this.state === 'failed') && this.readers === 0 && this.state !== 'running' && !this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
    }
  }
}

/** A client's view of a spool: follows it as it grows, at the client's own pace. */
class SpoolReader extends Readable {
  private finished = false;

  constructor(
    private readonly spool: SpoolDownload,
    private position: number,
    private readonly end: number | undefined,
  ) {
    super({ highWaterMark: READ_CHUNK_BYTES });
  }

  override _read(): void {
    this.spool.readAt(this.position, this.end).then(
      (chunk) => {
        if (chunk) this.position += chunk.length;
        this.push(chunk);
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.finished) {
      this.finished = true;
      this.spool.readerDone();
    }
    callback(err);
  }
}

/** Appends chunks to the spool file in the background: one writev at a time, of all that is queued. */
class SpoolWriter {
  written = 0;
  queued = 0;
  private readonly queue: Buffer[] = [];
  private running: Promise<void> | undefined;
  private error: unknown;

  constructor(
    private readonly fh: FileHandle,
    private readonly onWritten: () => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.error) throw this.error;
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.running ??= this.drain().then(
      () => void (this.running = undefined),
      (err: unknown) => {
        this.running = undefined;
        this.error = new SpoolError(`spool write failed: ${(err as Error).message}`, 'write-failed', { cause: err });
      },
    );
  }

  /** Resolves once everything pushed is written; rejects if a write failed. */
  async flushed(): Promise<void> {
    while (this.running) await this.running;
    if (this.error) throw this.error;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0);
      const bytes = batch.reduce((n, b) => n + b.length, 0);
      for (let done = 0; done < bytes; ) {
        const rest = done === 0 ? batch : [Buffer.concat(batch).subarray(done)];
        done += (await this.fh.writev(rest, this.written + done)).bytesWritten;
      }
      this.queued -= bytes;
      this.written += bytes;
      this.onWritten();
    }
  }
}
