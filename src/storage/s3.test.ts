// The storage-driver contract against OpenStack Swift's S3 API, plus what only S3 has.
import { randomUUID } from 'node:crypto';
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwift, type SwiftServer } from '../../test/scale-out/swift.js';
import { describeStorageDriver } from './driver-contract.js';
import { S3Driver, type S3DriverOptions } from './s3.js';

const BUCKET = 'regmirror-contract';
let swift: SwiftServer;
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
  const client = rawClient();
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  client.destroy();
});

afterAll(async () => {
  for (const driver of drivers) driver.close();
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
