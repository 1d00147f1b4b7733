/**
 * The S3 driver: objects in a bucket of any S3-compatible store (AWS S3, R2, MinIO, Ceph RGW,
 * Swift's s3api), under an optional key prefix.
 *
 * Commit protocol: S3 shows an object only once its PUT, or its multipart upload's Complete, has
 * succeeded, so nothing partial is ever visible and no staging key or copy is needed. Blobs are
 * uploaded from a local file, the spool file while the download still writes it (`putGrowingFile`):
 * the last part waits for the digest to verify, and a download that fails aborts the multipart
 * upload and leaves nothing. Conditional writes (If-None-Match) are not used — not every server has
 * them; content is addressed by digest, so two replicas writing one key write the same bytes.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { createReadStream } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { ReadHandle, StorageDriver } from './driver.js';

/** Where and how to reach the bucket. */
export interface S3DriverOptions {
  bucket: string;
  /** Prepended to every key (a trailing `/` is added when missing); '' for the bucket's root. */
  prefix?: string;
  /** The S3 API's URL for non-AWS stores (MinIO, R2, Ceph, Swift); unset: AWS for the region. */
  endpoint?: string | undefined;
  region: string;
  /** `host/bucket/key` URLs instead of `bucket.host/key` (MinIO, Ceph and Swift want this). */
  forcePathStyle?: boolean;
  /** Static keys; unset: the AWS SDK's default chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Multipart uploads older than this are aborted at start (a replica died mid-upload). Default 1 day. */
  abandonedUploadAgeMs?: number;
  /**
   * A request whose connection stays idle this long fails (default 60 s, as an upstream's
   * `timeouts.idle`): a store that stops answering must hold neither an upload nor a read forever.
   */
  idleTimeoutMs?: number;
}

/** Size of each part of a multipart upload, and how many are sent at once (each streamed from the disk). */
const PART_BYTES = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT = 3;
/** Attempts of each part (or single PUT) of an upload, and the first retry's mean wait / 4 (then 4x longer each). */
const BODY_ATTEMPTS = 3;
const RETRY_BASE_MS = 100;
/** S3 allows at most 10,000 parts; larger known sizes get larger parts. */
const MAX_PARTS = 10_000;

const QUIET = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** Stores objects in an S3 bucket. */
export class S3Driver implements StorageDriver {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly abandonedUploadAgeMs: number;

