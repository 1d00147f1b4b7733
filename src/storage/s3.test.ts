// The storage-driver contract against OpenStack Swift's S3 API, plus what only S3 has.
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwift, type SwiftServer } from '../../test/scale-out/swift.js';
import { startFaultyStore, tempDir, type FaultyStore, type StoreFault } from '../../test/support/index.js';
import { describeStorageDriver } from './driver-contract.js';
import { S3Driver, type S3DriverOptions } from './s3.js';

const BUCKET = 'regmirror-contract';
let swift: SwiftServer;
let store: FaultyStore;
const drivers: S3Driver[] = [];

function connection(): Omit<S3DriverOptions, 'prefix'> {
  return {
    bucket: BUCKET,
    endpoint: swift.endpoint,
    region: swift.region,
    forcePathStyle: true,
    credentials: { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey },
  };
}

/** A driver on a prefix of its own: an empty store. */
function freshDriver(extra: Partial<S3DriverOptions> = {}): S3Driver {
  const driver = new S3Driver({ ...connection(), prefix: `case-${randomUUID()}`, ...extra });
  drivers.push(driver);
  return driver;
}

function rawClient(): S3Client {
  const { endpoint, region, credentials } = connection();
  return new S3Client({ endpoint, region, credentials, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
}

beforeAll(async () => {
  swift = await startSwift();
  store = await startFaultyStore(swift.endpoint);
  const client = rawClient();
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  client.destroy();
});

afterAll(async () => {
  for (const driver of drivers) driver.close();
  await store?.stop();
  await swift?.stop();
});

describeStorageDriver('s3 (swift)', async () => freshDriver());

describe('S3Driver', () => {
  it('keeps each prefix apart', async () => {
    const a = freshDriver();
    const b = freshDriver();
    await a.put('repositories/u/r/_tags/t', Buffer.from('a'));
    expect(await b.get('repositories/u/r/_tags/t')).toBeUndefined();
    const keys: string[] = [];
    for await (const key of a.list('repositories/')) keys.push(key);
    expect(keys).toEqual(['repositories/u/r/_tags/t']);
  });

  it('aborts multipart uploads abandoned by a dead process at init, and leaves recent ones', async () => {
    const prefix = `case-${randomUUID()}/`;
    const client = rawClient();
    await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${prefix}blobs/sha256/aa/abandoned` }));
    const uploads = async (): Promise<number> => (await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }))).Uploads?.length ?? 0;
    await freshDriver({ prefix }).init();
    expect(await uploads()).toBe(1);
    await freshDriver({ prefix, abandonedUploadAgeMs: -60_000 }).init();
    expect(await uploads()).toBe(0);
    client.destroy();
  });

  it('signs GET URLs that work without credentials, and only for their object', async () => {
    const driver = freshDriver();
    await driver.put('blobs/sha256/ab/signed', Buffer.from('presigned bytes'));
    const url = await driver.presignGet('blobs/sha256/ab/signed', 60);
    const res = await fetch(url, { headers: { range: 'bytes=0-8' } });
    expect([res.status, await res.text()]).toEqual([206, 'presigned']);
    const other = await fetch(url.replace('/signed?', '/other?'));
    await other.body?.cancel();
    expect(other.status).toBe(403);
  });

  it('fails init with a clear error when the bucket does not exist', async () => {
    await expect(freshDriver({ bucket: 'no-such-bucket' }).init()).rejects.toThrow('storage: cannot use bucket "no-such-bucket": no such bucket');
  });
});

describe('S3Driver when the bucket fails during an upload', () => {
  const MiB = 1024 * 1024;

  /** Uploads `size` bytes (17 MiB: three parts) through the faulty store under a fresh prefix, with `fault` on. */
  async function uploadThrough(fault: Omit<StoreFault, 'pathContains'>, { size = 17 * MiB, idleTimeoutMs = undefined as number | undefined } = {}): Promise<{ prefix: string; driver: S3Driver; upload: Promise<void>; data: Buffer; path: string }> {
    const prefix = `case-${randomUUID()}/`;
    const driver = freshDriver({ prefix, endpoint: store.url, ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }) });
    const path = join(tempDir('s3-fault'), 'blob');
    const data = randomBytes(size);
    await writeFile(path, data);
    store.setFault({ ...fault, pathContains: prefix });
    const upload = driver.putGrowingFile('blobs/sha256/aa/refused', path, size, async () => undefined);
    upload.catch(() => undefined);
    return { prefix, driver, upload, data, path };
  }

  /** How many files this process holds open at `path` (each attempt's read of it must be closed). */
  function openFilesAt(path: string): number {
    return readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === path;
      } catch {
        return false; // closed meanwhile
      }
    }).length;
  }

  /** Nothing of the upload anywhere: no object, no open upload, and no part left in Swift's segments container. */
  async function expectNothingStored(prefix: string, driver: S3Driver): Promise<void> {
    expect(await driver.stat('blobs/sha256/aa/refused')).toBeUndefined();
    const client = rawClient();
    const open = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
    client.destroy();
    expect(open.Uploads ?? []).toEqual([]);
    expect(await swift.swiftObjects(`${BUCKET}+segments`, prefix)).toEqual([]);
  }

  it.each(['error', 'cut'] as const)('rejects when the 2nd part fails (%s), aborts the upload and leaves no part behind', async (how) => {
    const { prefix, driver, upload, path } = await uploadThrough({ operation: 'UploadPart', how, part: 2 });
    await expect(upload).rejects.toThrow();
    store.setFault(null);
    expect(openFilesAt(path)).toBe(0);
    expect(store.countOf('AbortMultipartUpload', prefix)).toBe(1);
    expect(store.countOf('CompleteMultipartUpload', prefix)).toBe(0);
    await expectNothingStored(prefix, driver);
  });

  it.each(['error', 'cut'] as const)('rejects when the Complete fails (%s), aborts the upload and leaves no part behind', async (how) => {
    const { prefix, driver, upload } = await uploadThrough({ operation: 'CompleteMultipartUpload', how });
    await expect(upload).rejects.toThrow();
    store.setFault(null);
    expect([store.countOf('UploadPart', prefix), store.countOf('AbortMultipartUpload', prefix)]).toEqual([3, 1]);
    await expectNothingStored(prefix, driver);
  });

  it.each(['error', 'cut'] as const)('sends a part, or a single PUT, again after one failure (%s), with its whole body', async (how) => {
    for (const [operation, size] of [['UploadPart', 17 * MiB], ['PutObject', MiB]] as const) {
      const { prefix, driver, upload, data } = await uploadThrough({ operation, how, times: 1, ...(operation === 'UploadPart' ? { part: 2 } : {}) }, { size });
      await upload;
      expect([store.faulted > 0, store.countOf(operation, prefix), store.countOf('AbortMultipartUpload', prefix)]).toEqual([true, operation === 'UploadPart' ? 4 : 2, 0]);
      expect((await driver.get('blobs/sha256/aa/refused'))?.equals(data)).toBe(true);
    }
  });

  it('fails a part the store never answers once the connection has been idle for idleTimeoutMs, and aborts the upload', async () => {
    const started = Date.now();
    const { prefix, driver, upload } = await uploadThrough({ operation: 'UploadPart', how: 'stall', part: 2 }, { idleTimeoutMs: 300 });
    await expect(upload).rejects.toThrow(/timed out/);
    store.setFault(null);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(store.countOf('AbortMultipartUpload', prefix)).toBe(1);
    await expectNothingStored(prefix, driver);
  });
});
