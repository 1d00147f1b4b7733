// Helpers for scale-out tests: a bucket on the Swift fixture, mirrors on it (in-process or as
// processes), and a check that every blob in the bucket hashes to its key.
import { createHash, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startMirror, type Mirror } from '../../src/main.js';
import { S3Driver } from '../../src/storage/s3.js';
import { spawnMirror, type MirrorProcess } from '../harness/process-mirror.js';
import { tempDir } from '../support/index.js';
import type { SwiftServer } from './swift.js';

/** A bucket (with a prefix of its own) on the Swift fixture. */
export interface TestBucket {
  /** The `storage` section that points a mirror at it. */
  storage: NonNullable<ConfigInput['storage']>;
  /** A driver on the same bucket and prefix, to look at what the mirrors stored. */
  driver: S3Driver;
  /** Multipart uploads left open under the prefix. */
  openUploads(): Promise<number>;
  close(): void;
}

/** Creates a bucket on `swift` (once per name) and a fresh prefix in it. */
export async function createTestBucket(swift: SwiftServer, bucket = 'regmirror-test'): Promise<TestBucket> {
  const credentials = { accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey };
  const client = new S3Client({ endpoint: swift.endpoint, region: swift.region, credentials: { ...credentials }, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' });
  await client.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: { name?: string }) => {
    if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
  });
  const prefix = `mirror-${randomUUID()}/`;
  const settings = { bucket, prefix, endpoint: swift.endpoint, region: swift.region, forcePathStyle: true };
  const driver = new S3Driver({ ...settings, credentials });
  return {
    storage: { driver: 's3', ...settings, credentials },
    driver,
    openUploads: async () => (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))).Uploads?.length ?? 0,
    close: () => {
      driver.close();
      client.destroy();
    },
  };
}

/** Bytes of all content in the store, as the fleet's totals should count them. */
export async function bucketBytes(driver: S3Driver): Promise<number> {
  let total = 0;
  for await (const { key, size } of driver.listWithSizes('blobs/')) total += size ?? (await driver.stat(key))?.size ?? 0;
  return total;
}

/** Re-hashes every blob in the store; returns the digests whose bytes do not match, and the count. */
export async function verifyBucket(driver: S3Driver): Promise<{ checked: number; corrupt: string[] }> {
  const corrupt: string[] = [];
  let checked = 0;
  for await (const key of driver.list('blobs/sha256/')) {
    const data = await driver.get(key);
    checked++;
    const hex = key.split('/').pop()!;
    if (!data || createHash('sha256').update(data).digest('hex') !== hex) corrupt.push(`sha256:${hex}`);
  }
  return { checked, corrupt };
}

/** What a scale-out test sets in a mirror's configuration. */
export interface FleetMirrorOptions {
  storage: NonNullable<ConfigInput['storage']>;
  upstreams: ConfigInput['upstreams'];
  redis?: Record<string, unknown>;
  cache?: ConfigInput['cache'];
  defaultUpstream?: string;
}

function configFor(options: FleetMirrorOptions, port: number): Record<string, unknown> {
  return {
    version: 1,
    listeners: [{ address: `127.0.0.1:${port}` }],
    ...(options.defaultUpstream ? { routing: { defaultUpstream: options.defaultUpstream } } : {}),
    storage: { path: tempDir('replica'), ...options.storage }, // a folder of its own unless the test names one
    cache: options.cache ?? {},
    log: { level: process.env.REGMIRROR_TEST_LOG ?? 'silent' },
    upstreams: options.upstreams,
    ...(options.redis ? { redis: options.redis } : {}),
  };
}

/** A mirror started in this process on a free port, with a local folder (spool) of its own. */
export async function startFleetMirror(options: FleetMirrorOptions): Promise<{ url: string; mirror: Mirror; close(): Promise<void> }> {
  const config = parseConfig(configFor(options, 0));
  const mirror = await startMirror(config, pino({ level: config.log.level }));
  const url = `http://127.0.0.1:${mirror.listeners[0]!.address.port}`;
  return { url, mirror, close: () => mirror.close(100) };
}

/** A replica: `regmirror serve --config FILE` as a child process, with a local folder of its own. */
export async function spawnReplica(options: FleetMirrorOptions): Promise<MirrorProcess> {
  const file = join(tempDir('replica-config'), 'regmirror.json');
  await writeFile(file, JSON.stringify(configFor(options, 0))); // JSON is YAML; --listen sets the port
  return spawnMirror(['--config', file]);
}