  constructor(options: S3DriverOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ? options.prefix.replace(/\/?$/, '/') : '';
    this.abandonedUploadAgeMs = options.abandonedUploadAgeMs ?? 24 * 3_600_000;
    const agent = { keepAlive: true, maxSockets: 256 };
    this.client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? false,
      credentials: options.credentials && { ...options.credentials }, // the SDK writes into it
      // Plain signed payloads: aws-chunked uploads are refused (501) by Swift and Ceph RGW.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { httpAgent: new HttpAgent(agent), httpsAgent: new HttpsAgent(agent), connectionTimeout: 10_000, socketTimeout: options.idleTimeoutMs ?? 60_000 },
      // What fails reaches the mirror's log through its callers, with the SDK's error; the SDK's own
      // console warnings (e.g. that a request with a stream body is not retried: retried() does) would not.
      logger: QUIET,
    });
  }

  /** Checks the bucket is reachable and aborts multipart uploads abandoned by dead processes. */
  async init(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket })).catch((err: Error & { $metadata?: { httpStatusCode?: number } }) => {
      const status = err.$metadata?.httpStatusCode;
      throw new Error(`storage: cannot use bucket "${this.bucket}": ${status === 404 ? 'no such bucket' : `${err.name}${status ? ` (HTTP ${status})` : ''}: ${err.message}`}`, { cause: err });
    });
    const cutoff = Date.now() - this.abandonedUploadAgeMs;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker, UploadIdMarker }));
      for (const upload of page.Uploads ?? []) {
        if (upload.Initiated && upload.Initiated.getTime() < cutoff) {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
        }
      }
      ({ NextKeyMarker: KeyMarker, NextUploadIdMarker: UploadIdMarker } = page.IsTruncated ? page : { NextKeyMarker: undefined, NextUploadIdMarker: undefined });
    } while (KeyMarker !== undefined);
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    const head = await absentAsUndefined(this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) })));
    return head && { size: head.ContentLength ?? 0 };
  }

  /** One GET: its body serves a whole-object read; a range read asks again for just that range. */
  async open(key: string): Promise<ReadHandle | undefined> {
    const Key = this.key(key);
    const res = await absentAsUndefined(this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key })));
    if (!res) return undefined;
    const body = res.Body as Readable;
    body.on('error', () => undefined); // a reset before anyone reads; readers get errors through pipeline
    const size = res.ContentLength ?? 0;
    return {
      size,
      stream: (start = 0, end = size - 1): Readable => {
        if (start === 0 && end === size - 1) return body;
        body.destroy();
        return this.rangeStream(Key, start, end, res.ETag);
      },
      close: async () => void body.destroy(),
    };
  }

  async get(key: string): Promise<Buffer | undefined> {
    const res = await absentAsUndefined(this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) })));
    return res && Buffer.from(await res.Body!.transformToByteArray());
  }

  async put(key: string, data: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: data, ContentLength: data.length }));
  }

  async putFile(key: string, localPath: string): Promise<void> {
    const { size } = await stat(localPath);
    await this.putGrowingFile(key, localPath, size, async () => undefined);
    await unlink(localPath);
  }

  /**
   * One PUT when the file fits in a part, else a multipart upload whose parts are sent as soon as
   * the file holds them, each read from the disk, PARTS_IN_FLIGHT at a time: memory stays flat
   * however many blobs are stored at once. Completed only after `ready(size)`, aborted on failure.
   */
  async putGrowingFile(key: string, path: string, size: number, ready: (end: number) => Promise<void>): Promise<void> {
    const Key = this.key(key);
    const { bucket: Bucket, client } = this;
    // Each attempt reads the bytes anew, and closes its read whatever happened (a failed request leaves it open).
    const sendRange = <T>(start: number, end: number, request: (range: { Body: Readable; ContentLength: number }) => Promise<T>, stop?: () => boolean): Promise<T> =>
      retried(async () => {
        const Body = createReadStream(path, { start, end: end - 1 });
        try {
          return await request({ Body, ContentLength: end - start });
        } finally {
          Body.destroy();
        }
      }, stop);
    const partSize = Math.max(PART_BYTES, Math.ceil(size / MAX_PARTS));
    if (size <= partSize) {
      await ready(size);
      await sendRange(0, size, (range) => client.send(new PutObjectCommand({ Bucket, Key, ...range })));
      return;
    }
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const parts: CompletedPart[] = [];
    let next = 0;
    let failure: { err: unknown } | undefined;
    let stopWaiting!: () => void;
    const stopped = new Promise<void>((resolve) => (stopWaiting = resolve));
    const sendParts = async (): Promise<void> => {
      while (!failure && next * partSize < size) {
        const i = next++;
        const end = Math.min(size, (i + 1) * partSize);
        await Promise.race([ready(end), stopped]);
        if (failure) return;
        const { ETag } = await sendRange(i * partSize, end, (range) => client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, ...range })), () => failure !== undefined);
        parts[i] = { ETag, PartNumber: i + 1 };
      }
    };
    const stopAll = (err: unknown): void => {
      failure ??= { err }; // the other senders stop after their current part, or at once if they wait for bytes
      stopWaiting();
    };
    try {
      // Every sender settles before an abort: a part still being sent when the upload is aborted can
      // be stored after it (Swift keeps it as an orphan segment; S3 says to abort again), never freed.
      await Promise.all(Array.from({ length: PARTS_IN_FLIGHT }, () => sendParts().catch(stopAll)));
      if (failure) throw failure.err;
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined); // else aborted by age at a later init
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
  }

  async *list(prefix: string): AsyncIterable<string> {
    for await (const { key } of this.listWithSizes(prefix)) yield key;
  }

  async *listWithSizes(prefix: string): AsyncIterable<{ key: string; size?: number }> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken }));
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) yield { key: object.Key.slice(this.prefix.length), size: object.Size };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken !== undefined);
  }

  /** A URL that lets anyone GET the object for `expiresInSeconds`, signed with this driver's keys. */
  async presignGet(key: string, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }), { expiresIn: expiresInSeconds });
  }

  /** Releases the connection pool. */
  close(): void {
    this.client.destroy();
  }

  /** Bytes `start`..`end` of an object, refused if it changed since `etag` was read. */
  private rangeStream(Key: string, start: number, end: number, etag: string | undefined): Readable {
    const out = new PassThrough();
    const abort = new AbortController();
    out.once('close', () => abort.abort());
    this.client
      .send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=${start}-${end}`, IfMatch: etag }), { abortSignal: abort.signal })
      .then((res) => pipeline(res.Body as Readable, out))
      .catch((err: Error) => out.destroy(err));
    return out;
  }

  /** Maps a key to an object name, refusing anything that could mean a path outside the store. */
  private key(key: string): string {
    if (key === '' || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.')) {
      throw new Error(`invalid storage key: ${key}`);
    }
    return this.prefix + key;
  }
}

/**
 * Sends a request again after a failure that may pass (no answer, a 5xx, 408 or 429): for requests
 * with a stream body, which the SDK does not retry. `stop` ends the retries early (another part of
 * the upload failed).
 */
async function retried<T>(send: () => Promise<T>, stop: () => boolean = () => false): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const passing = status === undefined || status >= 500 || status === 408 || status === 429;
      if (!passing || attempt >= BODY_ATTEMPTS || stop()) throw err;
      await sleep(RETRY_BASE_MS * 4 ** attempt * (0.5 + Math.random() / 2));
    }
  }
}

/** The result, or undefined when S3 answered 404 (no such key). */
async function absentAsUndefined<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
    throw err;
  }
}
